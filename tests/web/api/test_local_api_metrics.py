"""GET /metrics: Prometheus text from the app's own registry; label values are codes only."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import quote

import aiohttp
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from gateway.model.bodies import BODY_ID_PATTERN
from gateway.model.profiles import PROFILES
from gateway.web.local_api import ROUTES, make_local_api_app, start_local_api
from gateway.web.metrics import (
    CODE_PATTERN,
    OTHER,
    UNMATCHED_ROUTE,
    DeliveryOutcome,
    GatewayMetrics,
    RejectionSource,
)
from tests.doubles.local_service import LocalServiceDouble
from tests.web.api.conftest import ACTORS, NOW, OPERATOR, READER, Seeded, auth, reading

MARKER = "Ivanov-Ivan-4242"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")

EXPECTED_FAMILIES = {
    "gateway_api_requests",
    "gateway_api_request_duration_seconds",
    "gateway_messages_submitted",
    "gateway_messages_received",
    "gateway_messages_rejected",
    "gateway_delivery_attempts",
    "gateway_hop_latency_seconds",
}

_ROUTE_TEMPLATES = {route.path for route in ROUTES} | {UNMATCHED_ROUTE}
_AGREEMENTS = set(PROFILES)
_KINDS = {k for p in PROFILES.values() for k in p.kinds}


def _is_code(label: str, value: str) -> bool:
    """Whether ``value`` is a code that may stand in label ``label``."""
    allowed = {
        "route": lambda v: v in _ROUTE_TEMPLATES,
        "method": lambda v: v in {"GET", "POST", "DELETE", OTHER},
        "status": lambda v: v.isdigit() and len(v) == 3,
        "agreement": lambda v: v in _AGREEMENTS | {OTHER},
        "kind": lambda v: v in _KINDS | {OTHER},
        "code": lambda v: bool(CODE_PATTERN.fullmatch(v)) or v == OTHER,
        "source": lambda v: v in {s.value for s in RejectionSource},
        "outcome": lambda v: v in {o.value for o in DeliveryOutcome},
        "peer": lambda v: bool(BODY_ID_PATTERN.fullmatch(v)) or v == OTHER,
        "le": lambda v: True,  # histogram bucket bounds, numbers
    }
    return allowed[label](value)


def _samples(text: str):
    for family in text_string_to_metric_families(text):
        yield from ((family.name, s) for s in family.samples)


async def test_exposition_names_and_code_only_labels(
    client: TestClient, seeded: Seeded, metrics: GatewayMetrics
):
    # Traffic with ids, values and hostile text in paths, queries and headers.
    await client.get(f"/api/v1/messages/{seeded.plain_message}", headers=reading(OPERATOR))
    await client.get(
        f"/api/v1/messages/{seeded.confidential_message}/xml",
        headers={**auth(READER), "X-Purpose": quote(MARKER)},
    )
    await client.get(f"/api/v1/conversations?body={MARKER}", headers=auth(OPERATOR))
    await client.get(f"/api/v1/{MARKER}", headers=auth(OPERATOR))
    await client.get("/api/v1/conversations")
    # What the node records, hostile values included.
    metrics.message_received("cis-enforcement", "Response")
    metrics.message_received(MARKER, MARKER)
    metrics.message_rejected("SIGNATURE_INVALID")
    metrics.message_rejected(f"Документ {MARKER} отклонён", RejectionSource.BY_PEER)
    metrics.delivery(DeliveryOutcome.DELIVERED)
    metrics.delivery(DeliveryOutcome.RETRY)
    metrics.hop_latency(0.2, peer="KZ-MJ")
    metrics.hop_latency(0.3, peer=MARKER)

    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert MARKER not in text
    assert not UUID_RE.search(text)

    families = {family.name for family in text_string_to_metric_families(text)}
    assert families >= EXPECTED_FAMILIES
    for name, sample in _samples(text):
        for label, value in sample.labels.items():
            assert _is_code(label, value), (name, label, value)

    assert 'route="/api/v1/messages/{message_id}",status="200"' in text
    assert 'route="/api/v1/messages/{message_id}/xml",status="200"' in text
    assert f'route="{UNMATCHED_ROUTE}",status="404"' in text
    assert 'route="/api/v1/conversations",status="401"' in text
    assert 'gateway_messages_received_total{agreement="other",kind="other"} 1.0' in text
    assert 'gateway_messages_rejected_total{code="other",source="by-peer"} 1.0' in text
    assert 'gateway_delivery_attempts_total{outcome="delivered"} 1.0' in text
    assert 'gateway_hop_latency_seconds_count{peer="KZ-MJ"} 1.0' in text
    assert 'gateway_hop_latency_seconds_count{peer="other"} 1.0' in text


async def test_each_app_has_its_own_registry(aiohttp_client, serving):
    first, second = GatewayMetrics(), GatewayMetrics()
    assert first.registry is not REGISTRY and first.registry is not second.registry
    client = await aiohttp_client(
        make_local_api_app(LocalServiceDouble(NOW, ACTORS), first, serving)
    )
    await client.get("/healthz")
    assert b'route="/healthz"' in first.exposition()
    assert b'route="/healthz"' not in second.exposition()
    assert b"gateway_api_requests" not in _global_exposition()


def _global_exposition() -> bytes:
    from prometheus_client import generate_latest

    return generate_latest(REGISTRY)


async def test_access_log_holds_no_query(caplog, unused_tcp_port: int, seeded: Seeded, serving):
    # A purpose sent in the query string must not reach the access log (CIS Art. 9.1 texts
    # belong in the audit trail).
    # An empty service: the read is a 404, which is logged like any answer.
    app = make_local_api_app(LocalServiceDouble(NOW, ACTORS), GatewayMetrics(), serving)
    runner = await start_local_api(app, "127.0.0.1", unused_tcp_port)
    try:
        with caplog.at_level(logging.INFO, logger="gateway.access"):
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{unused_tcp_port}/api/v1/messages/{seeded.plain_message}"
                async with session.get(
                    url, params={"purpose": MARKER}, headers=auth(OPERATOR)
                ) as response:
                    assert response.status == 404
    finally:
        await runner.cleanup()
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.access"]
    assert lines == [f"api GET /api/v1/messages/{{message_id}} 404 {lines[0].split()[-1]}"]
    assert all(MARKER not in line and seeded.plain_message not in line for line in lines)


def test_every_metric_is_in_the_docs_table_and_no_other() -> None:
    """docs/local-api.md's table of metrics is the registry's: each family by its exposed name
    (a counter's ``_total``), the collectors added at start-up included."""
    metrics = GatewayMetrics()
    metrics.key_schedule(lambda: [])
    metrics.directory_in_force(lambda: 1)
    exposed = {
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in metrics.registry.collect()
    }
    text = (Path(__file__).parents[3] / "docs" / "local-api.md").read_text(encoding="utf-8")
    table = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(gateway_[a-z_]+)` \|", table, flags=re.MULTILINE))
    assert documented == exposed

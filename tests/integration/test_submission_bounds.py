"""The local API's submissions on a real node: the CPU one may take is bounded by the shape of its
JSON (gateway.web.json_shape), and an ``Idempotency-Key`` makes a retry safe for a document
without its own MessageId. SQLite and PostgreSQL.

Measured on 9f5ab4f: 7.7 MB of repeated identifiers took 65 s of CPU before its 422 (#14); the
same shape is now refused before conversion, naming the field and the bound."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa

from gateway.config import NodeConfig
from gateway.demo.play import example
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import Node
from gateway.store import audit
from gateway.store import idempotency as idem_store
from gateway.store.tables import idempotency_keys, messages, outbox
from gateway.web.json_shape import MAX_ARRAY_ITEMS, MAX_DEPTH, MAX_VALUES
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import create_token, node_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

HOSTILE_IDENTIFIERS = 200_000
"""~7.7 MB of JSON, the issue's body: 2.4 s of CPU per 8,000 identifiers on 9f5ab4f."""


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def node(
    request: pytest.FixtureRequest, world: DemoWorld
) -> AsyncIterator[tuple[NodeRuntime, str]]:
    url = request.getfixturevalue("pg_schema")("bounds") if request.param == "postgresql" else ""
    config = node_config(world, "RU-FSSP", f"bounds-{request.param}", database_url=url)
    runtime = NodeRuntime(Node.from_config(NodeConfig.from_toml(config)))
    await runtime.start(deliver=False, console=False)
    try:
        yield runtime, create_token(runtime.node.store, datetime.now(UTC))
    finally:
        await runtime.stop()


async def post(
    runtime: NodeRuntime, token: str, body: bytes, key: str | None = None
) -> tuple[int, dict[str, Any], Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    url = f"http://127.0.0.1:{runtime.api_port}/api/v1/messages"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status, await response.json(), response.headers


def request_body(**changes: str) -> bytes:
    document = example("cis-enforcement.Request")
    document["header"]["Recipient"] = "KZ-MJ"
    document["body"]["Request"].update(changes)
    return json.dumps(document, ensure_ascii=False).encode()


def counts(runtime: NodeRuntime) -> tuple[int, int]:
    with runtime.node.store.read() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in (messages, outbox)
        )


# --- CPU per submission --------------------------------------------------------------------------


async def test_a_hostile_array_is_refused_before_any_conversion(
    node: tuple[NodeRuntime, str],
) -> None:
    runtime, token = node
    document = example("cis-enforcement.Request")
    document["header"]["Recipient"] = "KZ-MJ"
    document["body"]["Request"]["Debtor"]["Individual"]["OtherIdentifier"] = [
        {"Kind": "ИНН", "Value": str(i)} for i in range(HOSTILE_IDENTIFIERS)
    ]
    body = json.dumps(document, ensure_ascii=False).encode()
    assert len(body) > 7_000_000
    before = counts(runtime)
    cpu = time.process_time()
    status, answer, _ = await post(runtime, token, body)
    used = time.process_time() - cpu  # the node runs in this process: its CPU is ours
    assert status == 422, answer
    assert answer["error"]["code"] == "DOCUMENT_TOO_COMPLEX"
    (problem,) = answer["problems"]
    assert problem["code"] == "MAX_ARRAY_ITEMS"
    assert problem["path"] == "/body/Request/Debtor/Individual/OtherIdentifier"
    assert str(MAX_ARRAY_ITEMS) in answer["error"]["message"]
    assert used < 10, f"{used:.1f} s of CPU for a refusal (65 s on 9f5ab4f)"
    assert counts(runtime) == before
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{runtime.api_port}/metrics") as response,
    ):
        exposition = await response.text()
    assert 'gateway_messages_rejected_total{code="MAX_ARRAY_ITEMS",source="local"}' in exposition


@pytest.mark.parametrize(
    ("shape", "rule", "path"),
    [
        ("deep", "MAX_DEPTH", "/body/Request/Deep" + "/x" * (MAX_DEPTH - 3)),
        ("wide", "MAX_VALUES", None),
    ],
)
async def test_deep_or_wide_json_is_refused_naming_the_bound(
    node: tuple[NodeRuntime, str], shape: str, rule: str, path: str | None
) -> None:
    runtime, token = node
    document = example("cis-enforcement.Request")
    if shape == "deep":
        deep: dict[str, Any] = {}
        document["body"]["Request"]["Deep"] = deep
        for _ in range(MAX_DEPTH * 4):
            deep["x"] = {}
            deep = deep["x"]
    else:  # every array short, the whole too large: 60 arrays of 100 objects
        document["body"]["Request"]["Wide"] = {
            f"k{i}": [{"v": 1} for _ in range(MAX_ARRAY_ITEMS)] for i in range(60)
        }
    status, answer, _ = await post(runtime, token, json.dumps(document).encode())
    assert status == 422, answer
    assert answer["error"]["code"] == "DOCUMENT_TOO_COMPLEX"
    (problem,) = answer["problems"]
    assert problem["code"] == rule
    if path is not None:
        assert problem["path"] == path
    assert str(MAX_DEPTH if rule == "MAX_DEPTH" else MAX_VALUES) in problem["message_en"]


# --- Idempotency-Key -----------------------------------------------------------------------------


async def test_the_same_key_and_body_get_the_first_answer_and_one_document(
    node: tuple[NodeRuntime, str],
) -> None:
    runtime, token = node
    key = str(uuid.uuid4())
    body = request_body()
    before = counts(runtime)
    first = await post(runtime, token, body, key)
    again = await post(runtime, token, body, key)
    assert first[0] == again[0] == 202, (first[1], again[1])
    assert again[1] == first[1]
    assert again[2]["Location"] == first[2]["Location"]
    assert again[2]["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first[2]
    assert counts(runtime) == (before[0] + 1, before[1] + 1), "one document, queued once"

    # The same body with its keys in another order and other whitespace is the same request.
    reordered = json.dumps(json.loads(body), indent=2, sort_keys=True).encode()
    assert (await post(runtime, token, reordered, key))[1] == first[1]
    # Without the key the same body is a new document.
    assert (await post(runtime, token, body))[1]["message_id"] != first[1]["message_id"]


async def test_the_same_key_with_another_body_is_refused(node: tuple[NodeRuntime, str]) -> None:
    runtime, token = node
    key = str(uuid.uuid4())
    status, _, _ = await post(runtime, token, request_body(), key)
    assert status == 202
    before = counts(runtime)
    status, answer, _ = await post(runtime, token, request_body(OtherInformation="другое"), key)
    assert status == 422, answer
    assert answer["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert "new key" in answer["error"]["message"]
    assert counts(runtime) == before


async def test_concurrent_retries_with_one_key_store_one_document(
    node: tuple[NodeRuntime, str],
) -> None:
    runtime, token = node
    key, body = str(uuid.uuid4()), request_body()
    before = counts(runtime)
    answers = await asyncio.gather(*(post(runtime, token, body, key) for _ in range(6)))
    assert {status for status, _, _ in answers} == {202}, answers
    assert len({answer["message_id"] for _, answer, _ in answers}) == 1
    assert counts(runtime) == (before[0] + 1, before[1] + 1)
    with runtime.node.store.read() as conn:  # the losers' units were undone, audit included
        assert audit.verify(conn).intact
        submitted = [
            e
            for e in audit.events(conn, kinds=("message.submitted",))
            if e.subjects["message"] == answers[0][1]["message_id"]
        ]
    assert len(submitted) == 1


async def test_a_key_is_kept_for_its_time_only(node: tuple[NodeRuntime, str]) -> None:
    runtime, token = node
    key, body = str(uuid.uuid4()), request_body()
    _, first, _ = await post(runtime, token, body, key)
    # A day passes for this key: it is forgotten, and the same request is a new document.
    with runtime.node.store.transaction() as conn:
        conn.execute(
            idempotency_keys.update()
            .where(idempotency_keys.c.idempotency_key == key)
            .values(created_at=datetime.now(UTC) - idem_store.KEY_TTL - timedelta(seconds=1))
        )
    status, later, headers = await post(runtime, token, body, key)
    assert status == 202 and "Idempotent-Replayed" not in headers
    assert later["message_id"] != first["message_id"]
    with runtime.node.store.transaction() as conn:
        assert idem_store.prune(conn, datetime.now(UTC) + idem_store.KEY_TTL) >= 1
        left = conn.execute(sa.select(sa.func.count()).select_from(idempotency_keys)).scalar_one()
    assert left == 0


@pytest.mark.parametrize("value", ["", "x" * 201, "a b", "\u00e9t\u00e9"])
async def test_a_malformed_key_is_refused_naming_the_header(
    node: tuple[NodeRuntime, str], value: str
) -> None:
    runtime, token = node
    before = counts(runtime)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Idempotency-Key": value,
    }
    url = f"http://127.0.0.1:{runtime.api_port}/api/v1/messages"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=request_body(), headers=headers) as response,
    ):
        answer = await response.json()
    assert response.status == 400, answer
    assert answer["error"]["code"] == "INVALID_PARAMETER"
    assert "Idempotency-Key" in answer["error"]["message"]
    assert counts(runtime) == before

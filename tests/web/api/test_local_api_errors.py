"""Failures the service did not plan: 500 without detail, limits on streamed bodies, raw headers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp.test_utils import TestClient

from gateway.exchange.recording import ConcurrentChange
from gateway.exchange.service import Actor, MessageView
from gateway.model.limits import MAX_JSON_BYTES
from gateway.web.local_api import SECURITY_HEADERS, ErrorCode, make_local_api_app
from gateway.web.metrics import GatewayMetrics
from tests.doubles.local_service import LocalServiceDouble
from tests.web.api.conftest import ACTORS, NOW, OPERATOR, READER, Seeded, auth

MARKER = "Petrov-Petr-4242"


class BrokenService(LocalServiceDouble):
    """Fails the way a bug would: an exception whose message quotes a document."""

    async def message(self, message_id: str, *, actor: Actor, purpose: str | None) -> MessageView:
        raise RuntimeError(f"debtor {MARKER} could not be decrypted")


async def test_unexpected_error_is_500_without_detail(aiohttp_client, caplog, serving):
    app = make_local_api_app(BrokenService(NOW, ACTORS), GatewayMetrics(), serving)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.ERROR, logger="gateway.web.local_api"):
        response = await client.get(
            "/api/v1/messages/00000000-0000-4000-8000-000000000000", headers=auth(OPERATOR)
        )
    assert response.status == 500
    text = await response.text()
    assert (await response.json())["error"]["code"] == "INTERNAL_ERROR"
    assert MARKER not in text
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged and "/api/v1/messages/{message_id}" in logged
    assert MARKER not in logged


async def test_streamed_body_over_the_limit_is_413(client: TestClient):
    async def chunks() -> AsyncIterator[bytes]:
        chunk = b" " * (1024 * 1024)
        for _ in range(MAX_JSON_BYTES // len(chunk) + 1):
            yield chunk

    response = await client.post(
        "/api/v1/messages",
        data=chunks(),
        headers={**auth(OPERATOR), "Content-Type": "application/json"},
    )
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "BODY_TOO_LARGE"


async def test_raw_utf8_purpose_header(
    client: TestClient, seeded: Seeded, service: LocalServiceDouble
):
    # curl sends a header's UTF-8 bytes as they are; the API takes them as well as %-encoding.
    purpose = "Розыск имущества должника"
    request = (
        f"GET /api/v1/messages/{seeded.confidential_message} HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {READER}\r\n"
        f"X-Purpose: {purpose}\r\nConnection: close\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert service.reads[-1].purpose == purpose


class BusyService(LocalServiceDouble):
    """The conversation changes under every attempt, as under heavy concurrent traffic."""

    async def submit(self, document, *, actor, idempotency_key=None):
        raise ConcurrentChange


async def test_submission_losing_every_race_is_503_try_again_not_a_rejection(
    aiohttp_client, serving
):
    metrics = GatewayMetrics()
    client = await aiohttp_client(make_local_api_app(BusyService(NOW, ACTORS), metrics, serving))
    response = await client.post(
        "/api/v1/messages", json={"any": "document"}, headers=auth(OPERATOR)
    )
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["error"]["code"] == "TRY_AGAIN"
    exposition = metrics.exposition().decode()
    assert "gateway_messages_rejected_total{" not in exposition


def test_every_error_code_is_in_the_docs_table():
    table = (Path(__file__).parents[3] / "docs" / "local-api.md").read_text(encoding="utf-8")
    missing = [code.value for code in ErrorCode if f"| `{code.value}` |" not in table]
    assert missing == []

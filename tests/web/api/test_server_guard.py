"""Below the app: aiohttp's parser refusals answered in the API's contract (JSON, security
headers), and request heads that never finish cut off after the header timeout. Real servers on
127.0.0.1 port 0, raw sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.app.context import AppContext
from gateway.config import NodeConfig
from gateway.model.problems import ConfigurationError
from gateway.web.local_api import SECURITY_HEADERS, SERVER_HEADER, make_local_api_app
from gateway.web.local_api import start_local_api as start
from gateway.web.metrics import GatewayMetrics
from gateway.web.runtime import server_settings
from gateway.web.server import HEADER_TIMEOUT, ServerSettings
from tests.doubles.local_service import LocalServiceDouble
from tests.web.api.conftest import ACTORS, NOW, OPERATOR

MARKER = "Zyxwvut-4242"
"""Bytes of the request that no answer or log line may quote."""

QUICK = ServerSettings(header_timeout=0.5, keepalive_timeout=30)


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics()


@pytest.fixture
async def api(metrics: GatewayMetrics, serving: AppContext) -> AsyncIterator[tuple[str, int]]:
    app = make_local_api_app(LocalServiceDouble(NOW, ACTORS), metrics, serving)
    runner = await start(app, "127.0.0.1", 0, settings=QUICK)
    try:
        host, port = runner.addresses[0][:2]
        yield host, port
    finally:
        await runner.cleanup()


async def _exchange(address: tuple[str, int], raw: bytes, *, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)  # until the server closes
    finally:
        writer.close()


def _parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def _assert_contract(answer: bytes, status: int, code: str) -> dict:
    got, headers, body = _parse(answer)
    assert got == status, answer[:300]
    assert headers["content-type"].startswith("application/json")
    for name, value in SECURITY_HEADERS.items():
        assert headers[name.lower()] == value, name
    assert headers["server"] == SERVER_HEADER
    # Closed after the answer (_exchange read to the end): HTTP/1.0 or "Connection: close".
    assert answer.startswith(b"HTTP/1.0 ") or headers["connection"] == "close"
    payload = json.loads(body)
    assert payload["error"]["code"] == code
    assert payload["error"]["message"] and payload["error"]["message_ru"]
    assert MARKER not in body.decode("utf-8")
    return payload


async def test_a_10_kb_header_line_is_400_in_the_contract(api, caplog, metrics) -> None:
    raw = (f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: {MARKER}{'a' * 10_240}\r\n\r\n").encode()
    answer = await _exchange(api, raw)
    payload = _assert_contract(answer, 400, "MALFORMED_REQUEST")
    assert "8190 bytes" in payload["error"]["message"]
    assert MARKER not in caplog.text
    assert (
        'gateway_api_requests_total{method="other",route="unmatched",status="400"} 1.0'
        in metrics.exposition().decode()
    )


async def test_content_length_with_transfer_encoding_is_400_in_the_contract(api) -> None:
    raw = (
        "POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {OPERATOR}\r\n"
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        f"4\r\n{{}}  \r\n0\r\n\r\n"
    ).encode()
    payload = _assert_contract(await _exchange(api, raw), 400, "MALFORMED_REQUEST")
    assert "Transfer-Encoding" in payload["error"]["message"]


@pytest.mark.parametrize(
    "raw",
    [
        f"G\x01T /healthz HTTP/1.1\r\nHost: {MARKER}\r\n\r\n".encode(),
        f"GET /healthz HTTP/1.1\r\nHost: x\r\nBad{MARKER} Header\r\n\r\n".encode(),
        f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: {MARKER}\x00\r\n\r\n".encode(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + MARKER.encode(),  # a TLS hello
    ],
    ids=["bad-method", "header-without-colon", "nul-in-header", "tls-on-plain-http"],
)
async def test_other_parser_refusals_are_400_in_the_contract(api, raw: bytes) -> None:
    _assert_contract(await _exchange(api, raw), 400, "MALFORMED_REQUEST")


async def test_a_broken_chunk_while_the_body_is_read_is_400(api) -> None:
    raw = (
        "POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {OPERATOR}\r\nTransfer-Encoding: chunked\r\n\r\n"
        "zz\r\n{}\r\n0\r\n\r\n"
    ).encode()
    _assert_contract(await _exchange(api, raw), 400, "MALFORMED_REQUEST")


async def test_a_head_that_never_finishes_is_cut_off(api) -> None:
    started = time.monotonic()
    answer = await _exchange(api, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1", timeout=5)
    took = time.monotonic() - started
    _assert_contract(answer, 408, "REQUEST_TIMEOUT")
    assert QUICK.header_timeout <= took < QUICK.header_timeout + 2


async def test_a_trickling_head_is_cut_off_too(api) -> None:
    reader, writer = await asyncio.open_connection(*api)
    started = time.monotonic()
    answer = b""
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(30):  # a byte every 0.1 s: each keeps the socket busy, none finishes
            try:
                answer = await asyncio.wait_for(reader.read(65536), 0.1)
            except TimeoutError:
                writer.write(b"X")
                continue
            break
        answer += await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert time.monotonic() - started < QUICK.header_timeout + 2
    _assert_contract(answer, 408, "REQUEST_TIMEOUT")


async def test_a_silent_connection_is_closed(api) -> None:
    answer = await _exchange(api, b"", timeout=5)
    _assert_contract(answer, 408, "REQUEST_TIMEOUT")


async def test_an_idle_keep_alive_connection_is_not_the_head_timer_s(api) -> None:
    """Between requests the keep-alive timeout applies, not the header timeout."""
    reader, writer = await asyncio.open_connection(*api)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        for _ in range(2):
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 ")
            length = int(_parse(head)[1]["content-length"])
            await reader.readexactly(length)
            await asyncio.sleep(QUICK.header_timeout * 2)  # idle, longer than the head timer
    finally:
        writer.close()


def test_defaults() -> None:
    assert ServerSettings().header_timeout == HEADER_TIMEOUT <= 10
    with pytest.raises(ValueError, match="header_timeout"):
        ServerSettings(header_timeout=0)


async def test_an_error_outside_the_handlers_is_500_in_the_contract(
    caplog, serving: AppContext
) -> None:
    """A failure outside the error middleware (here an outer middleware of a test) still
    answers JSON with the headers, and the log has its type, not its message."""
    app = make_local_api_app(LocalServiceDouble(NOW, ACTORS), GatewayMetrics(), serving)

    @web.middleware
    async def broken(request: web.Request, handler: Any) -> web.StreamResponse:
        raise RuntimeError(MARKER)

    app.middlewares.insert(0, broken)
    runner = await start(app, "127.0.0.1", 0, settings=QUICK)
    try:
        address = runner.addresses[0][:2]
        raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        _assert_contract(await _exchange(address, raw), 500, "INTERNAL_ERROR")
    finally:
        await runner.cleanup()
    assert "RuntimeError" in caplog.text and MARKER not in caplog.text


def _config(api: dict[str, Any]) -> NodeConfig:
    raw = {"node": {"body_id": "RU-FSSP"}, "api": {"host": "127.0.0.1", "port": 0, **api}}
    return NodeConfig.from_dict(raw, Path("/etc/gateway/node.toml"))


def test_timeouts_come_from_the_configuration() -> None:
    assert server_settings(_config({}).api) == ServerSettings()
    configured = server_settings(_config({"header_timeout": 3, "keepalive_timeout": 20.5}).api)
    assert configured == ServerSettings(header_timeout=3.0, keepalive_timeout=20.5)


@pytest.mark.parametrize(
    ("value", "says"),
    [(0, "more than 0"), (-1, "more than 0"), (7200, "at most 3600"), ("10", "a number")],
)
def test_a_bad_timeout_is_a_configuration_error(value: Any, says: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"\[api\]:? header_timeout.*{says}"):
        _config({"header_timeout": value})

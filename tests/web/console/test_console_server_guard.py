"""Below the console app: aiohttp's parser refusals and request heads that never finish get the
console's own error page with its security headers. A real server on 127.0.0.1 port 0, raw
sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gateway.web.console import make_console_app, start_console
from gateway.web.console.auth import CONTENT_SECURITY_POLICY
from gateway.web.server import ServerSettings
from tests.web.console.conftest import CHEAP_HASHER, IDENTITY, store_sources

MARKER = "Zyxwvut-4242"
QUICK = ServerSettings(header_timeout=0.5, keepalive_timeout=30)


@pytest.fixture
async def console(
    service, users, console_store, audit, clock, tmp_path
) -> AsyncIterator[tuple[str, int]]:
    app = make_console_app(
        service,
        users,
        secure_cookies=False,
        audit=audit,
        clock=clock,
        identity=IDENTITY,
        password_hasher=CHEAP_HASHER,
        **store_sources(console_store, tmp_path / "node.toml"),
    )
    runner = await start_console(app, "127.0.0.1", 0, settings=QUICK)
    try:
        yield runner.addresses[0][:2]
    finally:
        await runner.cleanup()


async def _exchange(address: tuple[str, int], raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def _assert_page(answer: bytes, status: int, title: str) -> str:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert int(lines[0].split()[1]) == status, answer[:300]
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    assert headers["content-type"].startswith("text/html")
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
    assert headers["server"] == "cis-exchange-gateway"
    html = body.decode("utf-8")
    assert f'<h1 id="error-title">{title}</h1>' in html
    assert f'data-status="{status}"' in html
    assert MARKER not in html
    return html


@pytest.mark.parametrize(
    "raw",
    [
        f"GET / HTTP/1.1\r\nHost: x\r\nCookie: {MARKER}{'a' * 10_240}\r\n\r\n".encode(),
        (
            "POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            f"Transfer-Encoding: chunked\r\nX-M: {MARKER}\r\n\r\n0\r\n\r\n"
        ).encode(),
    ],
    ids=["10-kb-header-line", "content-length-with-transfer-encoding"],
)
async def test_parser_refusal_is_the_console_s_error_page(console, raw: bytes) -> None:
    _assert_page(await _exchange(console, raw), 400, "Неверный запрос")


async def test_a_head_that_never_finishes_gets_the_408_page(console) -> None:
    started = time.monotonic()
    answer = await _exchange(console, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
    assert time.monotonic() - started < QUICK.header_timeout + 2
    _assert_page(answer, 408, "Запрос не получен вовремя")

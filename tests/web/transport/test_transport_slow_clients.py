"""Issue finding: connections that never finish their request head were held for 120 s, also
for clients whose certificate is from a directory CA but names no body of the directory. The
peer endpoint now closes them after PEER_HEADER_TIMEOUT with its plain TIMEOUT code."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.web.limits import PEER_HEADER_TIMEOUT
from gateway.web.peer_client import messages_url

from .conftest import Pki

SHORT = 1.0
"""The test's header timeout: the behaviour, not the default's length, is under test."""


async def _silent_client(url: str, pki: Pki, body: str, first_bytes: bytes) -> tuple[bytes, float]:
    host, port = url.removeprefix("https://").split("/")[0].split(":")
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(
        host, int(port), ssl=pki.client_context(body), server_hostname=host
    )
    try:
        if first_bytes:
            writer.write(first_bytes)
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), SHORT + 10)
    finally:
        writer.close()
    return answer, time.monotonic() - started


@pytest.mark.parametrize("client", ["kz", "unlisted"])
async def test_a_peer_that_never_sends_its_head_is_cut_off(
    pki, directory, pipeline, start_server, client
):
    """A listed peer, and one whose certificate is from a directory CA but names a body the
    directory lacks (BY-MJ): both are cut off at the header timeout."""
    server = await start_server(pki.server_context("ru"), directory, pipeline, header_timeout=SHORT)
    answer, took = await _silent_client(messages_url(server.url), pki, client, b"")
    assert answer.split(b"\r\n", 1)[0].endswith(b" 503 Service Unavailable"), answer[:200]
    assert b"TIMEOUT" in answer
    assert b"X-Content-Type-Options: nosniff" in answer
    assert took < SHORT + 5, "held far longer than the header timeout"
    assert pipeline.calls == []


async def test_a_head_trickling_in_is_cut_off_too(pki, directory, pipeline, start_server):
    server = await start_server(pki.server_context("ru"), directory, pipeline, header_timeout=SHORT)
    answer, took = await _silent_client(
        messages_url(server.url), pki, "kz", b"POST /exchange/v1/messages HTTP/1.1\r\nHost: x\r\n"
    )
    assert answer.split(b"\r\n", 1)[0].endswith(b" 503 Service Unavailable"), answer[:200]
    assert took < SHORT + 5


def test_the_default_is_short() -> None:
    assert PEER_HEADER_TIMEOUT <= 10

"""The peer client: kept connections, typed failures with a retryable flag."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from aiohttp import web

from gateway.app.tls import ReloadableContext
from gateway.web.peer_client import (
    PeerClient,
    PeerTransportError,
    TransportErrorCode,
    messages_url,
)

from .conftest import Pki, RecordingPipeline

N_REQUESTS = 25


async def test_many_requests_ride_one_connection(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    server_ctx = ReloadableContext(pki.server_context("ru"))
    server = await start_server(server_ctx, directory, pipeline)
    url = messages_url(server.url)
    async with PeerClient(pki.client_context("kz")) as client:
        for i in range(N_REQUESTS):
            answer = await client.post_message(url, f"<m n='{i}'/>".encode())
            assert answer.status == 200
        # Server side: one TLS connection was ever accepted, and it is still open.
        assert server_ctx.connections_wrapped == 1
        assert server.open_connections == 1
    assert len(pipeline.calls) == N_REQUESTS


async def test_parallel_deliveries_stay_within_the_per_peer_connection_cap(
    pki: Pki, directory, start_server
) -> None:
    async def slowish(sender: str, payload: bytes) -> tuple[int, bytes, str]:
        await asyncio.sleep(0.05)
        return 200, b"<ok/>", "application/xml"

    server_ctx = ReloadableContext(pki.server_context("ru"))
    server = await start_server(server_ctx, directory, slowish)
    url = messages_url(server.url)
    async with PeerClient(pki.client_context("kz"), connections_per_peer=3) as client:
        answers = await asyncio.gather(*(client.post_message(url, b"<a/>") for _ in range(12)))
    assert [a.status for a in answers] == [200] * 12
    assert server_ctx.connections_wrapped == 3


async def test_connection_refused_is_retryable(pki: Pki) -> None:
    # A port bound but not listening refuses connections, and nobody else can take it meanwhile.
    with socket.socket() as closed_door:
        closed_door.bind(("127.0.0.1", 0))
        port = closed_door.getsockname()[1]
        async with PeerClient(pki.client_context("kz")) as client:
            with pytest.raises(PeerTransportError) as info:
                await client.post_message(f"https://127.0.0.1:{port}/exchange/v1/messages", b"")
    assert info.value.code is TransportErrorCode.CONNECT_FAILED
    assert info.value.retryable is True
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)


async def test_peer_that_never_answers_times_out_retryably(pki: Pki) -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept TCP, never speak TLS

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        timeout = aiohttp.ClientTimeout(total=0.3)
        async with PeerClient(pki.client_context("kz"), timeout=timeout) as client:
            with pytest.raises(PeerTransportError) as info:
                await client.post_message(f"https://127.0.0.1:{port}/exchange/v1/messages", b"")
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert info.value.code is TransportErrorCode.TIMEOUT
    assert info.value.retryable is True


async def test_oversized_answer_is_refused(pki: Pki, directory, start_server) -> None:
    async def chatty(sender: str, payload: bytes) -> tuple[int, bytes, str]:
        return 200, b"z" * 5000, "application/xml"

    server = await start_server(pki.server_context("ru"), directory, chatty)
    async with PeerClient(pki.client_context("kz"), max_response_bytes=4096) as client:
        with pytest.raises(PeerTransportError) as info:
            await client.post_message(messages_url(server.url), b"<a/>")
    assert info.value.code is TransportErrorCode.RESPONSE_TOO_LARGE
    assert info.value.retryable is False


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8443/exchange/v1/messages",
        "https://user:pw@127.0.0.1/exchange/v1/messages",
        "https:///no-host",
        "ftp://127.0.0.1/x",
        "not a url",
    ],
)
async def test_bad_endpoint_is_refused_before_any_connection(pki: Pki, endpoint: str) -> None:
    async with PeerClient(pki.client_context("kz")) as client:
        with pytest.raises(PeerTransportError) as info:
            await client.post_message(endpoint, b"<a/>")
    assert info.value.code is TransportErrorCode.BAD_ENDPOINT
    assert info.value.retryable is False


def test_client_refuses_a_context_that_does_not_check_hosts(pki: Pki) -> None:
    lax = pki.client_context("kz")
    lax.check_hostname = False
    with pytest.raises(ValueError, match="verifies peers and hosts"):
        PeerClient(lax)


def test_messages_url_joins_the_endpoint_path() -> None:
    assert messages_url("https://kz.example:8443") == "https://kz.example:8443/exchange/v1/messages"
    assert messages_url("https://kz.example/") == "https://kz.example/exchange/v1/messages"


async def test_a_port_held_for_the_directory_refuses_until_a_node_shares_it(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    # The integration world's way of keeping the ports its directory lists ([peer] reuse_port).
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        url = messages_url(f"https://127.0.0.1:{port}")
        async with PeerClient(pki.client_context("kz")) as client:
            with pytest.raises(PeerTransportError) as refused:
                await client.post_message(url, b"<m/>")
            assert refused.value.code is TransportErrorCode.CONNECT_FAILED
        with pytest.raises(OSError):  # without SO_REUSEPORT the held port is taken
            await start_server(pki.server_context("ru"), directory, pipeline, port=port)
        server = await start_server(
            pki.server_context("ru"), directory, pipeline, port=port, reuse_port=True
        )
        assert server.port == port
        async with PeerClient(pki.client_context("kz")) as client:
            assert (await client.post_message(url, b"<m/>")).status == 200


async def test_a_second_server_takes_over_the_port_before_the_first_stops(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    old = await start_server(pki.server_context("ru"), directory, pipeline, reuse_port=True)
    new = await start_server(
        pki.server_context("ru"), directory, pipeline, port=old.port, reuse_port=True
    )
    await old.stop()
    async with PeerClient(pki.client_context("kz")) as client:
        for _ in range(5):  # fresh connections all land on the server still running
            answer = await client.post_message(messages_url(new.url), b"<m/>")
            assert answer.status == 200
    assert len(pipeline.calls) == 5


@pytest.mark.parametrize(
    ("retry_after", "read_as"),
    [("7", 7.0), ("²", None), ("9" * 5000, None), ("Fri, 31 Dec 2027 23:59:59 GMT", None)],
)
async def test_a_peer_s_retry_after_is_read_as_ascii_seconds_or_not_at_all(
    pki: Pki, retry_after: str, read_as: float | None
) -> None:
    """A busy peer's ``Retry-After`` is whatever it wrote: "²" passes str.isdigit and 5,000
    digits are past what int() reads; both once raised out of the client (not a transport
    failure: the delivery's retry bookkeeping never saw it)."""

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, headers={"Retry-After": retry_after})

    app = web.Application()
    app.router.add_post("/exchange/v1/messages", busy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=pki.server_context("ru"))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with PeerClient(pki.client_context("kz")) as client:
            with pytest.raises(PeerTransportError) as info:
                await client.post_message(f"https://127.0.0.1:{port}/exchange/v1/messages", b"<a/>")
    finally:
        await runner.cleanup()
    assert info.value.retryable is True
    assert info.value.retry_after == read_as

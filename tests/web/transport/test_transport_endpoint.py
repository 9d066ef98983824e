"""The peer endpoint's limits and refusals, over real mTLS."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from gateway.web.limits import PeerLimits, TokenBucket
from gateway.web.peer_client import PeerClient, PeerTransportError, TransportErrorCode, messages_url

from .conftest import Pki, RecordingPipeline


class PinnedClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _raw_post(pki: Pki, url: str, data, headers: dict[str, str]) -> tuple[int, bytes]:
    connector = aiohttp.TCPConnector(ssl=pki.client_context("kz"))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(url, data=data, headers=headers) as resp,
    ):
        return resp.status, await resp.read()


XML = {"Content-Type": "application/xml"}


async def test_oversized_body_gets_413_and_never_reaches_pipeline(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    limits = PeerLimits(max_message_bytes=1024)
    server = await start_server(pki.server_context("ru"), directory, pipeline, limits)
    url = messages_url(server.url)
    async with PeerClient(pki.client_context("kz")) as client:
        assert (await client.post_message(url, b"x" * 1024)).status == 200  # at the limit
        with pytest.raises(PeerTransportError) as info:
            await client.post_message(url, b"x" * 1025)
    assert info.value.status == 413
    assert info.value.retryable is False
    assert info.value.response is not None and info.value.response.body == b"MESSAGE_TOO_LARGE\n"
    assert [len(p) for _, p in pipeline.calls] == [1024]


async def test_oversized_chunked_body_without_length_gets_413(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    limits = PeerLimits(max_message_bytes=100_000)
    server = await start_server(pki.server_context("ru"), directory, pipeline, limits)
    sent = 0

    async def body():
        nonlocal sent
        for _ in range(64):  # 64 x 16 KiB = 1 MiB, no Content-Length
            sent += 16384
            yield b"y" * 16384

    try:
        status, answer = await _raw_post(pki, messages_url(server.url), body(), XML)
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
        status, answer = 413, b"MESSAGE_TOO_LARGE\n"  # cut while still sending: also fine
    assert (status, answer) == (413, b"MESSAGE_TOO_LARGE\n")
    assert pipeline.calls == []


async def test_rate_limit_per_peer_gives_429_with_retry_after(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    clock = PinnedClock()
    limits = PeerLimits(rate=TokenBucket(rate=0.5, capacity=3))
    server = await start_server(pki.server_context("ru"), directory, pipeline, limits, clock)
    url = messages_url(server.url)
    async with (
        PeerClient(pki.client_context("kz")) as kz,
        PeerClient(pki.client_context("ru")) as ru,
    ):
        for _ in range(3):
            await kz.post_message(url, b"<a/>")
        with pytest.raises(PeerTransportError) as info:
            await kz.post_message(url, b"<a/>")
        # Another body has a bucket of its own.
        assert (await ru.post_message(url, b"<a/>")).status == 200
        clock.now += 2.0  # one token back at 0.5/s
        assert (await kz.post_message(url, b"<a/>")).status == 200
    assert info.value.status == 429
    assert info.value.retryable is True
    assert info.value.retry_after == 2.0
    assert info.value.response is not None and info.value.response.body == b"RATE_LIMITED\n"
    assert [s for s, _ in pipeline.calls] == ["KZ-MJ"] * 3 + ["RU-FSSP", "KZ-MJ"]


async def test_slow_pipeline_hits_the_time_limit(pki: Pki, directory, start_server) -> None:
    async def slow(sender: str, payload: bytes) -> tuple[int, bytes, str]:
        await asyncio.sleep(5)
        return 200, b"", "application/xml"

    limits = PeerLimits(request_time_limit=0.2)
    server = await start_server(pki.server_context("ru"), directory, slow, limits)
    async with PeerClient(pki.client_context("kz")) as client:
        with pytest.raises(PeerTransportError) as info:
            await client.post_message(messages_url(server.url), b"<a/>")
    assert info.value.status == 503
    assert info.value.retryable is True
    assert info.value.response is not None and info.value.response.body == b"TIMEOUT\n"


async def test_timeout_inside_pipeline_is_not_mistaken_for_the_time_limit(
    pki: Pki, directory, start_server, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing(sender: str, payload: bytes) -> tuple[int, bytes, str]:
        raise TimeoutError(f"pool exhausted while storing {payload.decode()}")

    server = await start_server(pki.server_context("ru"), directory, failing)
    async with PeerClient(pki.client_context("kz")) as client:
        with pytest.raises(PeerTransportError) as info:
            await client.post_message(messages_url(server.url), "<Debtor>Иванов</Debtor>".encode())
    assert info.value.status == 500
    assert info.value.response is not None
    assert info.value.response.body == b"INTERNAL_ERROR\n"  # no detail leaks to the peer
    assert "TimeoutError" in caplog.text  # the operator sees what failed ...
    assert "Иванов" not in caplog.text  # ... but not what the message said


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        (
            "/exchange/v1/messages",
            {"Content-Type": "application/json"},
            415,
            b"UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "/exchange/v1/messages",
            {"Content-Type": "application/xml", "Content-Encoding": "gzip"},
            415,
            b"UNSUPPORTED_MEDIA_TYPE",
        ),
        ("/exchange/v1/other", XML, 404, b"NOT_FOUND"),
    ],
)
async def test_wrong_requests_get_stable_codes(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server, path, headers, status, code
) -> None:
    server = await start_server(pki.server_context("ru"), directory, pipeline)
    answer = await _raw_post(pki, server.url + path, b"<a/>", headers)
    assert answer == (status, code + b"\n")
    assert pipeline.calls == []


async def test_get_is_not_allowed(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    server = await start_server(pki.server_context("ru"), directory, pipeline)
    connector = aiohttp.TCPConnector(ssl=pki.client_context("kz"))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(messages_url(server.url)) as resp,
    ):
        assert (resp.status, await resp.read()) == (405, b"METHOD_NOT_ALLOWED\n")
        assert resp.headers["Server"] == "cis-exchange-gateway"


async def test_pipeline_status_and_content_type_pass_through(
    pki: Pki, directory, start_server
) -> None:
    async def rejecting(sender: str, payload: bytes) -> tuple[int, bytes, str]:
        return 422, b"<Rejection/>", "application/xml"

    server = await start_server(pki.server_context("ru"), directory, rejecting)
    async with PeerClient(pki.client_context("kz")) as client:
        with pytest.raises(PeerTransportError) as info:
            await client.post_message(messages_url(server.url), b"<a/>")
    assert info.value.code is TransportErrorCode.HTTP_STATUS
    assert info.value.retryable is False
    assert info.value.response is not None
    assert (info.value.response.body, info.value.response.content_type) == (
        b"<Rejection/>",
        "application/xml",
    )


async def _raw_tls(pki: Pki, port: int, cert: str, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=pki.client_context(cert), server_hostname="127.0.0.1"
    )
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    finally:
        writer.close()


def _expect_request(length: int) -> bytes:
    return (
        b"POST /exchange/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/xml\r\nExpect: 100-continue\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
    )


@pytest.mark.parametrize(
    ("cert", "length", "status_line"),
    [
        ("kz", 10, b"HTTP/1.1 100 Continue"),
        ("kz", 2048, b"HTTP/1.1 413 Request Entity Too Large"),
        ("unlisted", 10, b"HTTP/1.1 403 Forbidden"),
    ],
)
async def test_expect_continue_invites_only_known_peers_within_the_limit(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server, cert, length, status_line
) -> None:
    limits = PeerLimits(max_message_bytes=1024)
    server = await start_server(pki.server_context("ru"), directory, pipeline, limits)
    head = await _raw_tls(pki, server.port, cert, _expect_request(length))
    assert head.split(b"\r\n")[0] == status_line
    assert pipeline.calls == []


async def test_requests_in_flight_per_peer_are_capped(pki: Pki, directory, start_server) -> None:
    release = asyncio.Event()
    entered: list[str] = []

    async def blocking(sender: str, payload: bytes) -> tuple[int, bytes, str]:
        entered.append(sender)
        await release.wait()
        return 200, b"<ok/>", "application/xml; charset=utf-8"

    limits = PeerLimits(max_concurrent_per_peer=2)
    server = await start_server(pki.server_context("ru"), directory, blocking, limits)
    url = messages_url(server.url)
    async with (
        PeerClient(pki.client_context("kz")) as kz,
        PeerClient(pki.client_context("ru")) as ru,
    ):
        first = [asyncio.create_task(kz.post_message(url, b"<a/>")) for _ in range(2)]
        while len(entered) < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(PeerTransportError) as info:
            await kz.post_message(url, b"<a/>")
        other_peer = asyncio.create_task(ru.post_message(url, b"<a/>"))
        while len(entered) < 3:  # another body is not held back by KZ-MJ's cap
            await asyncio.sleep(0.01)
        release.set()
        answers = await asyncio.gather(*first, other_peer)
        # Slots are given back: KZ-MJ may send again.
        assert (await kz.post_message(url, b"<a/>")).status == 200
    assert (info.value.status, info.value.retry_after) == (429, 1.0)
    assert [a.status for a in answers] == [200, 200, 200]
    assert answers[0].content_type == "application/xml"
    assert entered == ["KZ-MJ", "KZ-MJ", "RU-FSSP", "KZ-MJ"]

"""Who gets through the peer endpoint: real servers, real TLS on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from gateway.app.tls import ReloadableContext
from gateway.web.peer_client import PeerClient, PeerTransportError, TransportErrorCode, messages_url

from .conftest import KEY_PASSPHRASE, Pki, RecordingPipeline, directory_of

PAYLOAD = b"<env:Envelope xmlns:env='urn:cis-exchange:envelope:1'/>"


async def test_known_peer_reaches_pipeline_with_its_body_id(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    server = await start_server(pki.server_context("ru"), directory, pipeline)
    async with PeerClient(pki.client_context("kz")) as client:
        answer = await client.post_message(messages_url(server.url), PAYLOAD)
    assert pipeline.calls == [("KZ-MJ", PAYLOAD)]
    assert answer.status == 200
    assert answer.content_type == "application/xml"
    assert answer.body == f"<Receipt from='KZ-MJ' bytes='{len(PAYLOAD)}'/>".encode()


async def test_tls13_is_chosen_and_server_reveals_no_versions(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    server = await start_server(pki.server_context("ru"), directory, pipeline)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=pki.client_context("kz"), server_hostname="127.0.0.1"
    )
    try:
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
        writer.write(b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404")
    assert body == b"NOT_FOUND\n"
    assert b"aiohttp" not in head.lower() and b"python" not in head.lower()


def _no_cert_context(pki: Pki, max_version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=pki.ca_pem)
    ctx.maximum_version = max_version
    return ctx


HANDSHAKE_FAILED = "handshake failed"
CLOSED_WITHOUT_ANSWER = "closed without answer"


async def raw_exchange(ctx: ssl.SSLContext, port: int) -> str:
    """POST over a raw TLS connection; say how it ended, or return the HTTP status line.

    asyncio servers send no TLS alert when they refuse a handshake (CPython gh-98078, fixed
    after 3.11): the client sees a reset during a TLS 1.2 handshake, or, in TLS 1.3 where the
    client's side ends first, a closed connection on its first read."""
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1"
        )
    except (ssl.SSLError, ConnectionResetError):
        return HANDSHAKE_FAILED
    try:
        writer.write(
            b"POST /exchange/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/xml\r\nContent-Length: 4\r\n\r\n<a/>"
        )
        line = await asyncio.wait_for(reader.readline(), timeout=5)
    except (ssl.SSLError, ConnectionResetError):
        return CLOSED_WITHOUT_ANSWER
    finally:
        writer.close()
    return line.decode().strip() or CLOSED_WITHOUT_ANSWER


@pytest.mark.parametrize(
    ("max_version", "outcome"),
    [
        (ssl.TLSVersion.TLSv1_2, HANDSHAKE_FAILED),
        (ssl.TLSVersion.TLSv1_3, CLOSED_WITHOUT_ANSWER),
    ],
)
async def test_client_without_certificate_is_refused_by_tls(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server, max_version, outcome
) -> None:
    server = await start_server(pki.server_context("ru"), directory, pipeline)
    assert await raw_exchange(_no_cert_context(pki, max_version), server.port) == outcome
    async with PeerClient(_no_cert_context(pki, max_version)) as client:
        with pytest.raises(PeerTransportError) as info:
            await client.post_message(messages_url(server.url), PAYLOAD)
    # TLS 1.2: refused mid-handshake; TLS 1.3: looks like a lost connection (no alert).
    assert info.value.code in {TransportErrorCode.TLS_FAILED, TransportErrorCode.CONNECTION_LOST}
    assert info.value.retryable
    assert pipeline.calls == []
    # Control: the same client with a certificate gets an HTTP answer.
    assert (await raw_exchange(pki.client_context("kz"), server.port)).startswith("HTTP/1.1 200")


@pytest.mark.parametrize("client_cert", ["foreign", "expired"])
@pytest.mark.parametrize(
    ("max_version", "outcome"),
    [
        (ssl.TLSVersion.TLSv1_2, HANDSHAKE_FAILED),
        (ssl.TLSVersion.TLSv1_3, CLOSED_WITHOUT_ANSWER),
    ],
)
async def test_certificate_of_other_ca_or_expired_is_refused_by_tls(
    pki: Pki, pipeline: RecordingPipeline, start_server, client_cert, max_version, outcome
) -> None:
    # Both are listed in the directory here: the refusal must come from the TLS layer.
    identify = directory_of(pki["ru"], pki["foreign"], pki["expired"])
    server = await start_server(pki.server_context("ru"), identify, pipeline)
    # The client trusts the server's CA; its own certificate is what the server must refuse.
    client_ctx = pki.client_context(client_cert, anchors=pki.ca_pem)
    client_ctx.maximum_version = max_version
    assert await raw_exchange(client_ctx, server.port) == outcome
    async with PeerClient(client_ctx) as client:
        with pytest.raises(PeerTransportError):
            await client.post_message(messages_url(server.url), PAYLOAD)
    assert pipeline.calls == []


async def test_valid_certificate_not_in_directory_gets_403(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    server = await start_server(pki.server_context("ru"), directory, pipeline)
    async with PeerClient(pki.client_context("unlisted")) as client:
        with pytest.raises(PeerTransportError) as info:
            await client.post_message(messages_url(server.url), PAYLOAD)
    assert info.value.status == 403
    assert info.value.retryable is False
    assert info.value.response is not None
    assert info.value.response.body == b"PEER_UNKNOWN\n"
    assert pipeline.calls == []


async def _control_server(pki: Pki, ctx: ssl.SSLContext) -> asyncio.Server:
    """A plain asyncio TLS server that accepts what ``ctx`` allows (to prove the client
    really offers what the test says it does)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version = writer.get_extra_info("ssl_object").version()
        writer.write(f"HTTP/1.1 200 {version}\r\n".encode())
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0, ssl=ctx)


def _lax_server_context(pki: Pki) -> ssl.SSLContext:
    c = pki["ru"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.load_cert_chain(c.cert_file, c.key_file, password=KEY_PASSPHRASE)
    return ctx


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize(
    ("label", "expected_with_lax_server"),
    [("tls1.1", "HTTP/1.1 200 TLSv1.1"), ("tls1.2-cbc", "HTTP/1.1 200 TLSv1.2")],
)
async def test_old_protocol_or_non_aead_cipher_is_refused(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server, label, expected_with_lax_server
) -> None:
    weak = pki.client_context("kz")
    if label == "tls1.1":
        weak.minimum_version = ssl.TLSVersion.TLSv1
        weak.maximum_version = ssl.TLSVersion.TLSv1_1
        weak.set_ciphers("ALL:@SECLEVEL=0")  # OpenSSL 3 would not even offer TLS 1.1 otherwise
    else:
        weak.maximum_version = ssl.TLSVersion.TLSv1_2
        weak.set_ciphers("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA")  # CBC only
    control = await _control_server(pki, _lax_server_context(pki))
    try:
        port = control.sockets[0].getsockname()[1]
        assert await raw_exchange(weak, port) == expected_with_lax_server
    finally:
        control.close()
        await control.wait_closed()
    server = await start_server(pki.server_context("ru"), directory, pipeline)
    assert await raw_exchange(weak, server.port) == HANDSHAKE_FAILED
    assert pipeline.calls == []


async def test_tls12_with_ecdhe_aead_is_accepted(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    server = await start_server(pki.server_context("ru"), directory, pipeline)
    ctx = pki.client_context("kz")
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    _, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=ctx, server_hostname="127.0.0.1"
    )
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.2"
    assert writer.get_extra_info("ssl_object").cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    writer.close()


async def test_client_checks_the_server_name(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    server = await start_server(pki.server_context("wrong_host"), directory, pipeline)
    async with PeerClient(pki.client_context("kz")) as client:
        with pytest.raises(PeerTransportError) as info:
            await client.post_message(messages_url(server.url), PAYLOAD)
    assert info.value.code is TransportErrorCode.TLS_FAILED
    assert pipeline.calls == []


async def test_client_does_not_trust_the_system_store(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    server = await start_server(pki.server_context("ru"), directory, pipeline)
    # A client whose only anchor is the other CA cannot accept our server's certificate.
    async with PeerClient(pki.client_context("foreign", anchors=pki.other_ca_pem)) as client:
        with pytest.raises(PeerTransportError) as info:
            await client.post_message(messages_url(server.url), PAYLOAD)
    assert info.value.code is TransportErrorCode.TLS_FAILED
    assert pki.client_context("kz").cert_store_stats()["x509_ca"] == 1


async def test_stalled_handshake_is_cut(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    server = await start_server(
        pki.server_context("ru"), directory, pipeline, handshake_timeout=0.3
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        # Say nothing: the server must close within its handshake timeout.
        assert await asyncio.wait_for(reader.read(), timeout=3) == b""
    finally:
        writer.close()


async def test_server_refuses_a_context_without_client_certificates(pki: Pki) -> None:
    from aiohttp import web

    from gateway.web.peer_server import run_peer_server

    lax = pki.server_context("ru")
    lax.verify_mode = ssl.CERT_OPTIONAL
    with pytest.raises(ValueError, match="client certificates"):
        await run_peer_server(web.Application(), lax)
    assert ReloadableContext(pki.server_context("ru")).verify_mode == ssl.CERT_REQUIRED

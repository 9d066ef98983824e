"""Hot reload: a new TLS certificate, key or trust anchors without restart, open links kept."""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from gateway.app.tls import ReloadableContext
from gateway.web.peer_client import PeerClient, messages_url

from .conftest import Pki, RecordingPipeline, directory_of
from .test_transport_mtls import CLOSED_WITHOUT_ANSWER, raw_exchange

PAYLOAD = b"<a/>"


class RecordingClientContext(ReloadableContext):
    """A client context that keeps every TLS connection (SSLObject) it made, to look at the
    server certificate each one saw."""

    def __init__(self, current: ssl.SSLContext) -> None:
        super().__init__(current)
        self.connections: list[ssl.SSLObject] = []

    def wrap_bio(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        sslobj = super().wrap_bio(*args, **kwargs)
        self.connections.append(sslobj)
        return sslobj

    def server_certs(self) -> list[bytes]:
        return [c.getpeercert(binary_form=True) for c in self.connections]


async def _post(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(url, data=PAYLOAD, headers={"Content-Type": "application/xml"}) as r:
        await r.read()
        return r.status


async def test_new_certificate_served_to_new_handshakes_while_open_connection_survives(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    reloadable = ReloadableContext(pki.server_context("ru"))
    server = await start_server(reloadable, directory, pipeline)
    url = messages_url(server.url)
    kept_ctx = RecordingClientContext(pki.client_context("kz"))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=kept_ctx)) as kept:
        assert await _post(kept, url) == 200
        assert kept_ctx.server_certs() == [pki["ru"].der]

        reloadable.swap(pki.server_context("ru_rotated"))

        # The kept-alive connection is still served, still with the certificate it opened with
        # (no second connection was made).
        assert await _post(kept, url) == 200
        assert kept_ctx.server_certs() == [pki["ru"].der]

        # A new connection gets the new certificate.
        fresh_ctx = RecordingClientContext(pki.client_context("kz"))
        connector = aiohttp.TCPConnector(ssl=fresh_ctx)
        async with aiohttp.ClientSession(connector=connector) as fresh:
            assert await _post(fresh, url) == 200
        assert fresh_ctx.server_certs() == [pki["ru_rotated"].der]

        # And the old connection still works after that.
        assert await _post(kept, url) == 200
        assert kept_ctx.server_certs() == [pki["ru"].der]
    assert reloadable.connections_wrapped == 2
    assert [sender for sender, _ in pipeline.calls] == ["KZ-MJ"] * 4


async def test_trust_anchors_reload_without_restart(
    pki: Pki, pipeline: RecordingPipeline, start_server
) -> None:
    identify = directory_of(pki["kz"], pki["foreign"])
    reloadable = ReloadableContext(pki.server_context("ru"))
    server = await start_server(reloadable, identify, pipeline)
    foreign = pki.client_context("foreign", anchors=pki.ca_pem)
    foreign.maximum_version = ssl.TLSVersion.TLSv1_3

    async with PeerClient(pki.client_context("kz")) as kz_client:
        assert (await kz_client.post_message(messages_url(server.url), PAYLOAD)).status == 200
        assert await raw_exchange(foreign, server.port) == CLOSED_WITHOUT_ANSWER

        # The new directory trusts the other CA instead of ours.
        reloadable.swap(pki.server_context("ru", anchors=pki.other_ca_pem))

        assert (await raw_exchange(foreign, server.port)).startswith("HTTP/1.1 200")
        assert await raw_exchange(pki.client_context("kz"), server.port) == CLOSED_WITHOUT_ANSWER
        # The KZ connection opened before the reload is not dropped by it.
        assert (await kz_client.post_message(messages_url(server.url), PAYLOAD)).status == 200
    assert [s for s, _ in pipeline.calls] == ["KZ-MJ", "KZ-MJ", "KZ-MJ"]


def test_swap_refuses_a_context_of_the_other_side(pki: Pki) -> None:
    reloadable = ReloadableContext(pki.server_context("ru"))
    with pytest.raises(ValueError, match="server-side"):
        reloadable.swap(pki.client_context("ru"))
    assert reloadable.current.protocol == ssl.PROTOCOL_TLS_SERVER


async def test_client_side_reload_presents_the_new_client_certificate(
    pki: Pki, pipeline: RecordingPipeline, start_server
) -> None:
    identify = directory_of(pki["kz"], pki["ru"], pki["ru_rotated"])
    server = await start_server(pki.server_context("kz"), identify, pipeline)
    client_ctx = ReloadableContext(pki.client_context("ru"))
    async with PeerClient(client_ctx) as client:
        await client.post_message(messages_url(server.url), PAYLOAD)
        client_ctx.swap(pki.client_context("ru_rotated"))
        await client.drop_connections()
        await client.post_message(messages_url(server.url), PAYLOAD)
    assert client_ctx.connections_wrapped == 2
    assert [s for s, _ in pipeline.calls] == ["RU-FSSP", "RU-FSSP"]

"""Building the contexts: the policy holds and loading errors name what to fix."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from gateway.app import tls
from gateway.app.tls import ReloadableContext
from gateway.model.problems import ConfigurationError

from .conftest import KEY_PASSPHRASE, Pki


@pytest.mark.parametrize("side", ["server", "client"])
def test_policy_of_both_sides(pki: Pki, side: str) -> None:
    ctx = pki.server_context("ru") if side == "server" else pki.client_context("ru")
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.verify_flags & ssl.VERIFY_X509_STRICT
    assert ctx.options & ssl.OP_NO_RENEGOTIATION
    assert ctx.cert_store_stats()["x509_ca"] == 1  # our anchor only, no system store
    tls12 = [c for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12, "TLS 1.2 suites must remain for peers without 1.3"
    assert all(c["kea"] == "kx-ecdhe" and c["aead"] for c in tls12)
    assert all(c["aead"] for c in ctx.get_ciphers())
    if side == "client":
        assert ctx.check_hostname
    else:
        assert ctx.num_tickets == 0


def test_wrong_passphrase_names_the_files(pki: Pki) -> None:
    ru = pki["ru"]
    with pytest.raises(ConfigurationError, match=r"ru\.crt.*ru\.key.*passphrase"):
        tls.server_context(ru.cert_file, ru.key_file, pki.ca_pem, password=b"wrong")


def test_key_of_another_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(ConfigurationError, match="matches the certificate"):
        tls.client_context(
            pki["ru"].cert_file, pki["kz"].key_file, pki.ca_pem, password=KEY_PASSPHRASE
        )


def test_missing_file_is_named(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "tls.crt"
    with pytest.raises(ConfigurationError, match=r"tls\.crt not found"):
        tls.server_context(missing, pki["ru"].key_file, pki.ca_pem, password=KEY_PASSPHRASE)


@pytest.mark.parametrize(
    ("anchors", "message"),
    [("", "trust anchors are empty"), ("not a certificate", "not valid")],
)
def test_bad_trust_anchors_are_refused(pki: Pki, anchors: str, message: str) -> None:
    ru = pki["ru"]
    with pytest.raises(ConfigurationError, match=message):
        tls.server_context(ru.cert_file, ru.key_file, anchors, password=KEY_PASSPHRASE)


def test_unreadable_crl_is_refused(pki: Pki, tmp_path: Path) -> None:
    ru = pki["ru"]
    with pytest.raises(ConfigurationError, match=r"CRL file .*none\.pem"):
        tls.server_context(
            ru.cert_file,
            ru.key_file,
            pki.ca_pem,
            password=KEY_PASSPHRASE,
            crl_files=(tmp_path / "none.pem",),
        )


def test_passphrase_may_come_from_a_callable(pki: Pki) -> None:
    ru = pki["ru"]
    ctx = tls.server_context(
        ru.cert_file, ru.key_file, pki.ca_pem, password=lambda: KEY_PASSPHRASE.decode()
    )
    assert ctx.cert_store_stats()["x509_ca"] == 1


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("weaken", ["verify_none", "no_hostname", "tls11"])
def test_reload_cannot_weaken_the_policy(pki: Pki, weaken: str) -> None:
    reloadable = ReloadableContext(pki.client_context("ru"))
    weak = pki.client_context("ru_rotated")
    if weaken == "verify_none":
        weak.check_hostname = False
        weak.verify_mode = ssl.CERT_NONE
    elif weaken == "no_hostname":
        weak.check_hostname = False
    else:
        weak.minimum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ValueError):
        reloadable.swap(weak)
    assert reloadable.current.verify_mode == ssl.CERT_REQUIRED
    assert reloadable.current.check_hostname


def test_reloadable_wrapper_itself_fails_closed(pki: Pki) -> None:
    # Its own settings (never used while delegation works) carry no certificate and no anchor.
    wrapper = ReloadableContext(pki.server_context("ru"))
    assert ssl.SSLContext.cert_store_stats(wrapper)["x509_ca"] == 0
    assert wrapper.verify_mode == ssl.CERT_REQUIRED
    assert wrapper.minimum_version == ssl.TLSVersion.TLSv1_2


def test_reloadable_context_wraps_blocking_sockets_too(pki: Pki) -> None:
    import socket
    import threading

    server_ctx = ReloadableContext(pki.server_context("ru"))
    client_ctx = ReloadableContext(pki.client_context("kz"))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls_conn:
            seen.append(tls_conn.getpeercert(binary_form=True))
            tls_conn.sendall(b"ok")

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
        ):
            assert conn.recv(2) == b"ok"
            assert conn.getpeercert(binary_form=True) == pki["ru"].der
    finally:
        thread.join(timeout=5)
        listener.close()
    assert seen == [pki["kz"].der]
    assert (server_ctx.connections_wrapped, client_ctx.connections_wrapped) == (1, 1)


async def test_peer_server_refuses_a_client_side_context(pki: Pki) -> None:
    from aiohttp import web

    from gateway.web.peer_server import run_peer_server

    with pytest.raises(ValueError, match="server-side context"):
        await run_peer_server(web.Application(), pki.client_context("ru"))

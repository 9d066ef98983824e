"""Revocation at the TLS layer: with CRLs configured, fail closed."""

from __future__ import annotations

from gateway.app import tls

from .conftest import KEY_PASSPHRASE, Pki, RecordingPipeline
from .test_transport_mtls import CLOSED_WITHOUT_ANSWER, raw_exchange


def _server_with_crls(pki: Pki, *crls):
    ru = pki["ru"]
    return tls.server_context(
        ru.cert_file, ru.key_file, pki.ca_pem, password=KEY_PASSPHRASE, crl_files=crls
    )


async def test_revoked_client_certificate_is_refused_others_pass(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    crl = pki.crl("ca", revoked=(pki["kz"],))
    server = await start_server(_server_with_crls(pki, crl), directory, pipeline)
    assert await raw_exchange(pki.client_context("kz"), server.port) == CLOSED_WITHOUT_ANSWER
    assert (await raw_exchange(pki.client_context("ru"), server.port)).startswith("HTTP/1.1 200")
    assert [s for s, _ in pipeline.calls] == ["RU-FSSP"]


async def test_no_crl_for_the_issuer_fails_closed(
    pki: Pki, directory, pipeline: RecordingPipeline, start_server
) -> None:
    # CRL checking is on (a CRL is configured) but none comes from our CA: nobody gets in.
    server = await start_server(_server_with_crls(pki, pki.crl("other_ca")), directory, pipeline)
    assert await raw_exchange(pki.client_context("kz"), server.port) == CLOSED_WITHOUT_ANSWER
    # With our CA's (empty) CRL added, the same client passes.
    server = await start_server(
        _server_with_crls(pki, pki.crl("other_ca"), pki.crl("ca")), directory, pipeline
    )
    assert (await raw_exchange(pki.client_context("kz"), server.port)).startswith("HTTP/1.1 200")

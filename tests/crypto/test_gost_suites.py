"""Algorithm suites as data (issue 18): the directory says per body which suites it signs with
and accepts; a document of a suite the recipient does not accept is refused with its code; a
body rotates from ECDSA to GOST with an overlap in which each peer gets a suite it accepts."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.app.audit_checkpoints import sign_statement, verify_statement
from gateway.config import KeysSection
from gateway.crypto import algorithms, certificates
from gateway.crypto.algorithms import KeySpec
from gateway.crypto.certificates import CertificateProfile
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.keys.generations import RevocationReason, always_in_force, update_generations
from gateway.crypto.keys.keystore import KeyRole, KeyStore, KeyStoreError
from gateway.crypto.xades import sign_document, verify_document
from gateway.demo.pki import build_demo_pki
from gateway.exchange import inbound
from gateway.exchange.directory import (
    DirectoryIndex,
    build_directory_xml,
    parse_directory_xml,
)
from gateway.exchange.sending import common_suites
from gateway.model.bodies import BodyLevel
from gateway.model.directory import (
    LEGACY_SUITES,
    BodyCertificate,
    BodyName,
    CertificateRole,
    Directory,
    DirectoryBody,
    Suite,
)
from gateway.model.problems import DocumentRejected
from gateway.model.profiles import CIS_ENFORCEMENT, Participation
from tests.crypto.helpers import NOW, PASSPHRASE, RECIPIENT, SENDER, VERIFY_AT, CryptoPKI, envelope

GOST_SUITES = {KeySpec.GOST_256: Suite.GOST_2012_256, KeySpec.GOST_512: Suite.GOST_2012_512}


def _body(body_id: str, der: bytes, **suites: tuple[Suite, ...]) -> DirectoryBody:
    return DirectoryBody(
        id=body_id,
        state=body_id[:2],
        level=BodyLevel.CENTRAL,
        names=(BodyName("ru", body_id),),
        endpoint="https://127.0.0.1:4443",
        certificates=(
            BodyCertificate(CertificateRole.SEAL, der),
            BodyCertificate(CertificateRole.OFFICIALS_CA, der),
            BodyCertificate(CertificateRole.TLS, der),
        ),
        calendar=body_id[:2],
        participations=(Participation(body_id[:2], CIS_ENFORCEMENT.id, date(2026, 1, 1)),),
        **suites,  # type: ignore[arg-type]
    )


def _directory(*bodies: DirectoryBody) -> Directory:
    return Directory(version=1, issued_at=NOW, depositary="BY-CISEXCOM", bodies=bodies)


@pytest.fixture(scope="module", params=list(GOST_SUITES), ids=lambda s: s.value)
def gost_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp(f"suites-{request.param.value}")
    pki = build_demo_pki(
        root,
        [SENDER, RECIPIENT],
        now=NOW,
        passphrase=PASSPHRASE.encode(),
        spec=request.param,
        roles=("seal", "official"),
    )
    return request.param, pki


def _store(directory: Path, body: str = SENDER) -> KeyStore:
    section = KeysSection(dir=directory, official="chief")
    return KeyStore(section, body, environ={"GATEWAY_KEY_PASSPHRASE": PASSPHRASE})


def _published(test_pki: CryptoPKI, body_id: str, **suites: tuple[Suite, ...]) -> DirectoryBody:
    store = test_pki.store(body_id)
    der = serialization.Encoding.DER
    return replace(
        _body(body_id, b"", **suites),
        certificates=(
            BodyCertificate(CertificateRole.SEAL, store.seal().certificate.public_bytes(der)),
            BodyCertificate(
                CertificateRole.OFFICIALS_CA, test_pki.pki.ca.certificate.public_bytes(der)
            ),
            BodyCertificate(CertificateRole.TLS, store.tls().certificate.public_bytes(der)),
        ),
    )


def test_directory_round_trips_suites_and_absent_means_legacy(test_pki: CryptoPKI) -> None:
    gost = _published(
        test_pki,
        SENDER,
        signs_with=(Suite.GOST_2012_256,),
        accepts=(Suite.GOST_2012_256, Suite.ECDSA),
    )
    legacy = _published(test_pki, RECIPIENT)
    parsed = parse_directory_xml(build_directory_xml(_directory(gost, legacy)))
    by_id = {b.id: b for b in parsed.bodies}
    assert by_id[SENDER].signing_suites == (Suite.GOST_2012_256,)
    assert by_id[SENDER].accepted_suites == (Suite.GOST_2012_256, Suite.ECDSA)
    assert by_id[RECIPIENT].signs_with == () and by_id[RECIPIENT].accepts == ()
    assert by_id[RECIPIENT].accepted_suites == LEGACY_SUITES
    assert b"Suites" not in build_directory_xml(_directory(legacy))  # old form unchanged


def test_wrong_suite_for_the_recipient_is_refused(gost_world) -> None:  # type: ignore[no-untyped-def]
    spec, pki = gost_world
    suite = GOST_SUITES[spec]
    store = _store(pki.body_dirs[SENDER])
    signed = sign_document(envelope(), store.official(), store.seal(), NOW)
    trust = certificates_trust(pki)
    report = verify_document(signed, trust, VERIFY_AT).report
    assert report.passed
    der = b"\x30\x03\x02\x01\x01"
    sender = _body(SENDER, der, signs_with=(suite,), accepts=(suite,))
    # The recipient publishes no suites: it accepts the legacy ones only.
    index = DirectoryIndex.of(_directory(sender, _body(RECIPIENT, der)))
    with pytest.raises(DocumentRejected) as refused:
        inbound.check_suites(index, SENDER, RECIPIENT, report)
    problem = refused.value.problems[0]
    assert problem.code == "SIGNATURE_SUITE_NOT_ACCEPTED"
    assert suite.value in problem.message_en and "ecdsa" in problem.message_en
    # Accepting the suite, the same document passes; a sender not publishing it is refused.
    accepting = _body(RECIPIENT, der, signs_with=(Suite.ECDSA,), accepts=(suite, Suite.ECDSA))
    inbound.check_suites(
        DirectoryIndex.of(_directory(sender, accepting)), SENDER, RECIPIENT, report
    )
    silent = _body(SENDER, der, signs_with=(Suite.ECDSA,), accepts=(Suite.ECDSA,))
    with pytest.raises(DocumentRejected) as unpublished:
        inbound.check_suites(
            DirectoryIndex.of(_directory(silent, accepting)), SENDER, RECIPIENT, report
        )
    assert unpublished.value.problems[0].code == "SIGNATURE_SUITE_NOT_PUBLISHED"


def certificates_trust(pki):  # type: ignore[no-untyped-def]
    from gateway.crypto.trust import TrustList

    return TrustList([pki.ca.certificate], [pki.ca.crl(now=NOW)])


def test_rotation_from_ecdsa_to_gost_with_overlap(gost_world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Generation 1 ECDSA, generation 2 GOST activated: peers accepting GOST get GOST, peers
    that do not yet get the superseded ECDSA generation (the overlap) until it is revoked."""
    spec, gost_pki = gost_world
    suite = GOST_SUITES[spec]
    ec_pki = build_demo_pki(
        tmp_path / "ec", [SENDER], now=NOW, passphrase=PASSPHRASE.encode(), roles=("seal",)
    )
    keys_dir = tmp_path / "keys"
    shutil.copytree(ec_pki.body_dirs[SENDER], keys_dir)
    gost_ca: DemoCA = gost_pki.ca
    gost_key = algorithms.generate_private_key(spec)
    cert = gost_ca.issue(
        gost_key.public_key(), CertificateProfile(role="seal", body_id=SENDER), now=NOW
    )
    store = _store(keys_dir)
    switch = NOW + timedelta(hours=1)

    def add(manifest):  # type: ignore[no-untyped-def]
        updated, number = manifest.with_new_generation(NOW)
        certificates.write_private_key(
            store.key_path("seal", "", number), gost_key, PASSPHRASE.encode()
        )
        store.cert_path("seal", "", number).write_bytes(
            certificates.pem_bundle([cert, gost_ca.certificate])
        )
        return updated.with_activation(number, switch, now=NOW)

    update_generations(keys_dir, "seal", add)
    at = switch + timedelta(minutes=1)
    both = (suite, Suite.ECDSA)
    assert (
        algorithms.suite_for_key(
            certificates.public_key_of(
                store.signing_key_for("seal", at=at, suites=both).certificate
            )
        )
        is suite
    )
    legacy_peer = store.signing_key_for(KeyRole.SEAL, at=at, suites=LEGACY_SUITES)
    assert legacy_peer.certificate.issuer == ec_pki.ca.certificate.subject
    assert (
        algorithms.suite_for_key(certificates.public_key_of(legacy_peer.certificate)) is Suite.ECDSA
    )
    # Before the switch the ECDSA generation is in force and no GOST one was ever active.
    before = NOW + timedelta(minutes=1)
    assert store.signing_key_for("seal", at=before, suites=LEGACY_SUITES).certificate != cert
    with pytest.raises(KeyStoreError, match=suite.value):
        store.signing_key_for("seal", at=before, suites=(suite,))
    # The overlap ends when generation 1 is revoked: a legacy-only peer has no suite left.
    update_generations(
        keys_dir,
        "seal",
        lambda m: m.with_revocation(1, at, RevocationReason.SUPERSEDED, now=at),
    )
    later = at + timedelta(minutes=1)
    with pytest.raises(KeyStoreError, match="ecdsa"):
        store.signing_key_for("seal", at=later, suites=LEGACY_SUITES)
    assert store.signing_key_for("seal", at=later, suites=(suite,)).certificate == cert


def test_a_sender_refuses_to_submit_without_a_common_suite() -> None:
    """The submitting node finds the suites both publish; none refuses before signing."""
    der = b"\x30\x03\x02\x01\x01"
    sender = _body(SENDER, der, signs_with=(Suite.GOST_2012_256, Suite.ECDSA))
    gost_only = _body(RECIPIENT, der, accepts=(Suite.GOST_2012_512, Suite.GOST_2012_256))
    index = DirectoryIndex.of(_directory(sender, gost_only))
    assert common_suites(index, SENDER, RECIPIENT) == (Suite.GOST_2012_256,)
    legacy = DirectoryIndex.of(_directory(sender, _body(RECIPIENT, der)))
    assert common_suites(legacy, SENDER, RECIPIENT) == (Suite.ECDSA,)
    only_512 = _body(RECIPIENT, der, accepts=(Suite.GOST_2012_512,))
    with pytest.raises(DocumentRejected) as refused:
        common_suites(DirectoryIndex.of(_directory(sender, only_512)), SENDER, RECIPIENT)
    assert refused.value.problems[0].code == "SIGNATURE_SUITE_NOT_ACCEPTED"


def test_audit_statements_sign_and_verify_with_a_gost_seal(gost_world) -> None:  # type: ignore[no-untyped-def]
    """Checkpoints and other detached statements are sealed with GOST like any seal."""
    _, pki = gost_world
    seal = _store(pki.body_dirs[SENDER]).seal()
    statement = sign_statement(
        seal, {"checkpoint": 1, "head": "ab" * 32, "at": "2026-12-06T00:00:00+00:00"}
    )
    check = verify_statement(
        statement.statement,
        statement.signature,
        statement.certificate,
        always_in_force([seal.certificate]),
    )
    assert check.ok, check.reason
    forged = verify_statement(
        statement.statement.replace("ab", "ac", 1), statement.signature, statement.certificate
    )
    assert not forged.ok

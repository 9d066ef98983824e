"""Rotating the seal (and an official) through the CLI: pending, scheduled switch, publication.

The CLI reads the wall clock, so times here are relative to it; the PKI was made an hour ago.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gateway.crypto.keys.generations import (
    GenerationStatus,
    RotationError,
    directory_with_certificates,
    directory_with_publication,
    publication,
    published_from_json,
)
from gateway.crypto.keys.keystore import KeyRole
from gateway.crypto.trust import TrustList
from gateway.crypto.xades import sign_document, verify_document
from gateway.demo.pki import DemoPKI
from gateway.exchange.directory import (
    DirectoryIndex,
    build_directory_xml,
    check_update,
    parse_directory_xml,
)
from gateway.main import main
from gateway.model.bodies import BodyLevel
from gateway.model.directory import (
    BodyCertificate,
    BodyName,
    CertificateRole,
    Directory,
    DirectoryBody,
)
from gateway.model.profiles import CIS_ENFORCEMENT, Participation
from gateway.store import audit, open_store
from tests.crypto.helpers import envelope
from tests.crypto.rotation.conftest import BODY, PEER, NodeDir, make_node
from tests.tooling import softhsm_token


def cli(node: NodeDir, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(["keys", *args, "--config", str(node.config_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def directory_v1(node: NodeDir, issued_at: datetime) -> Directory:
    """Version 1 of a directory listing the node's original certificates."""
    ks = node.keystore()
    seal, tls, enc = ks.load("seal", generation=1), ks.load("tls"), ks.load("encryption")
    body = DirectoryBody(
        id=BODY,
        state="RU",
        level=BodyLevel.CENTRAL,
        names=(BodyName("ru", "ФССП России"),),
        endpoint="https://127.0.0.1:4443",
        certificates=(
            BodyCertificate(CertificateRole.SEAL, der(seal.certificate)),
            BodyCertificate(CertificateRole.OFFICIALS_CA, der(node.ca().certificate)),
            BodyCertificate(CertificateRole.TLS, der(tls.certificate)),
            BodyCertificate(CertificateRole.ENCRYPTION, der(enc.certificate)),
        ),
        calendar="RU",
        participations=(Participation("RU", CIS_ENFORCEMENT.id, date(2026, 1, 1)),),
    )
    return Directory(version=1, issued_at=issued_at, depositary="BY-CISEXCOM", bodies=(body,))


def test_rotate_activate_publish_and_sign(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    other_process = node.keystore()
    assert other_process.seal(at=now).generation == 1  # loaded and kept before the rotation

    out = cli(node, capsys, "rotate", "seal", "--demo-ca", str(node.ca_dir))
    assert "PENDING" in out
    assert (node.keys_dir / "seal.2.key.pem").exists()
    assert (node.keys_dir / "seal.2.crt.pem").exists()
    ks = node.keystore()
    assert ks.generations("seal").status(2, now) is GenerationStatus.PENDING
    assert ks.seal(at=now + timedelta(days=1)).generation == 1  # pending: not used

    # Before the switch both are published: the active one and the pending one.
    published = json.loads(cli(node, capsys, "publish", "--json"))["certificates"]
    seals = {p["key"]: p for p in published if p["role"] == "seal"}
    assert set(seals) == {"seal", "seal.2"}
    assert seals["seal"]["status"] == "active" and seals["seal.2"]["status"] == "pending"
    old_cert = ks.load("seal", generation=1).certificate
    new_cert = ks.load("seal", generation=2).certificate
    assert seals["seal.2"]["sha256"] == new_cert.fingerprint(hashes.SHA256()).hex()
    assert seals["seal"]["sha256"] == old_cert.fingerprint(hashes.SHA256()).hex()
    assert x509.load_pem_x509_certificate(seals["seal.2"]["pem"].encode()) == new_cert

    switch = now + timedelta(hours=1)
    cli(node, capsys, "activate", "seal", "--generation", "2", "--at", switch.isoformat())
    before, after = switch - timedelta(minutes=1), switch + timedelta(minutes=1)
    assert ks.seal(at=before).certificate == old_cert
    assert ks.seal(at=after).certificate == new_cert
    # A process that loaded the key before sees the switch without restart.
    assert other_process.seal(at=after).generation == 2
    assert other_process.seal(at=before).generation == 1

    doc_before = sign_document(envelope(), ks.official(at=before), ks.seal(at=before), before)
    doc_after = sign_document(envelope(), ks.official(at=after), ks.seal(at=after), after)

    # The depositary's next version lists both seals; a peer pins against it.
    v1 = directory_v1(node, now - timedelta(minutes=1))
    v2 = directory_with_publication(v1, BODY, publication(ks, now), 2, now)
    check_update(v1, v2, now=now)
    v2 = parse_directory_xml(build_directory_xml(v2))  # valid for the schema and the rules
    pinned = {c.sha256 for c in v2.bodies[0].certificates_for(CertificateRole.SEAL)}
    assert len(pinned) == 2
    index = DirectoryIndex.of(v2)
    assert index.body_by_seal_certificate(der(old_cert)).id == BODY
    assert index.body_by_seal_certificate(der(new_cert)).id == BODY
    old_pinned = {c.sha256 for c in v1.bodies[0].certificates_for(CertificateRole.SEAL)}

    ca = node.ca()
    for doc, at in ((doc_before, before), (doc_after, after)):
        trust = TrustList([ca.certificate], [ca.crl(now=at)])
        verified = verify_document(doc, trust, at + timedelta(seconds=30), expected_sender=BODY)
        assert verified.passed, verified.report.summary()
        seal_sha = verified.report.signatures[0].chain[0].sha256
        assert seal_sha in pinned
    # Without the new version a peer would refuse the new seal (not pinned in version 1).
    assert seal_sha not in old_pinned

    with open_store(node.config.database_url).engine.connect() as conn:
        kinds = [e.kind for e in audit.events(conn)]
        assert audit.verify(conn).intact
    assert kinds == ["key.rotated", "key.publication.exported", "key.activated"]


def test_official_rotation_keeps_person_and_title(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(node, capsys, "rotate", "official:chief", "--demo-ca", str(node.ca_dir))
    ks = node.keystore()
    old, new = (ks.load(KeyRole.OFFICIAL, "chief", generation=n).certificate for n in (1, 2))
    assert new.subject == old.subject and new != old
    cli(node, capsys, "activate", "official:chief", "--generation", "2", "--at", "now")
    assert ks.official(at=datetime.now(UTC) + timedelta(seconds=1)).certificate == new


def test_without_a_ca_rotation_writes_a_request_and_activation_waits(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    out = cli(node, capsys, "rotate", "tls")
    assert "certificate request" in out
    csr = x509.load_pem_x509_csr((node.keys_dir / "tls.2.csr.pem").read_bytes())
    assert csr.is_signature_valid
    code = main(
        [
            "keys",
            "activate",
            "tls",
            "--generation",
            "2",
            "--at",
            "now",
            "--config",
            str(node.config_path),
        ]
    )
    assert code == 2 and "no certificate" in capsys.readouterr().err
    assert node.keystore().tls().generation == 1
    # The CA answers; importing the certificate makes generation 2 usable.
    ca = node.ca()
    from gateway.crypto.certificates import CertificateProfile

    profile = CertificateProfile(
        role="tls", body_id=BODY, dns_names=("localhost",), ip_addresses=("127.0.0.1",)
    )
    cert = ca.issue_from_csr(csr, profile, now=datetime.now(UTC))
    pem = node.root / "tls2.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cli(node, capsys, "import", "tls", str(pem), "--generation", "2")
    cli(node, capsys, "activate", "tls", "--generation", "2", "--at", "now")
    assert node.keystore().tls(at=datetime.now(UTC) + timedelta(seconds=1)).certificate == cert


def test_directory_with_certificates_checks_owner_and_version(node: NodeDir) -> None:
    now = datetime.now(UTC)
    v1 = directory_v1(node, now)
    ks = node.keystore()
    tls = ks.load("tls").certificate
    with pytest.raises(RotationError, match="greater"):
        directory_with_certificates(v1, BODY, "seal", [ks.load("seal").certificate], 1, now)
    # A TLS certificate (digitalSignature, no title) is no seal: never published as one.
    with pytest.raises(RotationError, match="serverAuth"):
        directory_with_certificates(v1, BODY, "seal", [tls], 2, now)
    with pytest.raises(RotationError, match=r"extended key usage"):
        directory_with_certificates(v1, BODY, "tls", [ks.load("seal").certificate], 2, now)
    with pytest.raises(RotationError, match="not in directory"):
        directory_with_certificates(v1, PEER, "tls", [tls], 2, now)
    extended = directory_with_certificates(v1, BODY, "tls", [tls], 2, now, extend=True)
    assert len(extended.bodies[0].certificates_for(CertificateRole.TLS)) == 1  # no duplicate


def test_depositary_builds_the_same_version_from_the_printed_json(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    cli(node, capsys, "rotate", "seal", "--demo-ca", str(node.ca_dir))
    printed = json.loads(cli(node, capsys, "publish", "--json"))
    v1 = directory_v1(node, now - timedelta(minutes=1))
    from_json = directory_with_publication(v1, BODY, published_from_json(printed), 2, now)
    direct = directory_with_publication(v1, BODY, publication(node.keystore(), now), 2, now)
    assert from_json == direct
    printed["certificates"][0]["sha256"] = "0" * 64
    with pytest.raises(RotationError, match="does not match"):
        published_from_json(printed)
    # The text form carries the same PEMs, each after a comment line naming role and sha256.
    text = cli(node, capsys, "publish")
    assert text.count("-----BEGIN CERTIFICATE-----") == len(printed["certificates"])
    assert f"sha256={printed['certificates'][1]['sha256']}" in text


def test_seal_rotation_onto_the_token(
    demo_pki: DemoPKI,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module, label, pin = softhsm_token("gw-rotation")
    node = make_node(demo_pki, tmp_path, token=(module, label, pin))
    monkeypatch.setenv("GATEWAY_TEST_ROTATION_PIN", pin)
    cli(node, capsys, "rotate", "seal", "--store", "token", "--demo-ca", str(node.ca_dir))
    assert not (node.keys_dir / "seal.2.key.pem").exists()
    cli(node, capsys, "activate", "seal", "--generation", "2", "--at", "now")
    at = datetime.now(UTC) + timedelta(seconds=1)
    seal = node.keystore({"GATEWAY_TEST_ROTATION_PIN": pin}).seal(at=at)
    assert seal.generation == 2 and seal.location.endswith(f"{label}/seal.2")
    doc = sign_document(envelope(), None, seal, at)
    ca = node.ca()
    trust = TrustList([ca.certificate], [ca.crl(now=at)])
    verified = verify_document(doc, trust, at + timedelta(seconds=5), require_official=False)
    assert verified.passed, verified.report.summary()


def test_encryption_rotation_keeps_reading_what_peers_encrypted_to_the_old_key(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.crypto import recipient

    ks = node.keystore()
    old_cert = ks.encryption().certificate
    cli(node, capsys, "rotate", "encryption", "--demo-ca", str(node.ca_dir))
    cli(node, capsys, "activate", "encryption", "--generation", "2", "--at", "now")
    keys = ks.decryption_keys()
    assert [k.generation for k in keys] == [2, 1]  # the active one first
    to_old = recipient.encrypt_for(b"<doc>old</doc>", [old_cert])
    to_new = recipient.encrypt_for(b"<doc>new</doc>", [keys[0].certificate])
    pairs = [(k.private_key, k.certificate) for k in keys]
    assert recipient.decrypt_with_any(to_old, pairs) == b"<doc>old</doc>"
    assert recipient.decrypt_with_any(to_new, pairs) == b"<doc>new</doc>"

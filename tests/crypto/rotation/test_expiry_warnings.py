"""Keys expiring within 30 days are flagged (list, --json, ``expiring_keys``) until handled."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from gateway.crypto import certificates
from gateway.crypto.certificates import CertificateProfile
from gateway.crypto.keys.generations import GenerationStatus, expiring_keys, tls_identity
from gateway.main import main
from tests.crypto.rotation.conftest import BODY, NodeDir


def shorten_seal(node: NodeDir, now: datetime, days: int) -> None:
    """Re-certify the seal's key (generation 1) to end ``days`` from ``now``."""
    ks = node.keystore()
    seal = ks.seal(at=now)
    ca = node.ca()
    cert = ca.issue(
        seal.certificate.public_key(),
        CertificateProfile(role="seal", body_id=BODY, demo=True),
        now=now,
        not_after=now + timedelta(days=days),
    )
    ks.cert_path("seal").write_bytes(certificates.pem_bundle([cert, ca.certificate]))


def run(node: NodeDir, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(["keys", *args, "--config", str(node.config_path)])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def test_expiring_seal_is_flagged_until_its_successor_is_scheduled(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    assert expiring_keys(node.keystore(), now) == []
    shorten_seal(node, now, days=10)
    flagged = expiring_keys(node.keystore(), now)
    assert [(e.role, e.generation, e.status) for e in flagged] == [
        ("seal", 1, GenerationStatus.ACTIVE)
    ]
    assert flagged[0].days_left == 9  # 10 days less the seconds since `now`
    assert expiring_keys(node.keystore(), now, within=timedelta(days=5)) == []

    listing = json.loads(run(node, capsys, "list", "--json"))
    seal = next(e for e in listing if e["role"] == "seal")
    assert seal["expiring"] is True and seal["status"] == "active"
    assert "WARNING: expires in 9 days" in run(node, capsys, "list")

    # A pending successor alone does not settle it; one scheduled before the end does.
    run(node, capsys, "rotate", "seal", "--demo-ca", str(node.ca_dir))
    assert [e.generation for e in expiring_keys(node.keystore(), now)] == [1]
    switch = (now + timedelta(days=3)).isoformat()
    run(node, capsys, "activate", "seal", "--generation", "2", "--at", switch)
    assert expiring_keys(node.keystore(), now) == []
    # After the switch the old one is superseded: never flagged again.
    assert expiring_keys(node.keystore(), now + timedelta(days=4)) == []


def test_tls_identity_follows_the_schedule(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    run(node, capsys, "rotate", "tls", "--demo-ca", str(node.ca_dir))
    switch = now + timedelta(hours=2)
    run(node, capsys, "activate", "tls", "--generation", "2", "--at", switch.isoformat())
    ks = node.keystore()
    before = tls_identity(ks, now + timedelta(minutes=1))
    assert before.generation == 1 and before.next_switch == switch.replace(
        microsecond=switch.microsecond
    )
    after = tls_identity(ks, switch)
    assert after.generation == 2 and after.next_switch is None
    assert after.cert_file.name == "tls.2.crt.pem" and after.key_file.name == "tls.2.key.pem"
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(
        after.cert_file, after.key_file, password=node.root.joinpath("passphrase").read_bytes()
    )

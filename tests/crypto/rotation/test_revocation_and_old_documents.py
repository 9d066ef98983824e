"""Documents signed before a rotation keep verifying; a revoked generation signs nothing more.

Validity is judged at the signing time (gateway.crypto.xades + trust): an old document verified
"at its time" passes whatever happened later. After a revocation, a peer with the new CRL
answers REVOKED for signatures claimed after the revocation time; for one claimed before it,
the claim alone proves nothing (whoever holds a compromised key can write any SigningTime), so
it is INDETERMINATE / REVOKED_NO_POE — unless an RFC 3161 timestamp proves it existed before
the revocation, then TOTAL_PASSED.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.crypto.certificates import CertificateProfile
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.keys.keystore import KeyRevoked, SigningKey
from gateway.crypto.report import ExistenceProof, Indication, SignatureReport, SubIndication
from gateway.crypto.trust import TrustList
from gateway.crypto.xades import sign_document, verify_document
from gateway.main import main
from gateway.store import audit, open_store
from tests.crypto.helpers import envelope
from tests.crypto.rotation.conftest import BODY, NodeDir, make_tsa


def cli(node: NodeDir, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(["keys", *args, "--config", str(node.config_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def peer_trust(node: NodeDir) -> TrustList:
    """What a peer has after it took the CA's newest CRL (the file the CLI rewrote)."""
    return TrustList.from_pem_files(node.ca_dir / DemoCA.CERT_FILE, [node.ca_dir / DemoCA.CRL_FILE])


def verdict(doc: bytes, trust: TrustList, at: datetime) -> tuple[Indication, SubIndication | None]:
    report = verify_document(doc, trust, at, expected_sender=BODY, require_official=False).report
    return report.signatures[0].indication, report.signatures[0].sub_indication


def test_revocation_stops_signing_and_peers_refuse_new_signatures(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    ks = node.keystore()
    ca = node.ca()
    signed_at = datetime.now(UTC) - timedelta(minutes=30)
    old_seal = ks.seal(at=signed_at)
    plain = sign_document(envelope(), None, old_seal, signed_at)
    stamped = sign_document(
        envelope(), None, old_seal, signed_at, timestamper=make_tsa(ca, at=signed_at)
    )
    trust_then = TrustList([ca.certificate], [ca.crl(now=signed_at)])
    assert verdict(plain, trust_then, signed_at + timedelta(minutes=1)) == (
        Indication.TOTAL_PASSED,
        None,
    )

    cli(node, capsys, "rotate", "seal", "--demo-ca", str(node.ca_dir))
    cli(node, capsys, "activate", "seal", "--generation", "2", "--at", "now")
    out = cli(
        node,
        capsys,
        "revoke",
        "seal",
        "--generation",
        "1",
        "--reason",
        "keyCompromise",
        "--demo-ca",
        str(node.ca_dir),
    )
    assert "REVOKED" in out and "CRL updated" in out
    revoked_at = datetime.now(UTC)

    # The key store refuses generation 1 from the revocation on, in every process.
    with pytest.raises(KeyRevoked, match="keyCompromise"):
        ks.load("seal", generation=1, at=revoked_at + timedelta(seconds=1))
    assert ks.seal(at=revoked_at + timedelta(seconds=1)).generation == 2

    # Someone holding the revoked key signs anyway: the peer with the new CRL says REVOKED.
    rogue_at = revoked_at + timedelta(seconds=30)
    rogue = sign_document(envelope(), None, old_seal, rogue_at)
    verify_at = revoked_at + timedelta(minutes=1)
    trust = peer_trust(node)
    assert verdict(rogue, trust, verify_at) == (Indication.TOTAL_FAILED, SubIndication.REVOKED)
    # Signed before the revocation: only a timestamp proves when.
    assert verdict(plain, trust, verify_at) == (
        Indication.INDETERMINATE,
        SubIndication.REVOKED_NO_POE,
    )
    assert verdict(stamped, trust, verify_at) == (Indication.TOTAL_PASSED, None)
    # The new generation verifies with the same CRL.
    fresh = sign_document(envelope(), None, ks.seal(at=rogue_at), rogue_at)
    assert verdict(fresh, trust, verify_at) == (Indication.TOTAL_PASSED, None)

    with open_store(node.config.database_url).engine.connect() as conn:
        events = audit.events(conn)
    revoked = [e for e in events if e.kind == "key.revoked"]
    assert len(revoked) == 1 and revoked[0].details["reason"] == "keyCompromise"
    assert revoked[0].subjects == {"key": "seal"}


def test_revoking_the_active_generation_stops_the_seal_at_once(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    ks = node.keystore()
    assert ks.seal().generation == 1
    out = cli(node, capsys, "revoke", "seal", "--generation", "1", "--reason", "keyCompromise")
    assert "WARNING" in out and "ask the issuing CA" in out
    with pytest.raises(KeyRevoked):
        ks.seal()
    # Recovery: a new generation, activated now.
    cli(node, capsys, "rotate", "seal", "--demo-ca", str(node.ca_dir))
    cli(node, capsys, "activate", "seal", "--generation", "2", "--at", "now")
    assert ks.seal(at=datetime.now(UTC) + timedelta(seconds=1)).generation == 2
    code = main(
        [
            "keys",
            "activate",
            "seal",
            "--generation",
            "1",
            "--at",
            "now",
            "--config",
            str(node.config_path),
        ]
    )
    assert code == 2 and "revoked" in capsys.readouterr().err


def test_old_document_verifies_at_its_time_after_rotation_and_expiry(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old seal's certificate expires after the rotation; the document stays valid at its
    signing time, and later too when a timestamp proves the signature came before the expiry."""
    ks = node.keystore()
    ca = node.ca()
    signed_at = datetime.now(UTC) - timedelta(minutes=30)
    seal = ks.seal(at=signed_at)
    short = ca.issue(
        seal.private_key.public_key(),
        _profile_of(seal),
        now=signed_at,
        not_before=signed_at - timedelta(minutes=5),
        not_after=signed_at + timedelta(minutes=10),
    )
    short_lived = SigningKey(
        seal.role, seal.name, short, seal.chain, seal.private_key, seal.location
    )
    plain = sign_document(envelope(), None, short_lived, signed_at)
    stamped = sign_document(
        envelope(), None, short_lived, signed_at, timestamper=make_tsa(ca, at=signed_at)
    )
    cli(node, capsys, "rotate", "seal", "--demo-ca", str(node.ca_dir))
    cli(node, capsys, "activate", "seal", "--generation", "2", "--at", "now")

    at_its_time = signed_at + timedelta(minutes=1)
    trust = TrustList([ca.certificate], [ca.crl(now=at_its_time)])
    assert verdict(plain, trust, at_its_time) == (Indication.TOTAL_PASSED, None)
    later = signed_at + timedelta(hours=2)  # the certificate expired meanwhile
    trust_later = TrustList([ca.certificate], [ca.crl(now=later)])
    assert verdict(stamped, trust_later, later) == (Indication.TOTAL_PASSED, None)
    assert verdict(plain, trust_later, later) == (
        Indication.INDETERMINATE,
        SubIndication.OUT_OF_BOUNDS_NO_POE,
    )

    # The node's own record (a receipt) from before the expiry proves existence as well.
    record = ExistenceProof(signed_at + timedelta(minutes=2), "receipt R-1 sealed by KZ-MJ")
    seal_report = verify_document(
        plain, trust_later, later, expected_sender=BODY, require_official=False, existence=record
    ).report.signatures[0]
    assert seal_report.passed, seal_report.message
    assert seal_report.existence_evidence == "receipt R-1 sealed by KZ-MJ"
    assert "expiry" in seal_report.message
    too_late = ExistenceProof(signed_at + timedelta(minutes=30), "receipt after the expiry")
    assert (
        verify_document(
            plain,
            trust_later,
            later,
            expected_sender=BODY,
            require_official=False,
            existence=too_late,
        )
        .report.signatures[0]
        .sub_indication
        is SubIndication.OUT_OF_BOUNDS_NO_POE
    )


def test_a_record_of_existence_before_the_revocation_keeps_the_signature_valid(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #19: the node's records (a receipt, an audit checkpoint) prove existence like a
    timestamp does; one from after the revocation proves nothing; a timestamp is used first."""
    ks = node.keystore()
    signed_at = datetime.now(UTC) - timedelta(minutes=30)
    plain = sign_document(envelope(), None, ks.seal(at=signed_at), signed_at)
    cli(node, capsys, "rotate", "seal", "--demo-ca", str(node.ca_dir))
    cli(node, capsys, "activate", "seal", "--generation", "2", "--at", "now")
    cli(
        node,
        capsys,
        *("revoke", "seal", "--generation", "1", "--reason", "superseded"),
        *("--demo-ca", str(node.ca_dir)),
    )
    revoked_at = datetime.now(UTC)
    trust = peer_trust(node)
    verify_at = revoked_at + timedelta(minutes=1)

    def seal(existence: ExistenceProof | None) -> SignatureReport:
        return verify_document(
            plain,
            trust,
            verify_at,
            expected_sender=BODY,
            require_official=False,
            existence=existence,
        ).report.signatures[0]

    assert seal(None).sub_indication is SubIndication.REVOKED_NO_POE
    before = seal(ExistenceProof(signed_at + timedelta(minutes=1), "receipt R-1"))
    assert before.passed and before.existence_evidence == "receipt R-1"
    assert before.existence_time == signed_at + timedelta(minutes=1)
    assert "before the revocation" in before.message
    after = seal(ExistenceProof(revoked_at + timedelta(seconds=5), "receipt R-2"))
    assert after.sub_indication is SubIndication.REVOKED_NO_POE
    assert "receipt R-2" in after.message and after.existence_evidence == ""


def _profile_of(key: SigningKey) -> CertificateProfile:
    return CertificateProfile(role="seal", body_id=key.body_id, demo=True)

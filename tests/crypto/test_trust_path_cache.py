"""The path cache of TrustList: it saves the path building, never changes an answer.

Revocation and validity at the moment judged run on every call; a cached path built at one
moment is reused at another only when every certificate of it is valid then."""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric import ec

from gateway.crypto.certificates import CertificateProfile
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.report import Indication, SubIndication
from gateway.crypto.trust import TrustList
from gateway.crypto.xades import verify_document
from tests.crypto.helpers import NOW, SENDER, VERIFY_AT, CryptoPKI, envelope


def _seal_certificate(ca: DemoCA, **validity):  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP256R1())
    return ca.issue(
        key.public_key(), CertificateProfile(role="seal", body_id=SENDER), now=NOW, **validity
    )


def test_second_verification_reuses_the_path(test_pki: CryptoPKI) -> None:
    from gateway.crypto.xades import sign_document

    store = test_pki.store()
    signed = sign_document(envelope(), store.official(), store.seal(), NOW)
    trust = test_pki.trust()
    first = verify_document(signed, trust, VERIFY_AT, expected_sender=SENDER)
    assert first.passed, first.report.summary()
    assert len(trust._paths) == 2  # the official's path and the seal's
    cached = dict(trust._paths)
    second = verify_document(signed, trust, VERIFY_AT, expected_sender=SENDER)
    assert second.report.signatures == first.report.signatures
    assert trust._paths == cached
    # A new trust list (new CRLs) starts with no paths: its answers are its own.
    assert trust.with_crls([])._paths == {}


def test_revocation_is_judged_per_call_with_a_cached_path() -> None:
    ca = DemoCA.create(now=NOW)
    cert = _seal_certificate(ca)
    revoked_at = NOW + timedelta(hours=1)
    ca.revoke(cert, at=revoked_at)
    trust = TrustList([ca.certificate], [ca.crl(now=NOW + timedelta(hours=2))])
    at = NOW + timedelta(hours=3)
    before = trust.validate(cert, moment=NOW, at=at)
    assert before.sub_indication is SubIndication.REVOKED_NO_POE
    assert len(trust._paths) == 1
    after = trust.validate(cert, moment=revoked_at + timedelta(minutes=1), at=at)
    assert after.indication is Indication.TOTAL_FAILED
    assert after.sub_indication is SubIndication.REVOKED
    # The certificate was good under the trust list built before the revocation; the list
    # built with the new CRL, though it has that path cached, says revoked.
    clean = DemoCA(key=ca.key, certificate=ca.certificate)
    earlier = TrustList([ca.certificate], [clean.crl(now=NOW)])
    assert earlier.validate(cert, moment=NOW, at=NOW + timedelta(minutes=1)).passed
    assert trust.validate(cert, moment=NOW, at=at).sub_indication is SubIndication.REVOKED_NO_POE


def test_a_cached_path_gives_the_answer_of_a_fresh_build_at_every_moment() -> None:
    # A CA valid for 10 days certifying a leaf valid for a year: after day 10 the path is gone.
    ca = DemoCA.create(now=NOW, validity=timedelta(days=10))
    cert = _seal_certificate(ca, not_before=NOW, not_after=NOW + timedelta(days=365))
    cached = TrustList([ca.certificate], require_revocation=False)
    moments = [NOW + timedelta(days=d) for d in (1, 20, 2, -1, 5, 400)]
    for moment in moments:
        fresh = TrustList([ca.certificate], require_revocation=False)
        expected = fresh.validate(cert, moment=moment, at=moment)
        got = cached.validate(cert, moment=moment, at=moment)
        assert (got.indication, got.sub_indication, got.chain) == (
            expected.indication,
            expected.sub_indication,
            expected.chain,
        ), moment
    assert cached.validate(cert, moment=NOW + timedelta(days=1), at=NOW).passed
    assert not cached.validate(cert, moment=NOW + timedelta(days=20), at=NOW).passed

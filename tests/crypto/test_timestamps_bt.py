"""XAdES B-T: RFC 3161 SignatureTimeStamp added at signing and checked at verification.

The TSA is pyHanko's in-process DummyTimeStamper with a certificate from the test CA (the same
token format an HTTP TSA returns; no network in tests)."""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lxml import etree
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from gateway.crypto import algorithms, xades
from gateway.crypto.certificates import CertificateProfile
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.report import SubIndication
from gateway.crypto.trust import TrustList
from gateway.crypto.xades import sign_document, verify_document
from tests.crypto.helpers import NOW, SENDER, VERIFY_AT, CryptoPKI, envelope

NS = {"env": xades.ENV_NS, "ds": xades.DS_NS, "xades": xades.XADES_NS}


@functools.cache
def _tsa_key() -> rsa.RSAPrivateKey:
    # pyHanko's DummyTimeStamper signs with RSA only; 2048 bits (the verify minimum) keeps it fast.
    return rsa.generate_private_key(65537, 2048)


def make_tsa(ca: DemoCA, *, now: datetime, at: datetime) -> DummyTimeStamper:
    """A TSA certified by ``ca`` (EKU timeStamping, critical) answering with genTime ``at``."""
    key = _tsa_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, algorithms.cert_hash_for(ca.key.public_key()))
    )
    der_key = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return DummyTimeStamper(
        tsa_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        tsa_key=asn1_keys.PrivateKeyInfo.load(der_key),
        fixed_dt=at,
    )


@pytest.fixture(scope="module")
def stamped(test_pki: CryptoPKI) -> bytes:
    store = test_pki.store()
    tsa = make_tsa(test_pki.pki.ca, now=NOW, at=NOW + timedelta(seconds=20))
    return sign_document(envelope(), store.official(), store.seal(), NOW, timestamper=tsa)


def test_timestamped_document_verifies_with_proven_time(
    stamped: bytes, test_pki: CryptoPKI
) -> None:
    root = etree.fromstring(stamped)
    assert len(root.findall(".//xades:SignatureTimeStamp", namespaces=NS)) == 2
    verified = verify_document(stamped, test_pki.trust(), VERIFY_AT, expected_sender=SENDER)
    assert verified.passed, verified.report.summary()
    for report in verified.report.signatures:
        assert report.timestamp_time == NOW + timedelta(seconds=20)


def test_timestamp_of_another_signature_is_refused(stamped: bytes, test_pki: CryptoPKI) -> None:
    root = etree.fromstring(stamped)
    tokens = root.findall(".//xades:EncapsulatedTimeStamp", namespaces=NS)
    tokens[1].text = tokens[0].text  # the seal now carries the official's token
    doc = etree.tostring(root)
    report = verify_document(doc, test_pki.trust(), VERIFY_AT).report
    assert report.signatures[0].sub_indication is SubIndication.HASH_FAILURE
    assert "timestamp" in report.signatures[0].message


def test_timestamp_from_an_untrusted_tsa(test_pki: CryptoPKI) -> None:
    store = test_pki.store()
    stranger = DemoCA.create(now=NOW)
    tsa = make_tsa(stranger, now=NOW, at=NOW)
    doc = sign_document(envelope(), None, store.seal(), NOW, timestamper=tsa)
    report = verify_document(doc, test_pki.trust(), VERIFY_AT, require_official=False).report
    assert report.signatures[0].sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND


def test_timestamp_keeps_a_signature_valid_after_expiry(test_pki: CryptoPKI) -> None:
    old_ca = DemoCA.create(now=NOW - timedelta(days=500))
    current = test_pki.store().seal()
    cert = old_ca.issue(
        current.private_key.public_key(),
        CertificateProfile(role="seal", body_id=SENDER),
        now=NOW,
        not_before=NOW - timedelta(days=400),
        not_after=NOW - timedelta(days=30),
    )
    seal = replace(current, certificate=cert, chain=(old_ca.certificate,))
    signed_at = NOW - timedelta(days=60)
    tsa = make_tsa(old_ca, now=NOW - timedelta(days=400), at=signed_at + timedelta(seconds=5))
    doc = xades._sign_unchecked(xades.parse_untrusted(envelope()), None, seal, signed_at, tsa)
    trust = TrustList([old_ca.certificate], [old_ca.crl(now=NOW)])
    verified = verify_document(doc, trust, VERIFY_AT, require_official=False)
    assert verified.passed, verified.report.summary()
    assert verified.report.signatures[0].timestamp_time == signed_at + timedelta(seconds=5)

"""A small PKI for rendition tests: a CA, a seal certificate of RU-FSSP, a TSA, a rogue CA.

Built once per session with ``cryptography`` (ECDSA P-256 keeps it fast). The body id travels as
``organizationIdentifier`` (OID 2.5.4.97) as docs/architecture.md requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
"""Validation time the tests pin; certificates are valid 2020-2040 so real signing time fits."""

NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2040, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Pki:
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    seal_key: ec.EllipticCurvePrivateKey
    seal: x509.Certificate
    tsa_key: rsa.RSAPrivateKey
    """RSA: pyHanko's DummyTimeStamper (a local RFC 3161 TSA for tests) signs only with RSA."""
    tsa: x509.Certificate
    rogue_ca: x509.Certificate
    rogue_seal_key: ec.EllipticCurvePrivateKey
    rogue_seal: x509.Certificate

    def crl(self, *revoked: x509.Certificate) -> x509.CertificateRevocationList:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca.subject)
            .last_update(datetime(2026, 11, 1, tzinfo=UTC))
            .next_update(datetime(2026, 12, 31, tzinfo=UTC))
            .add_extension(x509.CRLNumber(1), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
        )
        for cert in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(cert.serial_number)
                .revocation_date(datetime(2026, 11, 10, tzinfo=UTC))
                .build()
            )
        return builder.sign(self.ca_key, hashes.SHA256())


def _name(cn: str, body_id: str | None = None, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, (body_id or "RU")[:2])]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if body_id:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, body_id))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(cn)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    name: x509.Name,
    *,
    tsa: bool = False,
) -> tuple[ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, x509.Certificate]:
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if tsa
        else ec.generate_private_key(ec.SECP256R1())
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER - timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if tsa:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True)
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), True
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def make_pki() -> Pki:
    """Build the test PKI (a fixture wraps it; scripts may call it directly)."""
    ca_key, ca = _ca("Test Root CA RU")
    seal_key, seal = _leaf(
        ca_key, ca, _name("FSSP Seal", "RU-FSSP", "Федеральная служба судебных приставов")
    )
    tsa_key, tsa = _leaf(ca_key, ca, _name("Test TSA"), tsa=True)
    rogue_key, rogue_ca = _ca("Rogue CA")
    rogue_seal_key, rogue_seal = _leaf(rogue_key, rogue_ca, _name("Rogue Seal", "RU-FSSP"))
    return Pki(ca_key, ca, seal_key, seal, tsa_key, tsa, rogue_ca, rogue_seal_key, rogue_seal)


@pytest.fixture(scope="session")
def pki() -> Pki:
    return make_pki()

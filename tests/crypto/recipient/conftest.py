"""Keys and certificates for the encryption-to-recipient tests, made once per session.

Every recipient is an ``encryption`` certificate as the directory of bodies publishes one:
issued by a small test CA, with keyAgreement (EC) or keyEncipherment (RSA) and a
subjectKeyIdentifier. PEM copies are written for the ``openssl cms`` interoperability tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
"""Pinned issue time: the certificates are valid from just before until a year after."""


@dataclass(frozen=True)
class Party:
    """A recipient: its key, its encryption certificate and PEM files of both."""

    name: str
    key: Any
    certificate: x509.Certificate
    key_pem: Path
    cert_pem: Path


class RecipientCA:
    """Issues encryption certificates; serials are chosen by the test when it matters."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "KZ"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test CA — NOT FOR PRODUCTION"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Recipient tests CA"),
            ]
        )

    def issue(
        self,
        public_key: Any,
        common_name: str,
        serial: int,
        *,
        key_usage: x509.KeyUsage | None = None,
    ) -> x509.Certificate:
        is_rsa = isinstance(public_key, rsa.RSAPublicKey)
        usage = key_usage or x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=is_rsa,
            data_encipherment=False,
            key_agreement=not is_rsa,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, "KZ-MJ"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(NOW - timedelta(minutes=5))
            .not_valid_after(NOW + timedelta(days=365))
            .add_extension(usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(self.key, hashes.SHA256())
        )


def write_party(directory: Path, name: str, key: Any, certificate: x509.Certificate) -> Party:
    key_pem = directory / f"{name}.key.pem"
    cert_pem = directory / f"{name}.crt.pem"
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return Party(name, key, certificate, key_pem, cert_pem)


def new_key(kind: str) -> Any:
    if kind == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ValueError(kind)


KINDS = ("ec-p256", "ec-p384", "rsa-3072")


@pytest.fixture(scope="session")
def ca() -> RecipientCA:
    return RecipientCA()


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recipient-pki")


@pytest.fixture(scope="session")
def parties(ca: RecipientCA, pki_dir: Path) -> dict[str, Party]:
    """One recipient per supported key type, plus a second body's P-256 key ("other")."""
    made: dict[str, Party] = {}
    for serial, kind in enumerate((*KINDS, "other"), start=1001):
        key = new_key("ec-p256" if kind == "other" else kind)
        certificate = ca.issue(key.public_key(), f"encryption {kind}", serial)
        made[kind] = write_party(pki_dir, kind, key, certificate)
    return made


@pytest.fixture(params=KINDS)
def party(request: pytest.FixtureRequest, parties: dict[str, Party]) -> Party:
    """Each supported key type in turn."""
    return parties[request.param]

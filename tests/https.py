"""HTTPS on loopback for tests: a self-signed certificate for 127.0.0.1 and a client that trusts
only it (the API and console's own TLS, tests/cli/test_https.py and tests/web/console)."""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def loopback_certificate(
    folder: Path,
    *,
    subject: str = "RU-FSSP console",
    passphrase: bytes | None = None,
    now: datetime | None = None,
) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PKCS#8, encrypted with
    ``passphrase`` when given, 0600), written to ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = now or datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    cert_path, key_path = folder / "https.crt.pem", folder / "https.key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def https_client(cert: Path) -> aiohttp.ClientSession:
    """A session that trusts ``cert`` alone and keeps cookies for an IP-address host."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(cert))),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
    )

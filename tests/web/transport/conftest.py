"""A throw-away PKI and real mTLS peer servers on 127.0.0.1 for the transport tests.

The PKI is made once per test session with ``cryptography`` (EC P-256: fast to generate):

* ``ca``: the directory's CA, our trust anchor;
* TLS certificates (server and client use) with ``organizationIdentifier`` (2.5.4.97) = body id
  and SAN IP 127.0.0.1 + DNS localhost: ``ru`` (RU-FSSP), ``ru_rotated`` (RU-FSSP, new key),
  ``kz`` (KZ-MJ), ``unlisted`` (BY-MJ, issued by our CA but not in the directory), ``expired``
  (KZ-MJ, listed, validity ended yesterday), ``wrong_host`` (RU-FSSP, SAN other.example only);
* ``other_ca`` and ``foreign`` (KZ-MJ issued by that other CA).

Certificate validity is checked by OpenSSL against the real clock (the ssl module cannot be
given a time), so the dates here are relative to the moment the tests start.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.app import tls
from gateway.web.limits import PeerLimits
from gateway.web.peer_server import RunningPeerServer, make_peer_app, run_peer_server

KEY_PASSPHRASE = b"test-passphrase"


@dataclass(frozen=True)
class Issued:
    """One certificate with its key files."""

    name: str
    cert_file: Path
    key_file: Path
    der: bytes
    ca_pem: str
    """PEM of the CA that issued it (its trust anchor)."""


@dataclass(frozen=True)
class Pki:
    ca_pem: str
    other_ca_pem: str
    certs: dict[str, Issued]
    folder: Path
    issuers: dict[str, tuple[ec.EllipticCurvePrivateKey, x509.Certificate]]
    """``"ca"`` and ``"other_ca"``: key and certificate, to issue CRLs in tests."""

    def crl(self, issuer: str, revoked: tuple[Issued, ...] = ()) -> Path:
        """A CRL file of ``issuer`` revoking ``revoked``, valid from yesterday to next week."""
        key, cert = self.issuers[issuer]
        now = dt.datetime.now(dt.UTC)
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(cert.subject)
            .last_update(now - dt.timedelta(days=1))
            .next_update(now + dt.timedelta(days=7))
            .add_extension(x509.CRLNumber(1), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
        )
        for issued in revoked:
            serial = x509.load_der_x509_certificate(issued.der).serial_number
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - dt.timedelta(hours=1))
                .build()
            )
        crl = builder.sign(key, hashes.SHA256())
        path = self.folder / f"{issuer}-{'-'.join(i.name for i in revoked) or 'none'}.crl.pem"
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return path

    def __getitem__(self, name: str) -> Issued:
        return self.certs[name]

    def server_context(self, name: str, anchors: str | None = None):
        c = self.certs[name]
        return tls.server_context(
            c.cert_file, c.key_file, anchors or self.ca_pem, password=KEY_PASSPHRASE
        )

    def client_context(self, name: str, anchors: str | None = None):
        c = self.certs[name]
        return tls.client_context(
            c.cert_file, c.key_file, anchors or self.ca_pem, password=KEY_PASSPHRASE
        )


def _name(common_name: str, body_id: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, (body_id or "ZZ")[:2]),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test body"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]
    if body_id:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, body_id))
    return x509.Name(attrs)


def _make_ca(common_name: str, now: dt.datetime):
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue(
    folder: Path,
    label: str,
    body_id: str,
    ca_key,
    ca_cert: x509.Certificate,
    now: dt.datetime,
    *,
    not_after: dt.datetime | None = None,
    san: list[x509.GeneralName] | None = None,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    san = san or [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    not_after = not_after or now + dt.timedelta(days=365)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{body_id} gateway", body_id))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now - dt.timedelta(days=10), not_after - dt.timedelta(days=1)))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file = folder / f"{label}.crt"
    key_file = folder / f"{label}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSPHRASE),
        )
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM).decode()
    return Issued(label, cert_file, key_file, cert.public_bytes(serialization.Encoding.DER), ca_pem)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    ca_key, ca = _make_ca("Test directory CA", now)
    other_key, other = _make_ca("Some other CA", now)
    certs = {
        "ru": _issue(folder, "ru", "RU-FSSP", ca_key, ca, now),
        "ru_rotated": _issue(folder, "ru_rotated", "RU-FSSP", ca_key, ca, now),
        "kz": _issue(folder, "kz", "KZ-MJ", ca_key, ca, now),
        "unlisted": _issue(folder, "unlisted", "BY-MJ", ca_key, ca, now),
        "expired": _issue(
            folder, "expired", "KZ-MJ", ca_key, ca, now, not_after=now - dt.timedelta(days=1)
        ),
        "wrong_host": _issue(
            folder, "wrong_host", "RU-FSSP", ca_key, ca, now, san=[x509.DNSName("other.example")]
        ),
        "foreign": _issue(folder, "foreign", "KZ-MJ", other_key, other, now),
    }
    return Pki(
        ca.public_bytes(serialization.Encoding.PEM).decode(),
        other.public_bytes(serialization.Encoding.PEM).decode(),
        certs,
        folder,
        {"ca": (ca_key, ca), "other_ca": (other_key, other)},
    )


def directory_of(*issued: Issued) -> Callable[[bytes], str | None]:
    """``identify_peer`` over a directory listing exactly these certificates (by SHA-256),
    checked against the body id the certificate itself carries (organizationIdentifier)."""
    listed: dict[str, str] = {}
    for c in issued:
        cert = x509.load_der_x509_certificate(c.der)
        (attr,) = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
        listed[hashlib.sha256(c.der).hexdigest()] = str(attr.value)

    def identify(cert_der: bytes) -> str | None:
        return listed.get(hashlib.sha256(cert_der).hexdigest())

    return identify


@pytest.fixture
def directory(pki: Pki) -> Callable[[bytes], str | None]:
    """The demo directory: RU-FSSP (both certificates), KZ-MJ (also the expired one)."""
    return directory_of(pki["ru"], pki["ru_rotated"], pki["kz"], pki["expired"])


@dataclass
class RecordingPipeline:
    """A receive pipeline that records what reached it and echoes a small XML receipt."""

    calls: list[tuple[str, bytes]] = field(default_factory=list)

    async def __call__(self, sender: str, payload: bytes) -> tuple[int, bytes, str]:
        self.calls.append((sender, payload))
        return 200, f"<Receipt from='{sender}' bytes='{len(payload)}'/>".encode(), "application/xml"


@pytest.fixture
def pipeline() -> RecordingPipeline:
    return RecordingPipeline()


StartServer = Callable[..., Awaitable[RunningPeerServer]]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """Start real peer servers on free loopback ports; all are stopped after the test."""
    running: list[RunningPeerServer] = []

    async def start(
        ssl_context,
        identify,
        pipeline,
        limits: PeerLimits | None = None,
        clock=None,
        port: int = 0,
        **kwargs,
    ) -> RunningPeerServer:
        extra = {"clock": clock} if clock is not None else {}
        app = make_peer_app(identify, pipeline, limits, **extra)
        server = await run_peer_server(app, ssl_context, "127.0.0.1", port, **kwargs)
        running.append(server)
        return server

    yield start
    for server in running:
        await server.stop()

"""Certificate profiles, requests (CSR) and the demo certification authority.

Profile (docs/architecture.md, "Certificates"): the body id is the subject's
``organizationIdentifier`` (OID 2.5.4.97); an official's certificate has the person's name as
CN and the position as ``title``; key usages follow the role:

============  ==========================================  =============================
role          key usage                                   extended key usage / SAN
============  ==========================================  =============================
seal          digitalSignature, nonRepudiation            —
official      digitalSignature, nonRepudiation            —
tls           digitalSignature (+ keyEncipherment, RSA)   serverAuth, clientAuth; SAN
encryption    keyEncipherment (RSA) / keyAgreement (EC)   —
CA            keyCertSign, cRLSign                        —
============  ==========================================  =============================

:class:`DemoCA` is for the demo and the tests only: its subject and every certificate it issues
say ``DEMO — NOT FOR PRODUCTION``. Production keys are certified by a national CA through
:func:`build_csr` and ``gateway keys import``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.crypto import algorithms, gost
from gateway.crypto.algorithms import KeySpec
from gateway.crypto.files import write_atomically
from gateway.model.bodies import BODY_ID_PATTERN, DEMO_BODIES, state_of

DEMO_LABEL = "DEMO — NOT FOR PRODUCTION"
"""Put in the subject of every demo certificate so nobody mistakes one for a real one."""

CA_VALIDITY = timedelta(days=3650)
"""Demo CA lifetime: outlives every certificate it issues."""

END_ENTITY_VALIDITY = timedelta(days=730)
"""Demo end-entity lifetime: two years, the common term of national signing certificates."""

CRL_VALIDITY = timedelta(days=7)
"""Demo CRL nextUpdate: a week, like the national CAs' published CRLs."""

BACKDATE = timedelta(minutes=5)
"""notBefore is set this much before ``now``: tolerates small clock differences between nodes."""

DEMO_TLS_DNS_NAMES = ("localhost",)
DEMO_TLS_IP_ADDRESSES = ("127.0.0.1",)

ROLES_SIGNING = ("seal", "official")
ROLES_CERTIFIED = ("seal", "official", "tls", "encryption")


@dataclass(frozen=True, slots=True)
class CertificateProfile:
    """What goes into a certificate (or request) for one key of one body."""

    role: str
    """``seal``, ``official``, ``tls`` or ``encryption``."""
    body_id: str
    """Becomes ``organizationIdentifier`` (2.5.4.97); its first two letters become C."""
    common_name: str = ""
    """Person's name for an official; defaults to ``<body id> <role>`` otherwise."""
    title: str = ""
    """Official's position (``title``, 2.5.4.12); mandatory for officials."""
    organization: str = ""
    """Body's name (O); defaults to the demo directory's name when the body is known."""
    demo: bool = False
    """Adds ``OU=DEMO — NOT FOR PRODUCTION``."""
    dns_names: tuple[str, ...] = ()
    """TLS only: SAN DNS names."""
    ip_addresses: tuple[str, ...] = ()
    """TLS only: SAN IP addresses."""

    def __post_init__(self) -> None:
        if self.role not in ROLES_CERTIFIED:
            raise ValueError(f"role {self.role!r} has no certificate; use one of {ROLES_CERTIFIED}")
        if not BODY_ID_PATTERN.match(self.body_id):
            raise ValueError(f"body id {self.body_id!r} must look like RU-FSSP")
        if self.role == "official" and not (self.common_name and self.title):
            raise ValueError("an official's certificate needs the person's name and position")

    def subject(self) -> x509.Name:
        organization = self.organization or _demo_body_name(self.body_id)
        attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, state_of(self.body_id))]
        if organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        if self.demo:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEMO_LABEL))
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, self.body_id))
        if self.title:
            attributes.append(x509.NameAttribute(NameOID.TITLE, self.title))
        attributes.append(
            x509.NameAttribute(
                NameOID.COMMON_NAME, self.common_name or f"{self.body_id} {self.role}"
            )
        )
        return x509.Name(attributes)

    def extensions(self, public_key: Any) -> list[tuple[x509.ExtensionType, bool]]:
        """(extension, critical) pairs proper to the role."""
        is_rsa = isinstance(public_key, rsa.RSAPublicKey)
        usage = dict.fromkeys(_KEY_USAGE_FLAGS, False)
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
        ]
        if self.role in ROLES_SIGNING:
            usage.update(digital_signature=True, content_commitment=True)
        elif self.role == "tls":
            usage.update(digital_signature=True, key_encipherment=is_rsa)
            extensions.append(
                (
                    x509.ExtendedKeyUsage(
                        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                    ),
                    False,
                )
            )
            names: list[x509.GeneralName] = [x509.DNSName(n) for n in self.dns_names]
            names += [x509.IPAddress(ipaddress.ip_address(a)) for a in self.ip_addresses]
            if names:
                extensions.append((x509.SubjectAlternativeName(names), False))
        elif self.role == "encryption":
            if is_rsa:
                usage.update(key_encipherment=True, data_encipherment=True)
            else:
                usage.update(key_agreement=True)
        extensions.append((x509.KeyUsage(**usage), True))
        return extensions


_KEY_USAGE_FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def _demo_body_name(body_id: str) -> str:
    return next((b.name_ru for b in DEMO_BODIES if b.id == body_id), "")


def public_key_of(certificate: x509.Certificate) -> Any:
    """The certificate's public key: ``cryptography``'s for EC and RSA, a
    :class:`~gateway.crypto.gost.GostPublicKey` for GOST (``cryptography`` cannot load those)."""
    if gost.is_gost_certificate(certificate):
        return gost.public_key_of(certificate)
    return certificate.public_key()


def directly_issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Is ``child`` named and signed by ``issuer`` (GOST or not)?"""
    if child.issuer != issuer.subject:
        return False
    if gost.is_gost_certificate(issuer):
        return gost.signature_verifies(child, gost.public_key_of(issuer))
    if gost.is_gost_signed(child):
        return False
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _key_identifier(public_key: Any) -> x509.SubjectKeyIdentifier:
    if isinstance(public_key, gost.GostPublicKey):
        return x509.SubjectKeyIdentifier(public_key.key_identifier())
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def _authority_key_identifier(public_key: Any) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier(_key_identifier(public_key).digest, None, None)


_STAND_IN_KEYS: dict[str, ec.EllipticCurvePrivateKey] = {}


def _stand_in() -> ec.EllipticCurvePrivateKey:
    """``cryptography``'s builders need a key they know: GOST certificates and CRLs are built
    with this one, then re-signed (:func:`gost.resign_certificate`)."""
    if "key" not in _STAND_IN_KEYS:
        _STAND_IN_KEYS["key"] = ec.generate_private_key(ec.SECP256R1())
    return _STAND_IN_KEYS["key"]


def _signed_certificate(
    builder: x509.CertificateBuilder, issuer_key: Any, subject_key: Any
) -> x509.Certificate:
    """``builder`` (without its public key) signed by ``issuer_key`` — with GOST when it is a
    GOST key, putting a GOST ``subject_key`` in place of the stand-in."""
    gost_subject = isinstance(subject_key, gost.GostPublicKey)
    gost_issuer = isinstance(issuer_key, gost.GostPrivateKey)
    if gost_subject != gost_issuer:
        # One GOST PKI beside the others, as the national CAs run them: no mixed paths.
        raise ValueError(
            "the demo CA certifies GOST keys with a GOST CA and EC/RSA keys with an EC/RSA CA; "
            "create the CA with --algorithm of the same family (gateway keys init-ca)"
        )
    if gost_issuer:
        builder = builder.public_key(_stand_in().public_key())
        der = builder.sign(_stand_in(), hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        return gost.resign_certificate(der, issuer_key, subject_key)
    builder = builder.public_key(subject_key)
    return builder.sign(issuer_key, algorithms.cert_hash_for(issuer_key.public_key()))


def body_id_of(certificate: x509.Certificate) -> str:
    """The certificate's ``organizationIdentifier`` (our body id), or ``""`` when absent."""
    values = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
    return str(values[0].value) if len(values) == 1 else ""


def title_of(certificate: x509.Certificate) -> str:
    values = certificate.subject.get_attributes_for_oid(NameOID.TITLE)
    return str(values[0].value) if values else ""


def common_name_of(certificate: x509.Certificate) -> str:
    values = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def key_usage_of(certificate: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def role_mismatch(certificate: x509.Certificate, role: str) -> str:
    """Why ``certificate`` cannot serve ``role`` (empty when it can).

    Signing roles need digitalSignature or nonRepudiation; an official's certificate carries a
    ``title`` and a seal's does not (that is how the two are told apart); TLS needs serverAuth
    and clientAuth; encryption needs keyEncipherment or keyAgreement.
    """
    usage = key_usage_of(certificate)
    if role in ROLES_SIGNING:
        if usage is None or not (usage.digital_signature or usage.content_commitment):
            return "its key usage allows no signatures (digitalSignature/nonRepudiation)"
        if role == "official" and not title_of(certificate):
            return "it has no title (position): it is not an official's certificate"
        if role == "seal" and title_of(certificate):
            return "it names a person with a title: it is an official's certificate, not a seal"
        return ""
    if role == "tls":
        try:
            eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            return "it has no extended key usage serverAuth/clientAuth"
        if not {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(eku):
            return "its extended key usage lacks serverAuth or clientAuth"
        return ""
    if role == "encryption":
        if usage is None or not (usage.key_encipherment or usage.key_agreement):
            return "its key usage allows no encryption (keyEncipherment/keyAgreement)"
        return ""
    return f"role {role!r} has no certificate"


def build_csr(private_key: Any, profile: CertificateProfile) -> x509.CertificateSigningRequest:
    """A certificate request for a national CA; ``private_key`` may live on a token."""
    public_key = private_key.public_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(profile.subject())
    for extension, critical in profile.extensions(public_key):
        builder = builder.add_extension(extension, critical=critical)
    if isinstance(public_key, gost.GostPublicKey):  # in memory or on a token
        stand_in = builder.sign(_stand_in(), hashes.SHA256())
        return gost.resign_csr(stand_in.public_bytes(serialization.Encoding.DER), private_key)
    return builder.sign(private_key, algorithms.cert_hash_for(public_key))


def load_pem_private_key(data: bytes, passphrase: bytes | None) -> Any:
    """A PKCS#8 / traditional PEM key: ``cryptography``'s loader, then the GOST one (keys
    ``openssl genpkey -engine gost`` writes, and ours)."""
    try:
        return serialization.load_pem_private_key(data, passphrase)
    except UnsupportedAlgorithm:
        return gost.load_pem_private_key(data, passphrase)
    except ValueError as exc:
        try:
            return gost.load_pem_private_key(data, passphrase)
        except gost.GostError:
            raise exc from None


def load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    """All certificates in a PEM bundle (empty list when none)."""
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return []
    return list(x509.load_pem_x509_certificates(data))


def pem_bundle(certificates: Iterable[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def same_public_key(a: Any, b: Any) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    der_a: bytes = a.public_bytes(serialization.Encoding.DER, fmt)
    der_b: bytes = b.public_bytes(serialization.Encoding.DER, fmt)
    return der_a == der_b


def write_private_key(path: Path, key: Any, passphrase: bytes) -> None:
    """Write ``key`` as encrypted PKCS#8 PEM, readable by the owner only."""
    if not passphrase:
        raise ValueError("refusing to write a private key without a passphrase")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    write_secret_file(path, pem)


def write_secret_file(path: Path, data: bytes) -> None:
    """Create or replace ``path`` with mode 0600 (never world-readable, even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data)


# --- the demo CA ---------------------------------------------------------------------------------


@dataclass(slots=True)
class DemoCA:
    """A one-level certification authority for the demo and tests. NOT FOR PRODUCTION."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | gost.GostPrivateKey
    certificate: x509.Certificate
    directory: Path | None = None
    """Where :meth:`save` writes (``ca.key.pem``, ``ca.crt.pem``, ``revoked.json``, ``crl.pem``)."""
    revoked: dict[int, datetime] = field(default_factory=dict)
    """Serial number → revocation time."""

    KEY_FILE = "ca.key.pem"
    CERT_FILE = "ca.crt.pem"
    REVOKED_FILE = "revoked.json"
    CRL_FILE = "crl.pem"

    @classmethod
    def create(
        cls,
        *,
        now: datetime,
        name: str = "Gateway demo CA",
        spec: KeySpec = algorithms.DEFAULT_KEY_SPEC,
        validity: timedelta = CA_VALIDITY,
        directory: Path | None = None,
    ) -> DemoCA:
        """A new self-signed demo CA; its subject says DEMO — NOT FOR PRODUCTION."""
        key = algorithms.generate_private_key(spec)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEMO_LABEL),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} — {DEMO_LABEL}"),
            ]
        )
        public_key = key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    **{
                        **dict.fromkeys(_KEY_USAGE_FLAGS, False),
                        "key_cert_sign": True,
                        "crl_sign": True,
                    }
                ),
                critical=True,
            )
            .add_extension(_key_identifier(public_key), critical=False)
        )
        certificate = _signed_certificate(builder, key, public_key)
        return cls(key=key, certificate=certificate, directory=directory)

    @classmethod
    def load(cls, directory: Path, passphrase: bytes) -> DemoCA:
        """Load a CA written by :meth:`save`."""
        key_path = directory / cls.KEY_FILE
        key: Any
        try:
            key = load_pem_private_key(key_path.read_bytes(), passphrase)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{key_path}: no demo CA here; run `gateway keys init-ca --config NODE.toml`"
            ) from None
        except (ValueError, TypeError):
            raise ValueError(
                f"{key_path}: cannot decrypt the demo CA key with the node's passphrase"
            ) from None
        if not isinstance(
            key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | gost.GostPrivateKey
        ):
            raise ValueError(f"{key_path}: not an EC, RSA or GOST key")
        certificate = x509.load_pem_x509_certificate((directory / cls.CERT_FILE).read_bytes())
        revoked: dict[int, datetime] = {}
        revoked_path = directory / cls.REVOKED_FILE
        if revoked_path.exists():
            for serial, when in json.loads(revoked_path.read_text("utf-8")).items():
                revoked[int(serial, 16)] = datetime.fromisoformat(when)
        return cls(key=key, certificate=certificate, directory=directory, revoked=revoked)

    def save(self, passphrase: bytes, *, now: datetime | None = None) -> None:
        """Write key (encrypted), certificate, revocation list; ``now`` also writes ``crl.pem``."""
        if self.directory is None:
            raise ValueError("DemoCA.save needs a directory")
        write_private_key(self.directory / self.KEY_FILE, self.key, passphrase)
        (self.directory / self.CERT_FILE).write_bytes(
            self.certificate.public_bytes(serialization.Encoding.PEM)
        )
        (self.directory / self.REVOKED_FILE).write_text(
            json.dumps({f"{s:x}": t.isoformat() for s, t in self.revoked.items()}, indent=1),
            encoding="utf-8",
        )
        if now is not None:
            (self.directory / self.CRL_FILE).write_bytes(
                self.crl(now=now).public_bytes(serialization.Encoding.PEM)
            )

    @property
    def is_demo(self) -> bool:
        return DEMO_LABEL in self.certificate.subject.rfc4514_string()

    def issue(
        self,
        public_key: Any,
        profile: CertificateProfile,
        *,
        now: datetime,
        validity: timedelta = END_ENTITY_VALIDITY,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> x509.Certificate:
        """Certify ``public_key`` with ``profile``. ``not_before``/``not_after`` override the
        period (tests build expired and not-yet-valid certificates with them)."""
        algorithms.check_public_key(public_key)
        if not profile.demo:
            profile = _with_demo(profile)
        ca_public = self.key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(profile.subject())
            .issuer_name(self.certificate.subject)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - BACKDATE)
            # Never beyond the CA's own life: such a certificate would not validate anyway.
            .not_valid_after(min(not_after or now + validity, self.certificate.not_valid_after_utc))
            .add_extension(_key_identifier(public_key), critical=False)
            .add_extension(_authority_key_identifier(ca_public), critical=False)
        )
        for extension, critical in profile.extensions(public_key):
            builder = builder.add_extension(extension, critical=critical)
        return _signed_certificate(builder, self.key, public_key)

    def issue_from_csr(
        self,
        csr: x509.CertificateSigningRequest,
        profile: CertificateProfile,
        *,
        now: datetime,
        validity: timedelta = END_ENTITY_VALIDITY,
    ) -> x509.Certificate:
        """Certify a request after checking its self-signature."""
        if gost.is_gost_signed(csr):
            public_key: Any = gost.csr_public_key(csr)
            valid = gost.signature_verifies(csr, public_key)
        else:
            public_key, valid = csr.public_key(), csr.is_signature_valid
        if not valid:
            raise ValueError("certificate request: its signature does not verify")
        return self.issue(public_key, profile, now=now, validity=validity)

    def revoke(self, certificate: x509.Certificate | int, *, at: datetime) -> None:
        serial = certificate if isinstance(certificate, int) else certificate.serial_number
        self.revoked[serial] = at

    def crl(
        self, *, now: datetime, next_update_in: timedelta = CRL_VALIDITY
    ) -> x509.CertificateRevocationList:
        """A CRL of everything revoked so far, issued at ``now``."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now)
            .next_update(now + next_update_in)
            .add_extension(_authority_key_identifier(self.key.public_key()), critical=False)
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
        )
        for serial, when in sorted(self.revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        if isinstance(self.key, gost.GostPrivateKey):
            der = builder.sign(_stand_in(), hashes.SHA256()).public_bytes(
                serialization.Encoding.DER
            )
            return gost.resign_crl(der, self.key)
        return builder.sign(self.key, algorithms.cert_hash_for(self.key.public_key()))


def _with_demo(profile: CertificateProfile) -> CertificateProfile:
    return replace(profile, demo=True)


# --- a whole demo PKI ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoOfficial:
    """An authorised person to create a key for."""

    name: str
    """Key name (``ivanov``): the file is ``official-ivanov``."""
    person: str
    """CN: the person's full name."""
    title: str
    """The position."""


DEFAULT_OFFICIALS = (DemoOfficial("chief", "Иванов Иван Иванович", "Начальник отдела"),)


def utc(dt: datetime) -> datetime:
    """``dt`` as an aware UTC datetime (naive values are taken as UTC)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)

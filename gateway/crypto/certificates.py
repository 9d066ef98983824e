"""Certificate profiles, requests (CSR), reading and writing certificates and keys.

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

Production keys are certified by a national CA through :func:`build_csr` and
``gateway keys import``; the demo CA (:mod:`gateway.crypto.demo_ca`) certifies demo keys.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.crypto import algorithms, gost
from gateway.crypto.files import write_atomically
from gateway.model.bodies import BODY_ID_PATTERN, DEMO_BODIES, state_of

DEMO_LABEL = "DEMO — NOT FOR PRODUCTION"
"""Put in the subject of every demo certificate so nobody mistakes one for a real one."""

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
        if not BODY_ID_PATTERN.fullmatch(self.body_id):
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
        usage = dict.fromkeys(KEY_USAGE_FLAGS, False)
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


KEY_USAGE_FLAGS = (
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


_STAND_IN_KEYS: dict[str, ec.EllipticCurvePrivateKey] = {}


def stand_in_key() -> ec.EllipticCurvePrivateKey:
    """``cryptography``'s builders need a key they know: GOST certificates and CRLs are built
    with this one, then re-signed (:func:`gost.resign_certificate`)."""
    if "key" not in _STAND_IN_KEYS:
        _STAND_IN_KEYS["key"] = ec.generate_private_key(ec.SECP256R1())
    return _STAND_IN_KEYS["key"]


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


_FOREIGN_PURPOSES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}
"""Extended key usages that make a certificate one of another role (a node's TLS server, a TSA,
an OCSP responder): such a certificate never makes a seal or an official's signature, whatever
its key usage says."""


def _extended_key_usage(certificate: x509.Certificate) -> list[x509.ObjectIdentifier]:
    try:
        return list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return []


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
        purposes = _extended_key_usage(certificate)
        foreign = sorted(name for oid, name in _FOREIGN_PURPOSES.items() if oid in purposes)
        if foreign:
            return f"it is made for another purpose (extended key usage {', '.join(foreign)})"
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
        stand_in = builder.sign(stand_in_key(), hashes.SHA256())
        return gost.resign_csr(stand_in.public_bytes(serialization.Encoding.DER), private_key)
    return builder.sign(private_key, algorithms.cert_hash_for(public_key))


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | gost.GostPrivateKey
"""The private keys the gateway signs and certifies with."""


class UnsupportedKey(ValueError):
    """The PEM holds a private key of another kind than EC, RSA or GOST."""


def load_pem_private_key(data: bytes, passphrase: bytes | None) -> PrivateKey:
    """A PKCS#8 / traditional PEM key: ``cryptography``'s loader, then the GOST one (keys
    ``openssl genpkey -engine gost`` writes, and ours). :class:`UnsupportedKey` for a key
    that is not EC, RSA or GOST; ``ValueError`` / ``TypeError`` for what does not load."""
    key: Any
    try:
        key = serialization.load_pem_private_key(data, passphrase)
    except UnsupportedAlgorithm:
        key = gost.load_pem_private_key(data, passphrase)
    except ValueError as exc:
        try:
            key = gost.load_pem_private_key(data, passphrase)
        except gost.GostError:
            raise exc from None
    if not isinstance(key, PrivateKey):
        raise UnsupportedKey("only EC, RSA and GOST keys are supported")
    return key


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


def utc(dt: datetime) -> datetime:
    """``dt`` as an aware UTC datetime (naive values are taken as UTC)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)

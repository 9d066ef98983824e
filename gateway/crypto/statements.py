"""The seal's detached signatures over canonical JSON: audit checkpoints and purge reports.

A statement is canonical JSON (sorted keys, no spaces, UTF-8); its signature is the seal's
default scheme (ECDSA with the curve's hash, DER-encoded; RSA PKCS#1 v1.5 SHA-256), what
``openssl dgst -sha256 -verify`` checks. Here, below the store, so that every layer that must
trust a statement (``audit verify``, purge reports, proof of existence) checks it one way.
Verification returns a :class:`StatementCheck`; a failure cannot read as success.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from gateway.crypto import algorithms, certificates, gost
from gateway.crypto.keys.keystore import SigningKey

CHECKPOINT_FORMAT = "gateway-audit-checkpoint/1"
"""Names an audit checkpoint statement's layout, so a later layout can never be read as this
one."""


def canonical_json(obj: Mapping[str, Any]) -> str:
    """Sorted keys, no spaces, UTF-8 text: the exact bytes a statement's signature covers."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class SignedStatement:
    statement: str
    """Canonical JSON; the signature covers ``statement.encode("utf-8")``."""
    signature: bytes
    certificate: bytes
    """DER of the seal certificate that signed."""


def sign_statement(seal: SigningKey, obj: Mapping[str, Any]) -> SignedStatement:
    """Sign ``obj``'s canonical JSON with the body's seal."""
    text = canonical_json(obj)
    return SignedStatement(
        text,
        seal.sign(text.encode("utf-8")),
        seal.certificate.public_bytes(serialization.Encoding.DER),
    )


@dataclass(frozen=True, slots=True)
class StatementCheck:
    """Result of :func:`verify_statement`: ``ok`` only when the signature is valid and (when
    expected certificates were given) made by one of them."""

    ok: bool
    reason: str
    """Empty when ok."""
    signer: str
    """Subject of the signing certificate (empty when unreadable)."""


def _verify_raw(public_key: Any, data: bytes, signature: bytes) -> None:
    _method, digest = algorithms.signature_method_for(public_key)
    hash_alg = hashes.SHA384() if "384" in digest.name else hashes.SHA256()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hash_alg))
    elif isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(public_key, gost.GostPublicKey):
        if not public_key.verify(signature, data):
            raise InvalidSignature("GOST signature does not verify")
    else:
        raise InvalidSignature(f"unsupported key type {type(public_key).__name__}")


def verify_statement(
    statement: str,
    signature: bytes,
    certificate_der: bytes,
    expected: Sequence[x509.Certificate] = (),
) -> StatementCheck:
    """Check a detached seal signature over ``statement``. With ``expected`` (the node's seal
    certificates, current and earlier), the signer's public key must be one of theirs: a
    certificate stored next to the statement proves nothing by itself."""
    try:
        cert = x509.load_der_x509_certificate(certificate_der)
    except ValueError:
        return StatementCheck(False, "the stored certificate is not readable DER", "")
    signer = cert.subject.rfc4514_string()
    try:
        _verify_raw(certificates.public_key_of(cert), statement.encode("utf-8"), signature)
    except (InvalidSignature, ValueError) as exc:
        return StatementCheck(False, f"signature does not verify ({exc or 'invalid'})", signer)
    if expected:
        spki = certificates.public_key_of(cert).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        known = {
            certificates.public_key_of(c).public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            for c in expected
        }
        if spki not in known:
            return StatementCheck(
                False, f"signed by {signer}, which is not this body's seal certificate", signer
            )
    return StatementCheck(True, "", signer)

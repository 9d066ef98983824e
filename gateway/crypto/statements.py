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
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from gateway.crypto import algorithms, certificates, gost
from gateway.crypto.keys.generations import NEVER, RevocationReason, Signer
from gateway.crypto.keys.keystore import SigningKey
from gateway.crypto.trust import TrustList

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
    signers were given) made by one of them within the window its generation could sign."""

    ok: bool
    reason: str
    """Empty when ok."""
    signer: str
    """Subject of the signing certificate (empty when unreadable)."""
    generation: int | None = None
    """The signing generation, when signers were given and one matched."""
    signed_at: datetime | None = None
    """The time the statement claims (its ``time_field``), when signers were given."""
    compromised_at: datetime | None = None
    """Set when the signature is valid and inside its generation's window, but the generation
    was revoked for key compromise at this time: whoever holds the key can write any time into
    a statement, so it counts only with a proof that it existed before this time
    (``gateway.exchange.existence.event_proven``). ``ok`` is False meanwhile."""


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
    signers: Sequence[Signer] = (),
    *,
    time_field: str = "at",
) -> StatementCheck:
    """Check a detached seal signature over ``statement``. With ``signers`` (the node's seal
    generations, current and earlier), the signer's public key must be one of theirs — a
    certificate stored next to the statement proves nothing by itself — and the time the
    statement claims (its ``time_field``) must fall in that generation's window: not before
    it came into force, not at or after its revocation."""
    try:
        cert = x509.load_der_x509_certificate(certificate_der)
    except ValueError:
        return StatementCheck(False, "the stored certificate is not readable DER", "")
    signer = cert.subject.rfc4514_string()
    try:
        _verify_raw(certificates.public_key_of(cert), statement.encode("utf-8"), signature)
    except (InvalidSignature, ValueError) as exc:
        return StatementCheck(False, f"signature does not verify ({exc or 'invalid'})", signer)
    if not signers:
        return StatementCheck(True, "", signer)
    generation = _generation_of(cert, signers)
    if generation is None:
        return StatementCheck(
            False, f"signed by {signer}, which is not this body's seal certificate", signer
        )
    signed_at = _claimed_time(statement, time_field)
    if signed_at is None:
        return StatementCheck(
            False,
            f"the signed statement has no readable {time_field!r} time to judge its seal by",
            signer,
            generation.number,
        )
    problem = _outside_window(generation, signed_at)
    if problem:
        return StatementCheck(False, problem, signer, generation.number, signed_at)
    if generation.compromised:
        assert generation.revoked_at is not None
        return StatementCheck(
            False,
            f"signed by seal generation {generation.number}, revoked for key compromise on "
            f"{generation.revoked_at.isoformat()}: the time it states "
            f"({signed_at.isoformat()}) is only the key holder's word, and no signed audit "
            "checkpoint of a trusted generation made before the revocation covers it",
            signer,
            generation.number,
            signed_at,
            compromised_at=generation.revoked_at,
        )
    return StatementCheck(True, "", signer, generation.number, signed_at)


@dataclass(frozen=True, slots=True)
class CrlSigners:
    """Seal certificates with their revocations as their CAs' CRLs state them."""

    signers: tuple[Signer, ...]
    as_of: datetime
    """The oldest of the CRLs' dates: what they say holds up to then."""
    next_update: datetime | None
    """The earliest date by which one of them promised a successor (None: one promised
    none): past it, a newer CRL may list revocations these do not."""


def crl_signers(seal: Sequence[x509.Certificate], trust: TrustList) -> CrlSigners:
    """The body's seal certificates as a verifier away from the node knows them: each in force
    from the beginning (the activation schedule stays on the node) and revoked when, and for
    the reason, its issuer's CRLs among ``trust``'s say — the standard record any stack
    reads. Raises ValueError when a certificate's issuer or its CRL is not in
    ``trust``."""
    signers, records = [], []
    for number, cert in enumerate(seal, start=1):
        record = trust.revocation_record(cert)
        records.append(record)
        reason = None
        if record.reason is not None:
            try:
                reason = RevocationReason(record.reason)
            except ValueError:  # a reason no administrator states here (certificateHold…)
                reason = RevocationReason.UNSPECIFIED
        signers.append(Signer(number, cert, revoked_at=record.revoked_at, reason=reason))
    promised = [r.next_update for r in records]
    return CrlSigners(
        tuple(signers),
        min(r.as_of for r in records),
        None if None in promised else min(p for p in promised if p is not None),
    )


def _spki(cert: x509.Certificate) -> bytes:
    return bytes(
        certificates.public_key_of(cert).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _generation_of(cert: x509.Certificate, signers: Sequence[Signer]) -> Signer | None:
    spki = _spki(cert)
    return next((s for s in signers if _spki(s.certificate) == spki), None)


def _claimed_time(statement: str, field: str) -> datetime | None:
    try:
        value = json.loads(statement)[field]
        at = datetime.fromisoformat(value)
    except (ValueError, KeyError, TypeError):
        return None
    return at if at.tzinfo is not None else None


def _outside_window(generation: Signer, signed_at: datetime) -> str:
    """Why ``generation`` cannot have signed at ``signed_at``; empty when it could."""
    if generation.revoked_at is not None and signed_at >= generation.revoked_at:
        return (
            f"signed on {signed_at.isoformat()} by seal generation {generation.number}, revoked "
            f"on {generation.revoked_at.isoformat()} ({generation.reason}): a revoked seal "
            "signs nothing after its revocation"
        )
    cert = generation.certificate
    if not cert.not_valid_before_utc <= signed_at <= cert.not_valid_after_utc:
        return (
            f"signed on {signed_at.isoformat()} by seal generation {generation.number}, whose "
            f"certificate is valid only from {cert.not_valid_before_utc.isoformat()} to "
            f"{cert.not_valid_after_utc.isoformat()}"
        )
    if signed_at < generation.in_force_from:
        when = (
            "never activated"
            if generation.in_force_from == NEVER
            else (f"in force only from {generation.in_force_from.isoformat()}")
        )
        return f"signed on {signed_at.isoformat()} by seal generation {generation.number}, {when}"
    return ""

"""RFC 3161 signature timestamps in XAdES (B-T): add one, and check one.

The signature (:mod:`gateway.crypto.xades`) is XAdES-BES; the timestamp is an unsigned property:

    ds:Signature/ds:Object/xades:QualifyingProperties/xades:UnsignedProperties/
        xades:UnsignedSignatureProperties/xades:SignatureTimeStamp/xades:EncapsulatedTimeStamp

over the ``ds:SignatureValue`` element in exclusive C14N (ETSI EN 319 132-1, 5.3), the one
canonicalization of our profile. The token comes
from a pyHanko ``TimeStamper`` (``HTTPTimeStamper`` for ``[tsa] url``). Checking it uses
pyHanko's CMS validation with *our* trust anchors and CRLs (fail closed on revocation like
the signatures themselves); the TSA certificate must carry the timeStamping usage.

A valid timestamp is a proof of existence: the signature existed at ``gen_time``. It lets a
signature outlive its certificate's expiry or a later revocation (no more *_NO_POE).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from gateway.crypto import algorithms
from gateway.crypto.report import Indication, SubIndication
from gateway.crypto.trust import TrustList, run_sync

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
"""Exclusive XML Canonicalization 1.0 without comments: the only canonicalization of our
signature profile (docs/keys-and-signatures.md)."""

TIMESTAMP_C14N = EXC_C14N
"""Canonicalization of the timestamped SignatureValue."""

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 64 * 1024
"""A timestamp token is a few kilobytes (a CMS SignedData with the TSA's chain); more is abuse."""

_PATH = (
    f"{{{DS_NS}}}Object/{{{XADES_NS}}}QualifyingProperties/{{{XADES_NS}}}UnsignedProperties/"
    f"{{{XADES_NS}}}UnsignedSignatureProperties/{{{XADES_NS}}}SignatureTimeStamp"
)


def _signature_value_bytes(signature: etree._Element) -> bytes:
    value = signature.find(f"{{{DS_NS}}}SignatureValue")
    if value is None:
        raise ValueError("the signature has no SignatureValue")
    return bytes(etree.tostring(value, method="c14n", exclusive=True, with_comments=False))


def add_signature_timestamp(signature: etree._Element, timestamper: Any) -> None:
    """Fetch a token for ``signature``'s value and add it as xades:SignatureTimeStamp."""
    canonical = _signature_value_bytes(signature)
    token = run_sync(timestamper.async_timestamp(hashlib.sha256(canonical).digest(), "sha256"))
    qualifying = signature.find(f"{{{DS_NS}}}Object/{{{XADES_NS}}}QualifyingProperties")
    if qualifying is None:
        raise ValueError("not a XAdES signature: no QualifyingProperties")
    unsigned = etree.SubElement(qualifying, f"{{{XADES_NS}}}UnsignedProperties")
    usp = etree.SubElement(unsigned, f"{{{XADES_NS}}}UnsignedSignatureProperties")
    stamp = etree.SubElement(
        usp, f"{{{XADES_NS}}}SignatureTimeStamp", Id=f"{signature.get('Id')}-SignatureTimeStamp"
    )
    etree.SubElement(stamp, f"{{{DS_NS}}}CanonicalizationMethod", Algorithm=TIMESTAMP_C14N)
    encapsulated = etree.SubElement(stamp, f"{{{XADES_NS}}}EncapsulatedTimeStamp")
    encapsulated.text = base64.b64encode(token.dump()).decode("ascii")


@dataclass(frozen=True, slots=True)
class TimestampResult:
    """The verdict on a signature's timestamp (``present`` False: there is none)."""

    present: bool
    time: datetime | None = None
    """The TSA's genTime, when the token is valid."""
    indication: Indication = Indication.TOTAL_PASSED
    sub_indication: SubIndication | None = None
    message: str = ""

    @property
    def proves_existence(self) -> bool:
        return self.present and self.time is not None and self.indication is Indication.TOTAL_PASSED


def verify_signature_timestamp(
    signature: etree._Element, trust: TrustList, at: datetime
) -> TimestampResult:
    """Check the SignatureTimeStamp of ``signature`` (an element of the received tree; the
    timestamp is an unsigned property, so its content is checked, never trusted)."""
    stamps = signature.findall(_PATH)
    if not stamps:
        return TimestampResult(present=False)
    if len(stamps) > 1:
        return _bad(SubIndication.FORMAT_FAILURE, "more than one SignatureTimeStamp")
    stamp = stamps[0]
    c14n = stamp.find(f"{{{DS_NS}}}CanonicalizationMethod")
    c14n_uri = c14n.get("Algorithm") if c14n is not None else None
    if c14n_uri != TIMESTAMP_C14N:
        return _bad(
            SubIndication.FORMAT_FAILURE,
            f"timestamp canonicalization {c14n_uri} refused: exclusive C14N ({EXC_C14N}) only",
        )
    text = stamp.findtext(f"{{{XADES_NS}}}EncapsulatedTimeStamp") or ""
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
    except ValueError:
        return _bad(SubIndication.FORMAT_FAILURE, "EncapsulatedTimeStamp is not base64")
    if not der or len(der) > MAX_TOKEN_BYTES:
        return _bad(SubIndication.FORMAT_FAILURE, "EncapsulatedTimeStamp empty or too large")
    canonical = _signature_value_bytes(signature)
    return _validate_token(der, canonical, trust, at)


def timestamp_bytes(data: bytes, timestamper: Any) -> bytes:
    """An RFC 3161 token (DER) over the SHA-256 of ``data``: for a detached signature of ours
    (an audit checkpoint's), the proof that it existed at the TSA's time."""
    token = run_sync(timestamper.async_timestamp(hashlib.sha256(data).digest(), "sha256"))
    return bytes(token.dump())


def timestamp_or_none(data: bytes, timestamper: Any, what: str) -> bytes | None:
    """:func:`timestamp_bytes`, or None — logged, naming ``what`` was left without one — when
    the TSA did not give a token: a statement stands without its timestamp rather than not at
    all (its own proofs still hold until its seal is revoked for compromise)."""
    try:
        return timestamp_bytes(data, timestamper)
    except Exception as exc:  # a TSA fails in many ways (network, HTTP, its answer): all alike
        log.warning(
            "%s: the TSA gave no timestamp (%s: %s); it stands without one",
            what,
            type(exc).__name__,
            exc,
        )
        return None


def verify_bytes_timestamp(
    der: bytes, data: bytes, trust: TrustList, at: datetime
) -> TimestampResult:
    """Check a token made by :func:`timestamp_bytes` over ``data`` (stored beside it, so its
    content is checked, never trusted), as a signature's: our anchors and CRLs."""
    if not der or len(der) > MAX_TOKEN_BYTES:
        return _bad(SubIndication.FORMAT_FAILURE, "timestamp token empty or too large")
    return _validate_token(der, data, trust, at)


def timestamped_before(
    token: bytes | None, data: bytes, moment: datetime, trust: TrustList | None
) -> datetime | None:
    """The TSA's time when ``token`` over ``data`` is valid under ``trust`` and earlier than
    ``moment`` (say, a seal's revocation); None otherwise: no token, no trust to judge it by,
    invalid, or too late."""
    if token is None or trust is None:
        return None
    result = verify_bytes_timestamp(token, data, trust, datetime.now(UTC))
    if not result.proves_existence or result.time is None or result.time >= moment:
        return None
    return result.time


def _bad(
    sub: SubIndication, message: str, indication: Indication = Indication.TOTAL_FAILED
) -> TimestampResult:
    return TimestampResult(present=True, indication=indication, sub_indication=sub, message=message)


def _validate_token(
    der: bytes, canonical: bytes, trust: TrustList, at: datetime
) -> TimestampResult:
    from asn1crypto import cms
    from asn1crypto import crl as asn1_crl
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko_certvalidator import ValidationContext

    try:
        content = cms.ContentInfo.load(der)
        signed_data = content["content"]
        tst_info = signed_data["encap_content_info"]["content"].parsed
        gen_time: datetime = tst_info["gen_time"].native
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return _bad(SubIndication.FORMAT_FAILURE, f"not an RFC 3161 token: {exc}")

    def expected(algorithm: str) -> bytes:
        if algorithm in algorithms.WEAK_CERTIFICATE_HASHES:
            raise ValueError(f"timestamp imprint uses {algorithm}")
        return hashlib.new(algorithm, canonical).digest()

    context = ValidationContext(
        trust_roots=[
            asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
            for c in trust.anchors
        ],
        crls=[
            asn1_crl.CertificateList.load(c.public_bytes(serialization.Encoding.DER))
            for c in trust.crls
        ],
        moment=gen_time,
        allow_fetching=False,
        revocation_mode="require" if trust.require_revocation else "soft-fail",
        weak_hash_algos=set(algorithms.WEAK_CERTIFICATE_HASHES),
        retroactive_revinfo=True,
    )
    try:
        status = run_sync(validate_tst_signed_data(signed_data, context, expected))
    except ValueError as exc:
        return _bad(SubIndication.CRYPTO_CONSTRAINTS_FAILURE, str(exc), Indication.INDETERMINATE)
    except Exception as exc:
        # pyHanko raises several kinds of errors for a malformed token: all mean "unreadable".
        return _bad(SubIndication.FORMAT_FAILURE, f"timestamp token unreadable: {exc}")
    if not status.get("intact"):
        return _bad(SubIndication.HASH_FAILURE, "the timestamp is not over this signature value")
    if not status.get("valid"):
        return _bad(SubIndication.SIG_CRYPTO_FAILURE, "the timestamp token's signature is invalid")
    if status.get("trust_problem_indic") is not None:
        return _bad(
            SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
            f"the TSA is not trusted: {status['trust_problem_indic']}",
            Indication.INDETERMINATE,
        )
    if gen_time > at:
        return _bad(SubIndication.FORMAT_FAILURE, "the timestamp is later than the validation time")
    return TimestampResult(present=True, time=gen_time, message="timestamp valid")

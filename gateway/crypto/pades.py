"""PAdES signatures on PDFs: our sealed renditions and the signed PDFs peers attach (extracts).

A thin recipe layer over pyHanko:

* :func:`sign_pdf` adds a PAdES B-B signature (B-T when a timestamper is given) to a PDF;
* :func:`verify_pdf` validates every signature of a PDF against *our* trust anchors at a given
  time and returns one :class:`~gateway.crypto.report.SignatureReport` per signature, in the
  ETSI EN 319 102-1 vocabulary. A PDF without a signature, or one that cannot be read, yields a
  single failed report: an empty answer that a caller could mistake for success never comes back.
* :func:`simple_signer_from` turns ``cryptography`` key and certificates into pyHanko's signer
  (the key store calls it; PKCS#11 goes through pyHanko's ``PKCS11Signer`` instead).

Costs: pyHanko re-reads the private key on every signature (26-112 ms per PAdES signature,
FACTS.md), and validation runs at ~150 per second. Neither belongs on the receive path: run them
in a job or an executor. The synchronous functions call :func:`asyncio.run`; inside an event
loop use the ``async_`` variants.

Revocation fails closed: unless the caller passes ``crls=None`` on purpose, every certificate
below the trust anchor needs a CRL in ``crls`` or the verdict is INDETERMINATE/TRY_LATER.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from io import BytesIO
from typing import Any, BinaryIO, ParamSpec, TypeVar

from asn1crypto import keys as asn1_keys
from asn1crypto import parser as asn1_parser
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESSubIndic
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.general import SigningError
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.validation import EmbeddedPdfSignature, async_validate_pdf_signature
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from gateway.crypto.report import (
    CertificateInfo,
    Indication,
    RevocationStatus,
    SignatureReport,
    SubIndication,
)

_P = ParamSpec("_P")
_R = TypeVar("_R")

__all__ = [
    "MAX_PDF_BYTES",
    "async_sign_pdf",
    "async_verify_pdf",
    "sign_pdf",
    "simple_signer_from",
    "verify_pdf",
]

MAX_PDF_BYTES = 64 * 1024 * 1024
"""Largest PDF we verify from bytes: register extracts are a few MB, and bytes are held whole
(and pyHanko walks every xref section), so an unbounded input is a DoS. A seekable file (a
stored attachment, ``gateway.exchange.attachments.open_file``) is read in place instead:
verifying a 64 MiB signed PDF so held ~4.4 MB of Python memory at its peak; its size is
bounded by the node's ``[limits] max_attachment_bytes``."""

MAX_SIGNATURES = 32
"""A legitimate extract carries one or two signatures; more is an attempt to exhaust the
validator (each costs a chain build and a diff analysis of the revision)."""

DIGEST_ALGORITHM = "sha256"
"""SHA-256 for every PAdES signature we make: accepted by all peers' validators."""

SIGNATURE_FIELD = "GatewaySeal"
"""Name of the invisible signature field our renditions get."""

ROLE = "pades"

UNSIGNED = "the PDF carries no signature"
"""The one report's message for a PDF without any signature (callers refusing such a file
compare with it)."""
UNREADABLE = "the file is not a readable PDF"
"""How the one report's message begins for bytes pyHanko cannot read as a PDF."""

_SEAL_KEY_USAGE = KeyUsageConstraints(
    # A seal certificate carries nonRepudiation (contentCommitment), digitalSignature or both,
    # depending on the issuing CA's profile; either one permits signing documents.
    key_usage={"digital_signature", "non_repudiation"},
    match_all_key_usages=False,
)

_ACCEPTED_LATER_CHANGES = ModificationLevel.FORM_FILLING
"""Changes after a signature that leave what it signed intact: a later signature, validation
data (DSS, document timestamps) and form filling. Annotations and anything else fail."""


# --- signing -------------------------------------------------------------------------------------


def simple_signer_from(
    key: PrivateKeyTypes,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate] = (),
) -> signers.SimpleSigner:
    """A pyHanko signer for a key held in memory; ``chain`` holds the intermediates (and root).

    The chain is embedded in every signature so that a validator needs only the trust anchor.
    """
    der_key = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    registry = SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
        [_to_asn1(c) for c in chain]
    )
    return signers.SimpleSigner(
        signing_cert=_to_asn1(cert),
        signing_key=asn1_keys.PrivateKeyInfo.load(der_key),
        cert_registry=registry,
    )


def _pdf_signer(
    signer: signers.Signer, reason: str, location: str, timestamper: TimeStamper | None
) -> signers.PdfSigner:
    meta = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD,
        reason=reason,
        location=location,
        md_algorithm=DIGEST_ALGORITHM,
        subfilter=fields.SigSeedSubFilter.PADES,
        use_pades_lta=False,
        embed_validation_info=False,
    )
    return signers.PdfSigner(meta, signer=signer, timestamper=timestamper)


async def async_sign_pdf(
    pdf: bytes,
    signer: signers.Signer,
    *,
    reason: str,
    location: str,
    timestamper: TimeStamper | None = None,
) -> bytes:
    """Sign ``pdf`` with a PAdES signature in an invisible field and return the signed bytes.

    PAdES B-B; with ``timestamper`` (an RFC 3161 client, e.g. pyHanko's ``HTTPTimeStamper``)
    PAdES B-T. The signing time is the signer's clock (it is what the signature claims).
    ``reason`` and ``location`` land in the signature dictionary, shown by PDF readers.
    For callers inside an event loop; :func:`sign_pdf` is the blocking form.
    Raises pyHanko's ``SigningError`` when the PDF cannot be read or the signer fails.
    """
    out = BytesIO()
    try:
        writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=True)
        await _pdf_signer(signer, reason, location, timestamper).async_sign_pdf(writer, output=out)
    except (PdfError, SigningError) as exc:
        raise SigningError(f"PAdES signing failed: {exc}") from exc
    return out.getvalue()


# --- verification -------------------------------------------------------------------------------


def _to_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def _from_asn1(cert: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


def _certificate_info(cert: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
    )


def _body_id(cert: x509.Certificate) -> str:
    ids = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
    return str(ids[0].value) if ids else ""


def _failed(message: str, sub: SubIndication = SubIndication.FORMAT_FAILURE) -> SignatureReport:
    return SignatureReport(ROLE, Indication.TOTAL_FAILED, sub, message)


_SUB_FROM_PYHANKO: dict[AdESSubIndic, SubIndication | None] = {
    # pyHanko's AdES sub-indications without a same-named member of ours.
    AdESIndeterminate.REVOKED_CA_NO_POE: SubIndication.REVOKED_NO_POE,
    AdESIndeterminate.REVOCATION_OUT_OF_BOUNDS_NO_POE: SubIndication.OUT_OF_BOUNDS_NO_POE,
    AdESIndeterminate.CRYPTO_CONSTRAINTS_FAILURE_NO_POE: SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
    AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE: SubIndication.CHAIN_CONSTRAINTS_FAILURE,
    AdESIndeterminate.POLICY_PROCESSING_ERROR: SubIndication.CHAIN_CONSTRAINTS_FAILURE,
    AdESIndeterminate.NO_POE: SubIndication.OUT_OF_BOUNDS_NO_POE,
    AdESIndeterminate.TIMESTAMP_ORDER_FAILURE: SubIndication.SIG_CONSTRAINTS_FAILURE,
    AdESIndeterminate.EXPIRED: SubIndication.OUT_OF_BOUNDS_NO_POE,
    AdESIndeterminate.NOT_YET_VALID: SubIndication.NOT_YET_VALID,
    AdESIndeterminate.GENERIC: None,
}


def _map_sub(indic: AdESSubIndic) -> tuple[Indication, SubIndication | None]:
    indication = (
        Indication.TOTAL_FAILED if isinstance(indic, AdESFailure) else Indication.INDETERMINATE
    )
    if indic in _SUB_FROM_PYHANKO:
        return indication, _SUB_FROM_PYHANKO[indic]
    try:
        return indication, SubIndication(indic.standard_name)
    except ValueError:
        return indication, None


def _revocation(status: PdfSignatureStatus, checked: bool) -> RevocationStatus:
    if status.revocation_details is not None:
        return RevocationStatus.REVOKED
    if not checked:
        return RevocationStatus.NOT_CHECKED
    return RevocationStatus.GOOD if status.trusted else RevocationStatus.UNKNOWN


def _judge(
    status: PdfSignatureStatus, checked_revocation: bool, revinfo_missing: bool
) -> tuple[Indication, SubIndication | None, str]:
    """The ETSI verdict for one signature, from the most basic failure to the most subtle."""
    if not status.intact:
        return (
            Indication.TOTAL_FAILED,
            SubIndication.HASH_FAILURE,
            "the signed bytes of the PDF were changed after signing",
        )
    if not status.valid:
        return (
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CRYPTO_FAILURE,
            "the signature value does not match the signer's public key",
        )
    if status.revocation_details is not None:
        revoked_at = status.revocation_details.revocation_date
        message = f"certificate revoked on {revoked_at.isoformat()}"
        ts = status.timestamp_validity
        if ts is not None and ts.valid and ts.intact and ts.trusted and ts.timestamp >= revoked_at:
            # A timestamp proves the signature was made after the revocation (ETSI: REVOKED).
            return Indication.TOTAL_FAILED, SubIndication.REVOKED, message
        # Without proof of existence before the revocation, ETSI says REVOKED_NO_POE.
        return Indication.INDETERMINATE, SubIndication.REVOKED_NO_POE, message
    if revinfo_missing:
        return (
            Indication.INDETERMINATE,
            SubIndication.TRY_LATER,
            "no revocation information (CRL) for the chain; we fail closed — load the "
            "issuer's current CRL and validate again",
        )
    if not status.trusted:
        indic = status.trust_problem_indic or AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND
        indication, sub = _map_sub(indic)
        if sub is SubIndication.NO_CERTIFICATE_CHAIN_FOUND:
            why = "no chain from the signer's certificate to our trust anchors"
        else:
            why = f"the signer's certificate is not trusted ({indic.standard_name})"
        return indication, sub, why
    coverage = status.coverage
    whole = coverage == SignatureCoverageLevel.ENTIRE_FILE
    later_ok = (
        coverage == SignatureCoverageLevel.ENTIRE_REVISION
        and status.modification_level is not None
        and status.modification_level <= _ACCEPTED_LATER_CHANGES
        and status.docmdp_ok is not False
    )
    if not (whole or later_ok):
        return (
            Indication.TOTAL_FAILED,
            SubIndication.FORMAT_FAILURE,
            "content was added to the PDF after signing (the signature does not cover what a "
            "reader shows); ask the sender for a fresh copy",
        )
    if status.seed_value_constraint_error is not None:
        return (
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            f"signature field constraints not met: {status.seed_value_constraint_error}",
        )
    ts = status.timestamp_validity
    if ts is not None and not (ts.intact and ts.valid and ts.trusted):
        return (
            Indication.INDETERMINATE,
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            "the signature timestamp (B-T) is present but does not validate",
        )
    note = "" if checked_revocation else "; revocation NOT checked (crls=None)"
    return Indication.TOTAL_PASSED, None, f"signature valid, chain trusted{note}"


def _report(
    status: PdfSignatureStatus,
    embedded: EmbeddedPdfSignature,
    checked_revocation: bool,
    revinfo_missing: bool,
) -> SignatureReport:
    indication, sub, message = _judge(status, checked_revocation, revinfo_missing)
    signer = _from_asn1(status.signing_cert)
    if status.validation_path is not None:
        certs = list(status.validation_path.iter_certs(include_root=True))
        chain = tuple(_certificate_info(_from_asn1(c)) for c in reversed(certs))
    else:
        chain = (_certificate_info(signer),)
    ts = status.timestamp_validity
    return SignatureReport(
        role=ROLE,
        indication=indication,
        sub_indication=sub,
        message=f"{embedded.field_name}: {message}",
        signer_subject=signer.subject.rfc4514_string(),
        signer_body_id=_body_id(signer),
        claimed_signing_time=status.signer_reported_dt,
        signature_algorithm=status.pkcs7_signature_mechanism,
        digest_algorithm=status.md_algorithm,
        chain=chain,
        revocation=_revocation(status, checked_revocation),
        timestamp_time=ts.timestamp if ts is not None and ts.valid and ts.intact else None,
    )


def _context(
    trust_roots: Sequence[x509.Certificate],
    at: datetime,
    crls: Sequence[x509.CertificateRevocationList] | None,
) -> ValidationContext:
    return ValidationContext(
        trust_roots=[_to_asn1(c) for c in trust_roots],
        moment=at,
        allow_fetching=False,  # no network: revocation data comes from our own CRL store
        crls=[c.public_bytes(Encoding.DER) for c in crls] if crls is not None else None,
        # "require": every certificate below the anchor needs revocation data (fail closed).
        revocation_mode="require" if crls is not None else "soft-fail",
    )


async def async_verify_pdf(
    pdf: bytes | BinaryIO,
    trust_roots: Sequence[x509.Certificate],
    at: datetime,
    *,
    crls: Sequence[x509.CertificateRevocationList] | None = (),
) -> tuple[SignatureReport, ...]:
    """Validate every signature of ``pdf`` at time ``at`` against ``trust_roots``.

    ``pdf``: the bytes (at most :data:`MAX_PDF_BYTES`), or a seekable binary file read in
    place — a stored attachment of any size through ``gateway.exchange.attachments.open_file``:
    pyHanko reads the cross-reference table and the signature objects, and hashes the signed
    byte ranges in chunks, so memory does not grow with the file.

    Returns one report per signature (role ``pades``), never an empty tuple: an unreadable or
    unsigned PDF gives one TOTAL_FAILED/FORMAT_FAILURE report. A signature passes only if the
    signed bytes are intact, the signature value checks, the chain ends in ``trust_roots``,
    revocation is established from ``crls`` (fail closed: ``crls=()`` with a chain that needs a
    CRL gives INDETERMINATE/TRY_LATER; ``crls=None`` skips revocation and says so), and nothing
    but later signatures, validation data or form filling was added after signing.

    For callers inside an event loop; :func:`verify_pdf` is the blocking form.

    The signer's body is ``signer_body_id`` (its ``organizationIdentifier``); checking that it
    is the expected body is the caller's business.
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware (e.g. datetime.now(UTC))")
    if not trust_roots:
        raise ValueError("trust_roots is empty: pass the trust anchors of the signer's state")
    if isinstance(pdf, bytes) and len(pdf) > MAX_PDF_BYTES:
        return (_failed(f"PDF larger than {MAX_PDF_BYTES} bytes; not validated"),)
    try:
        reader = PdfFileReader(BytesIO(pdf) if isinstance(pdf, bytes) else pdf, strict=True)
        embedded = list(reader.embedded_regular_signatures)
    except Exception as exc:  # hostile bytes: any parser failure is a FORMAT_FAILURE
        return (_failed(f"{UNREADABLE} ({type(exc).__name__})"),)
    if not embedded:
        return (_failed(UNSIGNED),)
    if len(embedded) > MAX_SIGNATURES:
        return (_failed(f"the PDF carries {len(embedded)} signatures (> {MAX_SIGNATURES})"),)
    return tuple([await _verify_one(sig, trust_roots, at, crls) for sig in embedded])


async def _verify_one(
    sig: EmbeddedPdfSignature,
    trust_roots: Sequence[x509.Certificate],
    at: datetime,
    crls: Sequence[x509.CertificateRevocationList] | None,
) -> SignatureReport:
    if _padding_changed(sig.pkcs7_content):
        return SignatureReport(
            ROLE,
            Indication.TOTAL_FAILED,
            SubIndication.FORMAT_FAILURE,
            f"{sig.field_name}: bytes were written into the signature's unused space after "
            "signing (its /Contents padding is not zeros); ask the sender for a fresh copy",
        )
    try:
        # A fresh context per signature: revocation and path caches must not leak between them.
        status = await async_validate_pdf_signature(
            sig,
            signer_validation_context=_context(trust_roots, at, crls),
            key_usage_settings=_SEAL_KEY_USAGE,
        )
        revinfo_missing = False
        if (
            crls is not None
            and not status.trusted
            and status.revocation_details is None
            and status.trust_problem_indic is AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE
        ):
            # pyHanko reports a chain without revocation data as a general chain failure; tell
            # TRY_LATER (load a CRL) from a broken chain by validating once more without it.
            retry = await async_validate_pdf_signature(
                sig,
                signer_validation_context=_context(trust_roots, at, None),
                key_usage_settings=_SEAL_KEY_USAGE,
            )
            revinfo_missing = retry.trusted
        return _report(status, sig, crls is not None, revinfo_missing)
    except SignatureValidationError as exc:
        indication, sub = _map_sub(exc.ades_subindication or AdESFailure.FORMAT_FAILURE)
        return SignatureReport(ROLE, indication, sub, f"{sig.field_name}: {exc.failure_message}")
    except Exception as exc:  # hostile signature structures must not crash the caller
        return _failed(f"{sig.field_name}: malformed signature ({type(exc).__name__})")


def _padding_changed(contents: bytes) -> bool:
    """``/Contents`` holds the signature's CMS object, then zeros up to the space reserved at
    signing. It is the one part of the file the signature cannot cover, and a CMS parser stops
    at the object's end: anything but zeros after it was put there after signing (a hidden
    payload, or damage) and must not pass as signed."""
    _class, _method, _tag, header, body, _trailer = asn1_parser.parse(contents, strict=False)
    return any(contents[len(header) + len(body) :])


def _blocking(
    coroutine_function: Callable[_P, Coroutine[Any, Any, _R]], name: str
) -> Callable[_P, _R]:
    """The blocking form of ``coroutine_function`` (``asyncio.run``), for callers outside an
    event loop."""

    @functools.wraps(coroutine_function)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return asyncio.run(coroutine_function(*args, **kwargs))

    run.__name__ = run.__qualname__ = name
    return run


sign_pdf = _blocking(async_sign_pdf, "sign_pdf")
verify_pdf = _blocking(async_verify_pdf, "verify_pdf")

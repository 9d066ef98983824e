"""Verification reports, modelled on ETSI EN 319 102-1 as the EU DSS library and pyHanko report.

A report can never be mistaken for success: :attr:`SignatureReport.passed` is true only for
``TOTAL_PASSED``, and :meth:`ValidationReport.raise_for_failure` raises otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Indication(StrEnum):
    TOTAL_PASSED = "TOTAL_PASSED"
    INDETERMINATE = "INDETERMINATE"
    TOTAL_FAILED = "TOTAL_FAILED"


class SubIndication(StrEnum):
    # TOTAL_FAILED
    FORMAT_FAILURE = "FORMAT_FAILURE"
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
    """Used when the signer does not belong to the envelope's sender body, or lacks the role."""
    # INDETERMINATE
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
    OUT_OF_BOUNDS_NOT_REVOKED = "OUT_OF_BOUNDS_NOT_REVOKED"
    REVOKED_NO_POE = "REVOKED_NO_POE"
    TRY_LATER = "TRY_LATER"
    """Revocation status could not be established (no CRL): we fail closed."""
    SIGNED_DATA_NOT_FOUND = "SIGNED_DATA_NOT_FOUND"
    CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
    """SHA-1, MD5, short keys: refused by policy."""
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"


class RevocationStatus(StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    NOT_CHECKED = "not-checked"


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    subject: str
    issuer: str
    serial: str
    """Hexadecimal serial number."""
    not_before: datetime
    not_after: datetime
    sha256: str
    """Hex SHA-256 of the DER certificate: the identity an operator can compare by phone."""


@dataclass(frozen=True, slots=True)
class SignatureReport:
    """One signature's verdict."""

    role: str
    """``official``, ``seal`` (XML envelopes), ``pades`` (PDF), ``depositary`` (directory)."""
    indication: Indication
    sub_indication: SubIndication | None
    message: str
    """Why, in one sentence an operator understands (English; the console translates codes)."""
    signer_subject: str = ""
    signer_body_id: str = ""
    """``organizationIdentifier`` of the signing certificate."""
    claimed_signing_time: datetime | None = None
    """XAdES SigningTime / PDF signing time: claimed by the signer, not proven without a TSA."""
    signature_algorithm: str = ""
    digest_algorithm: str = ""
    chain: tuple[CertificateInfo, ...] = ()
    """Signer first, trust anchor last."""
    revocation: RevocationStatus = RevocationStatus.NOT_CHECKED
    timestamp_time: datetime | None = None
    """RFC 3161 time (B-T) when present: proven existence at that time."""
    existence_time: datetime | None = None
    """When the node's own records prove the signature existed (:class:`ExistenceProof`);
    set only when that proof decided the verdict (a revocation or expiry after it)."""
    existence_evidence: str = ""
    """Which record proved it (the peer's receipt, an audit checkpoint), for the reader."""

    @property
    def passed(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED

    def summary(self) -> str:
        sub = f"/{self.sub_indication}" if self.sub_indication else ""
        who = f" {self.signer_subject}" if self.signer_subject else ""
        return f"{self.role}: {self.indication}{sub}{who} — {self.message}"


@dataclass(frozen=True, slots=True)
class ExistenceProof:
    """Proof from the node's own records that a document (both its signatures) existed at
    :attr:`time`: the peer's sealed receipt naming its SHA-256, or a signed audit checkpoint
    covering the event that stored it. Weaker than an RFC 3161 timestamp (a timestamp, when
    present, is used first), strong enough that a later revocation or expiry of the signer's
    certificate does not make the document INDETERMINATE (issue #19)."""

    time: datetime
    evidence: str
    """What proves it, in one phrase an operator can check (e.g. ``receipt M-… from KZ-MJ``)."""


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """All signatures of one document."""

    signatures: tuple[SignatureReport, ...]
    validated_at: datetime
    document_sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def indication(self) -> Indication:
        """The worst of the signatures' indications; no signature at all is TOTAL_FAILED."""
        if not self.signatures:
            return Indication.TOTAL_FAILED
        order = [Indication.TOTAL_FAILED, Indication.INDETERMINATE, Indication.TOTAL_PASSED]
        return min((s.indication for s in self.signatures), key=order.index)

    @property
    def passed(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED

    @property
    def first_failure(self) -> SignatureReport | None:
        return next((s for s in self.signatures if not s.passed), None)

    def summary(self) -> str:
        return "\n".join([str(self.indication), *(s.summary() for s in self.signatures)])

    def to_json(self) -> dict[str, Any]:
        """The whole report as plain JSON values (times in ISO 8601, enums as their codes),
        with the overall ``indication``; :meth:`from_json` reads it back."""
        data: dict[str, Any] = _jsonable(self)
        data["indication"] = str(self.indication)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ValidationReport:
        """The report :meth:`to_json` wrote (the stored ``indication`` is derived, not read)."""
        return cls(
            signatures=tuple(_signature_from_json(s) for s in data["signatures"]),
            validated_at=datetime.fromisoformat(data["validated_at"]),
            document_sha256=data.get("document_sha256", ""),
            extra=dict(data.get("extra", {})),
        )

    def raise_for_failure(self) -> None:
        if not self.passed:
            raise SignatureInvalid(self)


_PLAIN = frozenset({str, int, float, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}
"""Per class, its dataclass field names (None: not a dataclass): ``fields()`` per value cost
more than the rest of the walk."""


def _field_names(cls: type, value: Any) -> tuple[str, ...] | None:
    try:
        return _FIELD_NAMES[cls]
    except KeyError:
        names = (
            tuple(f.name for f in fields(value))
            if is_dataclass(value) and not isinstance(value, type)
            else None
        )
        _FIELD_NAMES[cls] = names
        return names


def _jsonable(value: Any) -> Any:
    # Walks the frozen dataclasses directly: dataclasses.asdict deep-copies every value first,
    # which cost ~1 ms per report on the receive path.
    cls = type(value)
    if cls in _PLAIN:
        return value
    names = _field_names(cls, value)
    if names is not None:
        return {name: _jsonable(getattr(value, name)) for name in names}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _signature_from_json(data: dict[str, Any]) -> SignatureReport:
    sub = data.get("sub_indication")
    return SignatureReport(
        role=data["role"],
        indication=Indication(data["indication"]),
        sub_indication=SubIndication(sub) if sub else None,
        message=data["message"],
        signer_subject=data.get("signer_subject", ""),
        signer_body_id=data.get("signer_body_id", ""),
        claimed_signing_time=_time(data.get("claimed_signing_time")),
        signature_algorithm=data.get("signature_algorithm", ""),
        digest_algorithm=data.get("digest_algorithm", ""),
        chain=tuple(
            CertificateInfo(
                subject=c["subject"],
                issuer=c["issuer"],
                serial=c["serial"],
                not_before=datetime.fromisoformat(c["not_before"]),
                not_after=datetime.fromisoformat(c["not_after"]),
                sha256=c["sha256"],
            )
            for c in data.get("chain", ())
        ),
        revocation=RevocationStatus(data.get("revocation", RevocationStatus.NOT_CHECKED)),
        timestamp_time=_time(data.get("timestamp_time")),
        existence_time=_time(data.get("existence_time")),
        existence_evidence=data.get("existence_evidence", ""),
    )


class SignatureInvalid(Exception):
    """A document's signatures did not reach TOTAL_PASSED; :attr:`report` says why."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        failure = report.first_failure
        super().__init__(failure.summary() if failure else "no signature")

    @property
    def sub_indication(self) -> SubIndication | None:
        failure = self.report.first_failure
        return failure.sub_indication if failure else None

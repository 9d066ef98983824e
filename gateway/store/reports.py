"""Verification reports of stored messages: recorded at receipt, and at each re-verification.

A report says who signed (officials' names are in the certificate subjects: personal data), so
the whole report is encrypted like the message's payload: AES-256-GCM under the message's own
data key, with associated data naming the message and the row's clear facts (purpose, time,
indication). Purging the message (its data key destroyed, its report rows deleted in the same
transaction) therefore destroys its reports too, backups included once the KEK is rotated out.
The ETSI indication and sub-indication stay in clear, so list views show them without
decrypting (:func:`report_indications`); altering them in the database makes the report fail
to open (:func:`latest_report` raises ``DecryptionFailed``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.crypto import at_rest
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.report import Indication, SubIndication
from gateway.store.messages import data_key
from gateway.store.tables import verification_reports

MAX_REPORT_BYTES = 1_000_000
"""A report with a few signatures and their chains is a few kilobytes; a megabyte is not one."""
IDS_PER_QUERY = 500
"""Message ids per ``IN (…)`` in :func:`report_indications`: below every dialect's bind limit."""


_INSERT = verification_reports.insert().returning(verification_reports.c.id)
"""Built once: building the statement per call cost more than running it."""


class ReportPurpose(StrEnum):
    RECEIPT = "receipt"
    """Verified when the document was received (before it was acknowledged)."""
    REVERIFY = "reverify"
    """Verified again later (an operator asked; a certificate was revoked since)."""


@dataclass(frozen=True, slots=True)
class RecordedReport:
    """A verification report as recorded."""

    recorded_at: datetime
    purpose: ReportPurpose
    indication: str
    """``TOTAL_PASSED``, ``INDETERMINATE`` or ``TOTAL_FAILED`` (ETSI EN 319 102-1)."""
    sub_indication: str | None
    report: dict[str, Any]
    """The full report as given to :func:`record_report` (``ValidationReport.to_json()``;
    read it back with ``ValidationReport.from_json``)."""


def _aad(
    message_id: str, purpose: str, at: datetime, indication: str, sub_indication: str | None
) -> bytes:
    # Binding the clear columns to the ciphertext: a report moved to another row, or a row
    # whose indication was edited from FAILED to PASSED, no longer opens.
    stamp = at.astimezone(UTC).isoformat(timespec="microseconds")
    part = f"report:{purpose}:{stamp}:{indication}:{sub_indication or ''}"
    return at_rest.payload_aad(message_id, part)


def _checked(
    purpose: str, indication: str, sub_indication: str | None, at: datetime
) -> ReportPurpose:
    try:
        checked = ReportPurpose(purpose)
    except ValueError:
        raise ValueError(
            f"purpose {purpose!r}: use one of {', '.join(p.value for p in ReportPurpose)}"
        ) from None
    if indication not in set(Indication):
        raise ValueError(
            f"indication {indication!r}: use an ETSI EN 319 102-1 main indication "
            f"({', '.join(Indication)})"
        )
    if sub_indication is not None and sub_indication not in set(SubIndication):
        raise ValueError(
            f"sub_indication {sub_indication!r}: not an ETSI EN 319 102-1 sub-indication"
        )
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"at: naive datetime {at!r}; pass an aware datetime (UTC)")
    return checked


def record_report(
    conn: Connection,
    message_id: str,
    report_json: Mapping[str, Any],
    indication: str,
    sub_indication: str | None,
    purpose: str,
    at: datetime,
    kek_ring: KekRing,
) -> int:
    """Record a verification report of a stored message, encrypted under the message's data
    key; return the row id. Call it in the transaction that stored the message (after
    ``messages.insert_received``) or, for ``reverify``, in any later one. In the transaction
    that stored the message, its data key is reused from there (no query, no unwrap).

    Raises ``ValueError`` naming the field for an unknown purpose or indication, a naive
    time or an oversized report, ``messages.KeyShredded`` if the message was purged."""
    checked = _checked(purpose, indication, sub_indication, at)
    plaintext = json.dumps(report_json, ensure_ascii=False, separators=(",", ":")).encode()
    if len(plaintext) > MAX_REPORT_BYTES:
        raise ValueError(f"report_json: {len(plaintext)} bytes, at most {MAX_REPORT_BYTES}")
    dek = data_key(conn, message_id, kek_ring)
    nonce, ciphertext = at_rest.encrypt_part(
        dek, plaintext, _aad(message_id, checked.value, at, indication, sub_indication)
    )
    return conn.execute(
        _INSERT,
        {
            "message_id": message_id,
            "recorded_at": at,
            "purpose": checked.value,
            "indication": indication,
            "sub_indication": sub_indication,
            "report_nonce": nonce,
            "report": ciphertext,
        },
    ).scalar_one()


def _latest_first() -> tuple[sa.UnaryExpression, sa.UnaryExpression]:
    return verification_reports.c.recorded_at.desc(), verification_reports.c.id.desc()


def latest_report(conn: Connection, message_id: str, kek_ring: KekRing) -> RecordedReport | None:
    """The most recent report of the message, decrypted; None if none was recorded (or the
    message was purged). Raises ``at_rest.DecryptionFailed`` if the row was altered."""
    row = conn.execute(
        sa.select(verification_reports)
        .where(verification_reports.c.message_id == message_id)
        .order_by(*_latest_first())
        .limit(1)
    ).first()
    if row is None:
        return None
    plaintext = at_rest.decrypt_part(
        data_key(conn, message_id, kek_ring),
        row.report_nonce,
        row.report,
        _aad(message_id, row.purpose, row.recorded_at, row.indication, row.sub_indication),
    )
    return RecordedReport(
        recorded_at=row.recorded_at,
        purpose=ReportPurpose(row.purpose),
        indication=row.indication,
        sub_indication=row.sub_indication,
        report=json.loads(plaintext),
    )


def report_indications(
    conn: Connection, message_ids: Iterable[str]
) -> dict[str, tuple[str, str | None]]:
    """``{message id: (indication, sub_indication)}`` of each message's latest report, read
    from the clear columns (no key, no decryption: for list views). Messages without a report
    are absent."""
    ids = sorted(set(message_ids))
    found: dict[str, tuple[str, str | None]] = {}
    for start in range(0, len(ids), IDS_PER_QUERY):
        ranked = (
            sa.select(
                verification_reports.c.message_id,
                verification_reports.c.indication,
                verification_reports.c.sub_indication,
                sa.func.row_number()
                .over(partition_by=verification_reports.c.message_id, order_by=_latest_first())
                .label("rank"),
            )
            .where(verification_reports.c.message_id.in_(ids[start : start + IDS_PER_QUERY]))
            .subquery()
        )
        rows = conn.execute(
            sa.select(ranked.c.message_id, ranked.c.indication, ranked.c.sub_indication).where(
                ranked.c.rank == 1
            )
        )
        found.update({r.message_id: (r.indication, r.sub_indication) for r in rows})
    return found

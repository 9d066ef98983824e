"""The durable outbox: what must be delivered to a peer, claimed by one worker at a time.

A row is written in the same transaction as the message it delivers (``messages.insert_sent``)
and the state change that produced it, so a message is never lost. A worker *claims* due rows
for a lease: ``SELECT … FOR UPDATE SKIP LOCKED`` then ``UPDATE`` on PostgreSQL, the same
statements on SQLite inside the single ``BEGIN IMMEDIATE`` writer. Two workers never hold
the same row: a claimed row is skipped until its lease ends, and finishing it requires the
claim (worker id and attempt number), so a worker whose lease expired cannot overwrite the
outcome of the worker that took over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.tables import delivery_attempts, outbox

MAX_CLAIM_BATCH = 100
"""Rows one worker claims at once: enough to keep a worker busy for a lease, few enough that
one slow worker does not hold back the rest."""
MAX_LEASE = timedelta(hours=1)
"""A lease longer than this hides a dead worker's rows for too long."""


class OutboxState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    """Given up (retries exhausted or the peer refused for good)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A row handed to one worker until ``lease_expires_at``."""

    outbox_id: int
    message_id: str
    destination: str
    attempt: int
    """1 for the first try; the attempt number to report with the outcome."""
    worker_id: str
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxItem:
    outbox_id: int
    message_id: str
    destination: str
    state: OutboxState
    attempts: int
    next_attempt_at: datetime
    claimed_by: str | None
    claim_expires_at: datetime | None
    finished_at: datetime | None
    last_error: str | None


def enqueue(conn: Connection, message_id: str, destination: str, now: datetime) -> int:
    """Queue a stored outgoing message for ``destination``, due now; return the outbox id."""
    return conn.execute(
        outbox.insert()
        .values(
            message_id=message_id,
            destination=destination,
            state=OutboxState.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .returning(outbox.c.id)
    ).scalar_one()


def claim_due(
    conn: Connection, worker_id: str, now: datetime, limit: int, lease: timedelta
) -> list[Claim]:
    """Claim up to ``limit`` due rows (oldest due first) for ``lease``; commit promptly after.

    A row is due when pending, its next attempt time has come and no live lease holds it.
    Each claim counts an attempt and opens a ``delivery_attempts`` row.
    """
    if not 1 <= limit <= MAX_CLAIM_BATCH:
        raise ValueError(f"limit must be 1..{MAX_CLAIM_BATCH}, got {limit}")
    if not timedelta(0) < lease <= MAX_LEASE:
        raise ValueError(f"lease must be positive and at most {MAX_LEASE}")
    c = outbox.c
    due = (
        sa.select(c.id)
        .where(
            c.state == OutboxState.PENDING.value,
            c.next_attempt_at <= now,
            sa.or_(c.claimed_by.is_(None), c.claim_expires_at <= now),
        )
        .order_by(c.next_attempt_at, c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    # Two statements, not UPDATE … WHERE id IN (sub-select): PostgreSQL may run such a
    # sub-select more than once and so exceed the limit. The ids selected here are locked
    # (PostgreSQL) or covered by the single writer (SQLite) until commit.
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    expires = now + lease
    rows = conn.execute(
        outbox.update()
        .where(
            c.id.in_(ids),
            # Repeated so the update is safe even where the select took no lock.
            c.state == OutboxState.PENDING.value,
            sa.or_(c.claimed_by.is_(None), c.claim_expires_at <= now),
        )
        .values(claimed_by=worker_id, claim_expires_at=expires, attempts=c.attempts + 1)
        .returning(c.id, c.message_id, c.destination, c.attempts)
    ).all()
    claims = sorted(
        (Claim(r.id, r.message_id, r.destination, r.attempts, worker_id, expires) for r in rows),
        key=lambda cl: cl.outbox_id,
    )
    if claims:
        conn.execute(
            delivery_attempts.insert(),
            [
                {
                    "outbox_id": cl.outbox_id,
                    "attempt": cl.attempt,
                    "worker_id": worker_id,
                    "started_at": now,
                }
                for cl in claims
            ],
        )
    return claims


def _finish_attempt(
    conn: Connection,
    claim: Claim,
    now: datetime,
    outcome: str,
    error_code: str | None,
    http_status: int | None,
) -> None:
    conn.execute(
        delivery_attempts.update()
        .where(
            delivery_attempts.c.outbox_id == claim.outbox_id,
            delivery_attempts.c.attempt == claim.attempt,
        )
        .values(finished_at=now, outcome=outcome, error_code=error_code, http_status=http_status)
    )


def _held(claim: Claim) -> sa.ColumnElement[bool]:
    c = outbox.c
    return sa.and_(
        c.id == claim.outbox_id,
        c.state == OutboxState.PENDING.value,
        c.claimed_by == claim.worker_id,
        c.attempts == claim.attempt,
    )


def mark_delivered(
    conn: Connection, claim: Claim, now: datetime, http_status: int | None = None
) -> bool:
    """Record delivery; False if the claim was lost (lease expired and another worker took it)."""
    result = conn.execute(
        outbox.update()
        .where(_held(claim))
        .values(
            state=OutboxState.DELIVERED.value,
            finished_at=now,
            claimed_by=None,
            claim_expires_at=None,
            last_error=None,
        )
    )
    if result.rowcount != 1:
        return False
    _finish_attempt(conn, claim, now, "delivered", None, http_status)
    return True


def mark_failed(
    conn: Connection,
    claim: Claim,
    now: datetime,
    error_code: str,
    next_attempt_at: datetime | None,
    http_status: int | None = None,
) -> bool:
    """Record a failed attempt: retry at ``next_attempt_at``, or give up when it is None.

    ``error_code`` is a stable code (``PEER_UNREACHABLE``, ``TLS_FAILED``), never a message
    that could carry personal data. False if the claim was lost.
    """
    values: dict[str, object] = {
        "claimed_by": None,
        "claim_expires_at": None,
        "last_error": error_code,
    }
    if next_attempt_at is None:
        values.update(state=OutboxState.FAILED.value, finished_at=now)
    else:
        values["next_attempt_at"] = next_attempt_at
    result = conn.execute(outbox.update().where(_held(claim)).values(values))
    if result.rowcount != 1:
        return False
    _finish_attempt(conn, claim, now, "failed", error_code, http_status)
    return True


def get(conn: Connection, outbox_id: int) -> OutboxItem | None:
    """One outbox row, or None."""
    row = conn.execute(sa.select(outbox).where(outbox.c.id == outbox_id)).first()
    if row is None:
        return None
    return OutboxItem(
        outbox_id=row.id,
        message_id=row.message_id,
        destination=row.destination,
        state=OutboxState(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        claimed_by=row.claimed_by,
        claim_expires_at=row.claim_expires_at,
        finished_at=row.finished_at,
        last_error=row.last_error,
    )


def count_by_state(conn: Connection) -> dict[str, int]:
    """Outbox rows per state (for metrics and the console)."""
    rows = conn.execute(sa.select(outbox.c.state, sa.func.count()).group_by(outbox.c.state))
    return {state: count for state, count in rows}

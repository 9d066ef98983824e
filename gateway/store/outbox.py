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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

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


# Hot-path statements, built once and run with parameters (building one per call cost more
# than running it). Bind names in WHERE start with ``w_``: SQLAlchemy reserves a column's own
# name for its SET value.
_c = outbox.c
_ENQUEUE = outbox.insert().returning(_c.id)
_LIVE_LEASE_FREE = sa.or_(_c.claimed_by.is_(None), _c.claim_expires_at <= sa.bindparam("w_now"))
_DUE = (
    sa.select(_c.id)
    .where(
        _c.state == OutboxState.PENDING.value,
        _c.next_attempt_at <= sa.bindparam("w_now"),
        _LIVE_LEASE_FREE,
    )
    .order_by(_c.next_attempt_at, _c.id)
    .limit(sa.bindparam("w_limit"))
    .with_for_update(skip_locked=True)
)
_CLAIM = (
    outbox.update()
    .where(
        _c.id.in_(sa.bindparam("w_ids", expanding=True)),
        # Repeated so the update is safe even where the select took no lock.
        _c.state == OutboxState.PENDING.value,
        _LIVE_LEASE_FREE,
    )
    .values(
        claimed_by=sa.bindparam("claimed_by"),
        claim_expires_at=sa.bindparam("claim_expires_at"),
        attempts=_c.attempts + 1,
    )
    .returning(_c.id, _c.message_id, _c.destination, _c.attempts)
)
_OPEN_ATTEMPT = delivery_attempts.insert()
_FINISH_ATTEMPT = (
    delivery_attempts.update()
    .where(
        delivery_attempts.c.outbox_id == sa.bindparam("w_outbox_id"),
        delivery_attempts.c.attempt == sa.bindparam("w_attempt"),
    )
    .values(
        finished_at=sa.bindparam("finished_at"),
        outcome=sa.bindparam("outcome"),
        error_code=sa.bindparam("error_code"),
        http_status=sa.bindparam("http_status"),
    )
)
_HELD = outbox.update().where(
    # The claim still holds: same worker, same attempt, still pending.
    _c.id == sa.bindparam("w_id"),
    _c.state == OutboxState.PENDING.value,
    _c.claimed_by == sa.bindparam("w_worker_id"),
    _c.attempts == sa.bindparam("w_attempt"),
)
_RELEASE = {
    "claimed_by": None,
    "claim_expires_at": None,
    "last_error": sa.bindparam("last_error"),
}
_MARK_DELIVERED = _HELD.values(
    state=OutboxState.DELIVERED.value, finished_at=sa.bindparam("finished_at"), **_RELEASE
)
_MARK_GIVEN_UP = _HELD.values(
    state=OutboxState.FAILED.value, finished_at=sa.bindparam("finished_at"), **_RELEASE
)
_MARK_RETRY = _HELD.values(next_attempt_at=sa.bindparam("next_attempt_at"), **_RELEASE)
_GET = sa.select(outbox).where(_c.id == sa.bindparam("w_id"))


def enqueue(conn: Connection, message_id: str, destination: str, now: datetime) -> int:
    """Queue a stored outgoing message for ``destination``, due now; return the outbox id."""
    return conn.execute(
        _ENQUEUE,
        {
            "message_id": message_id,
            "destination": destination,
            "state": OutboxState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
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
    # Two statements, not UPDATE … WHERE id IN (sub-select): PostgreSQL may run such a
    # sub-select more than once and so exceed the limit. The ids selected here are locked
    # (PostgreSQL) or covered by the single writer (SQLite) until commit.
    ids = list(conn.execute(_DUE, {"w_now": now, "w_limit": limit}).scalars())
    if not ids:
        return []
    expires = now + lease
    rows = conn.execute(
        _CLAIM,
        {"w_ids": ids, "w_now": now, "claimed_by": worker_id, "claim_expires_at": expires},
    ).all()
    claims = sorted(
        (Claim(r.id, r.message_id, r.destination, r.attempts, worker_id, expires) for r in rows),
        key=lambda cl: cl.outbox_id,
    )
    if claims:
        conn.execute(
            _OPEN_ATTEMPT,
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
        _FINISH_ATTEMPT,
        {
            "w_outbox_id": claim.outbox_id,
            "w_attempt": claim.attempt,
            "finished_at": now,
            "outcome": outcome,
            "error_code": error_code,
            "http_status": http_status,
        },
    )


def _held(claim: Claim) -> dict[str, object]:
    return {"w_id": claim.outbox_id, "w_worker_id": claim.worker_id, "w_attempt": claim.attempt}


def mark_delivered(
    conn: Connection, claim: Claim, now: datetime, http_status: int | None = None
) -> bool:
    """Record delivery; False if the claim was lost (lease expired and another worker took it)."""
    result = conn.execute(_MARK_DELIVERED, {**_held(claim), "finished_at": now, "last_error": None})
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
    params = {**_held(claim), "last_error": error_code}
    if next_attempt_at is None:
        result = conn.execute(_MARK_GIVEN_UP, {**params, "finished_at": now})
    else:
        result = conn.execute(_MARK_RETRY, {**params, "next_attempt_at": next_attempt_at})
    if result.rowcount != 1:
        return False
    _finish_attempt(conn, claim, now, "failed", error_code, http_status)
    return True


def get(conn: Connection, outbox_id: int) -> OutboxItem | None:
    """One outbox row, or None."""
    row = conn.execute(_GET, {"w_id": outbox_id}).first()
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


def created_at(conn: Connection, outbox_id: int) -> datetime | None:
    """When an outbox row was queued (the retry policy counts its give-up time from it)."""
    return conn.execute(
        sa.select(outbox.c.created_at).where(outbox.c.id == outbox_id)
    ).scalar_one_or_none()


def states_of(conn: Connection, message_ids: Sequence[str]) -> dict[str, str]:
    """Delivery state per message id, for the messages of ``message_ids`` that were queued."""
    if not message_ids:
        return {}
    rows = conn.execute(
        sa.select(outbox.c.message_id, outbox.c.state).where(outbox.c.message_id.in_(message_ids))
    )
    return {row.message_id: row.state for row in rows}


def attempts_of(conn: Connection, message_id: str) -> list[sa.Row[Any]]:
    """Every delivery attempt of a message, first first (the columns of ``delivery_attempts``)."""
    return list(
        conn.execute(
            delivery_attempts.select()
            .join(outbox, outbox.c.id == delivery_attempts.c.outbox_id)
            .where(outbox.c.message_id == message_id)
            .order_by(delivery_attempts.c.attempt)
        )
    )


def lock_state(conn: Connection, message_id: str) -> str | None:
    """The state of the message's outbox row, locked until the transaction ends (FOR UPDATE
    on PostgreSQL; SQLite's writer holds the whole store), or None without a row."""
    return conn.execute(
        sa.select(outbox.c.state).where(outbox.c.message_id == message_id).with_for_update()
    ).scalar_one_or_none()


def pending_message_ids(conn: Connection) -> list[str]:
    """Messages still waiting to be delivered (what a key revocation would strand)."""
    query = sa.select(outbox.c.message_id).where(outbox.c.state == OutboxState.PENDING.value)
    return [row.message_id for row in conn.execute(query)]

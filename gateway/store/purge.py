"""Retention: legal holds, purge runs, tombstones, crypto-shredding (CIS Art. 9.6).

Deleting is proving. Purging a message, in one transaction: write its tombstone (message id,
kind, parties, dates, SHA-256 of the signed document, policy, purge run id), append a
``message.purged`` audit event, destroy its wrapped data key (crypto-shredding), delete its
attachments, outbox rows, receipt link and the message; when it was the conversation's last
message, the conversation and its debtor tags go too. A message is therefore either whole or
tombstoned, never half-deleted.

The retention policy (what is old enough) belongs to ``gateway.jobs``; this module offers the
facts it decides on (:func:`scan`: kind, direction, parties, stored and closed dates, hold,
pending delivery), a simple cut-off query (:func:`candidates`) and does the deleting, one
batch per transaction (:func:`purge_messages`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store import audit
from gateway.store.tables import (
    attachments,
    conversations,
    debtor_tags,
    delivery_attempts,
    legal_holds,
    message_keys,
    messages,
    outbox,
    purge_runs,
    receipts,
    tombstones,
)

MAX_SCAN_BATCH = 5000
"""Messages examined per retention scan query: facts only (no payload), a few hundred KiB."""
MAX_PURGE_BATCH = 500
"""Messages deleted per transaction: long enough to amortise the commit, short enough that a
SQLite writer lock is held for well under a second and other work goes on between batches."""
PURGE_ACTOR_PREFIX = "purge:"


class LegalHoldActive(Exception):
    """The message's conversation is under a legal hold; it must not be purged."""


@dataclass(frozen=True, slots=True)
class LegalHold:
    hold_id: int
    conversation_id: str
    reference: str
    """The order or case reference (no personal data: a number, not a name)."""
    placed_by: str
    placed_at: datetime
    released_by: str | None
    released_at: datetime | None


@dataclass(frozen=True, slots=True)
class Tombstone:
    message_id: str
    conversation_id: str
    direction: str
    agreement: str
    kind: str
    sender: str
    recipient: str
    created: datetime
    stored_at: datetime
    purged_at: datetime
    document_sha256: bytes
    policy: str
    purge_run_id: str


@dataclass(frozen=True, slots=True)
class PurgeRun:
    run_id: str
    policy: str
    actor: str
    started_at: datetime
    finished_at: datetime | None
    state: str
    """``running``, ``finished`` or ``failed``."""
    purged: int
    held: int
    error_code: str | None


@dataclass(frozen=True, slots=True)
class RetentionFacts:
    """One stored message as the retention job sees it: clear facts only, no payload."""

    position: int
    """Keyset position: pass the last one as ``after`` to get the next batch."""
    message_id: str
    conversation_id: str
    agreement: str
    kind: str
    direction: str
    """``in`` (received) or ``out`` (sent)."""
    sender: str
    recipient: str
    stored_at: datetime
    conversation_closed_at: datetime | None
    proceeding_closed_at: datetime | None
    held: bool
    """Under a legal hold: must not be purged, whatever the policy says."""
    pending_delivery: bool
    """Still waiting in the outbox: purge it only after delivery or giving up."""


def place_hold(
    conn: Connection, conversation_id: str, reference: str, actor: str, now: datetime
) -> int:
    """Put a conversation under a legal hold (nothing of it is purged until released)."""
    hold_id = conn.execute(
        legal_holds.insert()
        .values(
            conversation_id=conversation_id,
            reference=reference,
            placed_by=actor,
            placed_at=now,
        )
        .returning(legal_holds.c.id)
    ).scalar_one()
    audit.append(
        conn,
        now=now,
        actor=actor,
        kind="hold.placed",
        subjects={"conversation_id": conversation_id, "hold_id": str(hold_id)},
    )
    return hold_id


def release_hold(conn: Connection, hold_id: int, actor: str, now: datetime) -> bool:
    """Release a hold; False if it does not exist or was already released."""
    row = conn.execute(
        legal_holds.update()
        .where(legal_holds.c.id == hold_id, legal_holds.c.released_at.is_(None))
        .values(released_by=actor, released_at=now)
        .returning(legal_holds.c.conversation_id)
    ).first()
    if row is None:
        return False
    audit.append(
        conn,
        now=now,
        actor=actor,
        kind="hold.released",
        subjects={"conversation_id": row.conversation_id, "hold_id": str(hold_id)},
    )
    return True


def active_holds(conn: Connection, conversation_id: str) -> list[LegalHold]:
    """Holds on the conversation that are not released."""
    rows = conn.execute(
        sa.select(legal_holds).where(
            legal_holds.c.conversation_id == conversation_id,
            legal_holds.c.released_at.is_(None),
        )
    )
    return [
        LegalHold(
            r.id,
            r.conversation_id,
            r.reference,
            r.placed_by,
            r.placed_at,
            r.released_by,
            r.released_at,
        )
        for r in rows
    ]


def _not_held() -> sa.ColumnElement[bool]:
    return ~sa.exists().where(
        legal_holds.c.conversation_id == messages.c.conversation_id,
        legal_holds.c.released_at.is_(None),
    )


def _not_in_outbox() -> sa.ColumnElement[bool]:
    return ~sa.exists().where(
        outbox.c.message_id == messages.c.message_id, outbox.c.state == "pending"
    )


def candidates(
    conn: Connection,
    stored_before: datetime,
    limit: int,
    *,
    agreement: str | None = None,
) -> list[str]:
    """Message ids stored before the cut-off, not held, not pending delivery; oldest first."""
    if not 1 <= limit <= MAX_PURGE_BATCH:
        raise ValueError(f"limit must be 1..{MAX_PURGE_BATCH}, got {limit}")
    stmt = (
        sa.select(messages.c.message_id)
        .where(messages.c.stored_at < stored_before, _not_held(), _not_in_outbox())
        .order_by(messages.c.stored_at, messages.c.id)
        .limit(limit)
    )
    if agreement is not None:
        stmt = stmt.where(messages.c.agreement == agreement)
    return list(conn.execute(stmt).scalars())


def scan(conn: Connection, after: int = 0, limit: int = MAX_SCAN_BATCH) -> list[RetentionFacts]:
    """Every stored message's retention facts, in storage order, after position ``after``.

    The retention job walks the whole store with this, decides each message's expiry from its
    policies (``gateway.jobs.retention``) and purges the expired ones in batches.
    """
    if not 1 <= limit <= MAX_SCAN_BATCH:
        raise ValueError(f"limit must be 1..{MAX_SCAN_BATCH}, got {limit}")
    m, c = messages.c, conversations.c
    rows = conn.execute(
        sa.select(
            m.id,
            m.message_id,
            m.conversation_id,
            m.agreement,
            m.kind,
            m.direction,
            m.sender,
            m.recipient,
            m.stored_at,
            c.closed_at,
            c.proceeding_closed_at,
            (~_not_held()).label("held"),
            (~_not_in_outbox()).label("pending_delivery"),
        )
        .join(conversations, c.conversation_id == m.conversation_id)
        .where(m.id > after)
        .order_by(m.id)
        .limit(limit)
    )
    return [
        RetentionFacts(
            position=r.id,
            message_id=r.message_id,
            conversation_id=r.conversation_id,
            agreement=r.agreement,
            kind=r.kind,
            direction=r.direction,
            sender=r.sender,
            recipient=r.recipient,
            stored_at=r.stored_at,
            conversation_closed_at=r.closed_at,
            proceeding_closed_at=r.proceeding_closed_at,
            held=bool(r.held),
            pending_delivery=bool(r.pending_delivery),
        )
        for r in rows
    ]


def count_held(conn: Connection, stored_before: datetime) -> int:
    """Messages old enough to purge but kept by a legal hold (reported by the purge run)."""
    return conn.execute(
        sa.select(sa.func.count())
        .select_from(messages)
        .where(messages.c.stored_at < stored_before, ~_not_held())
    ).scalar_one()


def start_run(conn: Connection, run_id: str, policy: str, actor: str, now: datetime) -> None:
    """Record the start of a purge run."""
    conn.execute(
        purge_runs.insert().values(
            run_id=run_id, policy=policy, actor=actor, started_at=now, state="running"
        )
    )
    audit.append(
        conn,
        now=now,
        actor=actor,
        kind="purge.started",
        subjects={"purge_run_id": run_id},
        details={"policy": policy},
    )


def finish_run(
    conn: Connection,
    run_id: str,
    now: datetime,
    *,
    held: int = 0,
    error_code: str | None = None,
) -> None:
    """Close a purge run (``failed`` when ``error_code`` is given)."""
    state = "failed" if error_code else "finished"
    conn.execute(
        purge_runs.update()
        .where(purge_runs.c.run_id == run_id)
        .values(finished_at=now, state=state, held=held, error_code=error_code)
    )
    row = conn.execute(sa.select(purge_runs).where(purge_runs.c.run_id == run_id)).one()
    audit.append(
        conn,
        now=now,
        actor=row.actor,
        kind=f"purge.{state}",
        subjects={"purge_run_id": run_id},
        details={"purged": row.purged, "held": held, "error_code": error_code},
    )


def get_run(conn: Connection, run_id: str) -> PurgeRun | None:
    """A purge run, or None."""
    row = conn.execute(sa.select(purge_runs).where(purge_runs.c.run_id == run_id)).first()
    if row is None:
        return None
    return PurgeRun(
        row.run_id,
        row.policy,
        row.actor,
        row.started_at,
        row.finished_at,
        row.state,
        row.purged,
        row.held,
        row.error_code,
    )


def purge_messages(
    conn: Connection, message_ids: Sequence[str], *, run_id: str, policy: str, now: datetime
) -> int:
    """Tombstone and delete these messages in the caller's transaction; return how many.

    Ids already gone are skipped. A message under a legal hold raises
    :class:`LegalHoldActive` (the caller's transaction then rolls back whole).
    """
    if len(message_ids) > MAX_PURGE_BATCH:
        raise ValueError(f"at most {MAX_PURGE_BATCH} messages per batch")
    run = conn.execute(
        sa.select(purge_runs.c.actor, purge_runs.c.state).where(purge_runs.c.run_id == run_id)
    ).first()
    if run is None or run.state != "running":
        raise ValueError(f"purge run {run_id} is not running; start_run first")
    purged = 0
    for message_id in message_ids:
        row = conn.execute(
            sa.select(messages).where(messages.c.message_id == message_id).with_for_update()
        ).first()
        if row is None:
            continue
        if active_holds(conn, row.conversation_id):
            raise LegalHoldActive(
                f"message {message_id}: conversation {row.conversation_id} is under a legal "
                "hold; release the hold before purging"
            )
        conn.execute(
            tombstones.insert().values(
                message_id=row.message_id,
                conversation_id=row.conversation_id,
                direction=row.direction,
                agreement=row.agreement,
                kind=row.kind,
                sender=row.sender,
                recipient=row.recipient,
                created=row.created,
                stored_at=row.stored_at,
                purged_at=now,
                document_sha256=row.document_sha256,
                policy=policy,
                purge_run_id=run_id,
            )
        )
        audit.append(
            conn,
            now=now,
            actor=run.actor,
            kind="message.purged",
            subjects={
                "message_id": row.message_id,
                "conversation_id": row.conversation_id,
                "purge_run_id": run_id,
            },
            details={"policy": policy, "document_sha256": row.document_sha256.hex()},
        )
        # Crypto-shredding first: without the data key the ciphertext is noise everywhere.
        conn.execute(message_keys.delete().where(message_keys.c.message_id == message_id))
        conn.execute(attachments.delete().where(attachments.c.message_id == message_id))
        outbox_ids = sa.select(outbox.c.id).where(outbox.c.message_id == message_id)
        conn.execute(
            delivery_attempts.delete().where(delivery_attempts.c.outbox_id.in_(outbox_ids))
        )
        conn.execute(outbox.delete().where(outbox.c.message_id == message_id))
        conn.execute(receipts.delete().where(receipts.c.message_id == message_id))
        conn.execute(messages.delete().where(messages.c.message_id == message_id))
        remaining = conn.execute(
            sa.select(sa.func.count())
            .select_from(messages)
            .where(messages.c.conversation_id == row.conversation_id)
        ).scalar_one()
        if remaining == 0:
            conn.execute(
                debtor_tags.delete().where(debtor_tags.c.conversation_id == row.conversation_id)
            )
            conn.execute(
                conversations.delete().where(conversations.c.conversation_id == row.conversation_id)
            )
        purged += 1
    conn.execute(
        purge_runs.update()
        .where(purge_runs.c.run_id == run_id)
        .values(purged=purge_runs.c.purged + purged)
    )
    return purged


def get_tombstone(conn: Connection, message_id: str) -> Tombstone | None:
    """The tombstone of a purged message, or None."""
    row = conn.execute(sa.select(tombstones).where(tombstones.c.message_id == message_id)).first()
    if row is None:
        return None
    return Tombstone(**{f: getattr(row, f) for f in Tombstone.__dataclass_fields__})

"""Retention: legal holds, purge runs, tombstones, crypto-shredding (CIS Art. 9.6).

Deleting is proving. Purging a batch of messages, in one transaction: write their tombstones
(message id, kind, parties, dates, SHA-256 of the signed document, policy and its hash, purge
run id), bind them into the audit chain (``purge.tombstones`` events, below), destroy their
wrapped data keys (crypto-shredding), delete their verification reports, attachments, outbox
rows, receipt links and the messages; a conversation left without messages goes with its
debtor tags. A message is therefore either whole or tombstoned, never half-deleted.

Binding: each tombstone row has a leaf hash (:func:`tombstone_leaf`: SHA-256 of its columns as
canonical JSON). A batch's tombstones, in message-id order, are recorded in chunks of
:data:`LEAVES_PER_EVENT`, one ``purge.tombstones`` audit event per chunk, whose details list
each message id with the first 16 hex digits of its leaf (to name the row that changed) and the
SHA-256 over the chunk's full leaves (what makes a forged row fail even if its short tag was
matched). One event per chunk instead of one per message: 1 M purged messages write ~16 k
events, not 1 M (benchmarks/purge_bench.py).

The retention policy (what is old enough) is ``gateway.app.retention``; this module offers the
facts it decides on (:func:`scan`: kind, direction, parties, stored and closed dates, hold,
pending delivery), a simple cut-off query (:func:`candidates`) and does the deleting, one
batch per transaction: :func:`lock_batch` then :func:`purge_batch` (set-based, what the nightly
job uses), or :func:`purge_messages` (one message at a time). Legal holds lock the conversation
row like :func:`lock_batch` does, so a hold and a purge batch never cross.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.crashpoints import crash_point
from gateway.store import audit
from gateway.store import conversations as conversation_store
from gateway.store.messages import forget_data_keys
from gateway.store.tables import (
    attachments,
    conversation_machines,
    conversations,
    debtor_tags,
    delivery_attempts,
    legal_holds,
    message_keys,
    messages,
    outbox,
    purge_reports,
    purge_runs,
    receipts,
    tombstones,
    verification_reports,
)

MAX_SCAN_BATCH = 5000
"""Messages examined per retention scan query: facts only (no payload), a few hundred KiB."""
MAX_PURGE_BATCH = 500
"""Messages deleted per transaction: long enough to amortise the commit, short enough that a
SQLite writer lock is held for well under a second and other work goes on between batches."""
PURGE_ACTOR_PREFIX = "purge:"
TOMBSTONES_EVENT = "purge.tombstones"
LEAVES_PER_EVENT = 64
"""Tombstones per ``purge.tombstones`` event: 64 × (id + 16-digit tag) stays well under the
audit's 4 KiB details limit."""
TAG_HEX = 16
"""Hex digits of a leaf hash listed per message: enough to name the edited row; the chunk's
full SHA-256 is what a forger would have to match."""


class LegalHoldActive(Exception):
    """The message's conversation is under a legal hold; it must not be purged."""


class HoldRefused(ValueError):
    """A hold cannot be placed or released as asked (unknown conversation, no reason, …)."""


MAX_HOLD_REASON = 128
"""The reason of a hold is an order or case reference (``legal_holds.reference``), not prose:
no personal data, a number and an authority."""


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
    policy_sha256: str | None = None
    """SHA-256 of the retention policy that expired it (None: purged by hand, or before the
    policy was recorded)."""


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
    policy_sha256: str | None = None
    """Of the policy set the run applied (None: a run by hand, or before 0006)."""


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
    """Put a conversation under a legal hold (nothing of it is purged until released).

    ``reference`` is the reason: the order or case reference. The conversation row is locked
    first, as :func:`lock_batch` does, so that a purge batch and a hold never cross on
    PostgreSQL: either the hold commits first and the batch sees it, or the batch commits first
    and the hold finds the purged messages' tombstones only. Raises :class:`HoldRefused` when
    no such conversation is stored (purged already, or a mistyped id).
    """
    reference = reference.strip()
    if not reference or len(reference) > MAX_HOLD_REASON:
        raise HoldRefused(
            f"hold reason must be 1..{MAX_HOLD_REASON} characters (the order or case "
            "reference, no personal data)"
        )
    found = conn.execute(
        sa.select(conversations.c.conversation_id)
        .where(conversations.c.conversation_id == conversation_id)
        .with_for_update(key_share=True)
    ).first()
    if found is None:
        raise HoldRefused(
            f"no stored conversation {conversation_id}: check the id (gateway holds list shows "
            "holds; a purged conversation has only tombstones)"
        )
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
        details={"reason": reference},
    )
    return hold_id


def release_hold(
    conn: Connection, hold_id: int, actor: str, now: datetime, reason: str = ""
) -> bool:
    """Release a hold; False if it does not exist or was already released. ``reason`` (the
    order lifting it) goes into the ``hold.released`` audit event."""
    if len(reason) > MAX_HOLD_REASON:
        raise HoldRefused(f"release reason must be at most {MAX_HOLD_REASON} characters")
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
        details={"reason": reason},
    )
    return True


def release_conversation_holds(
    conn: Connection, conversation_id: str, actor: str, now: datetime, reason: str
) -> list[int]:
    """Release every active hold on a conversation; return their ids (empty: none was active)."""
    released = []
    for hold in active_holds(conn, conversation_id):
        if release_hold(conn, hold.hold_id, actor, now, reason):
            released.append(hold.hold_id)
    return released


def list_holds(
    conn: Connection, *, active_only: bool = True, conversation_id: str | None = None
) -> list[LegalHold]:
    """Holds, newest first (active ones only unless ``active_only`` is False)."""
    stmt = sa.select(legal_holds).order_by(legal_holds.c.id.desc())
    if active_only:
        stmt = stmt.where(legal_holds.c.released_at.is_(None))
    if conversation_id is not None:
        stmt = stmt.where(legal_holds.c.conversation_id == conversation_id)
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
        for r in conn.execute(stmt)
    ]


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
    policies (``gateway.app.retention``) and purges the expired ones in batches.
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
    return [_facts(r) for r in rows]


def _facts(r: Any) -> RetentionFacts:
    """One row of :func:`_facts_query` as the retention rule's input."""
    return RetentionFacts(
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


def count_messages(conn: Connection) -> int:
    """Every stored message (a run's report states how many it looked at)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one())


def count_held(conn: Connection, stored_before: datetime) -> int:
    """Messages old enough to purge but kept by a legal hold (reported by the purge run)."""
    return conn.execute(
        sa.select(sa.func.count())
        .select_from(messages)
        .where(messages.c.stored_at < stored_before, ~_not_held())
    ).scalar_one()


def start_run(
    conn: Connection,
    run_id: str,
    policy: str,
    actor: str,
    now: datetime,
    *,
    policy_sha256: str | None = None,
    policy_source: str = "",
) -> None:
    """Record the start of a purge run. ``policy_sha256``: of the policy set it applies; when it
    differs from the last run's, a ``retention.policy_changed`` event records old and new
    hashes first (a changed period is then visible in the trail, not only in its effect)."""
    if policy_sha256 is not None:
        previous = conn.execute(
            sa.select(purge_runs.c.policy_sha256)
            .where(purge_runs.c.policy_sha256.is_not(None))
            .order_by(purge_runs.c.started_at.desc())
            .limit(1)
        ).scalar()
        if previous != policy_sha256:
            audit.append(
                conn,
                now=now,
                actor=actor,
                kind="retention.policy_changed",
                subjects={"purge_run_id": run_id},
                details={
                    "old_sha256": previous,
                    "new_sha256": policy_sha256,
                    "source": policy_source[-200:],
                },
            )
    conn.execute(
        purge_runs.insert().values(
            run_id=run_id,
            policy=policy,
            actor=actor,
            started_at=now,
            state="running",
            policy_sha256=policy_sha256,
        )
    )
    audit.append(
        conn,
        now=now,
        actor=actor,
        kind="purge.started",
        subjects={"purge_run_id": run_id},
        details={"policy": policy, "policy_sha256": policy_sha256},
    )


def finish_run(
    conn: Connection,
    run_id: str,
    now: datetime,
    *,
    held: int = 0,
    error_code: str | None = None,
    report_sha256: str | None = None,
) -> None:
    """Close a purge run (``failed`` when ``error_code`` is given). ``report_sha256``: of the
    signed report stored in the same transaction; the ``purge.finished`` audit event carries
    it, so that a report row deleted or replaced later no longer matches the chain."""
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
        details={
            "purged": row.purged,
            "held": held,
            "error_code": error_code,
            "report_sha256": report_sha256,
        },
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
        row.policy_sha256,
    )


def purge_messages(
    conn: Connection, message_ids: Sequence[str], *, run_id: str, policy: str, now: datetime
) -> int:
    """Tombstone and delete these messages under ``policy`` in the caller's transaction (a
    purge by hand); return how many. The same path as the nightly job (:func:`lock_batch`,
    :func:`purge_batch`).

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
    locked = lock_batch(conn, message_ids)
    return purge_batch(
        conn, [(message, policy) for message in locked], run_id=run_id, actor=run.actor, now=now
    )


def get_tombstone(conn: Connection, message_id: str) -> Tombstone | None:
    """The tombstone of a purged message, or None."""
    row = conn.execute(sa.select(tombstones).where(tombstones.c.message_id == message_id)).first()
    if row is None:
        return None
    return _tombstone(row)


def _tombstone(row: Any) -> Tombstone:
    return Tombstone(**{f: getattr(row, f) for f in Tombstone.__dataclass_fields__})


def tombstones_of(conn: Connection, conversation_id: str) -> list[Tombstone]:
    """The tombstones of a conversation's purged messages, oldest first."""
    rows = conn.execute(
        sa.select(tombstones)
        .where(tombstones.c.conversation_id == conversation_id)
        .order_by(tombstones.c.created, tombstones.c.message_id)
    )
    return [_tombstone(r) for r in rows]


# --- binding tombstones into the audit chain -----------------------------------------------


def _time_text(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def tombstone_leaf(t: Tombstone) -> bytes:
    """SHA-256 of every column of a tombstone as canonical JSON (times UTC to the
    microsecond, the document hash in hex): any edit of the row changes it."""
    fields: dict[str, Any] = {}
    for name in Tombstone.__dataclass_fields__:
        value = getattr(t, name)
        if isinstance(value, datetime):
            value = _time_text(value)
        elif isinstance(value, bytes):
            value = value.hex()
        fields[name] = value
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).digest()


def leaves_digest(leaves: Sequence[bytes]) -> str:
    """SHA-256 (hex) over leaf hashes in order: a chunk's, or a whole run's (message-id order)."""
    digest = hashlib.sha256()
    for leaf in leaves:
        digest.update(leaf)
    return digest.hexdigest()


def tombstones_by_ids(conn: Connection, message_ids: Sequence[str]) -> dict[str, Tombstone]:
    """These messages' tombstones by message id (ids without one are absent)."""
    if not message_ids:
        return {}
    rows = conn.execute(sa.select(tombstones).where(tombstones.c.message_id.in_(message_ids)))
    return {r.message_id: _tombstone(r) for r in rows}


def run_tombstones(
    conn: Connection, run_id: str, *, after: str = "", limit: int = MAX_SCAN_BATCH
) -> list[Tombstone]:
    """A run's tombstones in message-id order, after message id ``after`` (a page)."""
    rows = conn.execute(
        sa.select(tombstones)
        .where(tombstones.c.purge_run_id == run_id, tombstones.c.message_id > after)
        .order_by(tombstones.c.message_id)
        .limit(limit)
    )
    return [_tombstone(r) for r in rows]


def run_tombstones_digest(conn: Connection, run_id: str) -> tuple[int, str]:
    """``(count, SHA-256 over the leaves in message-id order)`` of a run's tombstones, read a
    page at a time: what the signed report states and ``verify-report`` recomputes."""
    digest = hashlib.sha256()
    count, after = 0, ""
    while page := run_tombstones(conn, run_id, after=after):
        for t in page:
            digest.update(tombstone_leaf(t))
        count += len(page)
        after = page[-1].message_id
    return count, digest.hexdigest()


def tombstone_counts(conn: Connection) -> dict[str, int]:
    """Tombstones stored per purge run."""
    rows = conn.execute(
        sa.select(tombstones.c.purge_run_id, sa.func.count()).group_by(tombstones.c.purge_run_id)
    )
    return {run_id: count for run_id, count in rows}


def parse_bound_leaves(listing: str) -> list[tuple[str, str]]:
    """``[(message_id, leaf tag)]`` from a ``purge.tombstones`` event's ``leaves`` detail."""
    pairs = []
    for item in listing.split(","):
        message_id, _, tag = item.partition(":")
        pairs.append((message_id, tag))
    return pairs


def _bind(conn: Connection, ids: Sequence[str], *, run_id: str, actor: str, now: datetime) -> None:
    """Record the tombstones just written for ``ids`` in the audit chain, a chunk per event
    (read back from the table, so the leaves are what a verifier will recompute)."""
    written = tombstones_by_ids(conn, ids)
    ordered = [written[i] for i in sorted(written)]
    entries: list[audit.AuditEntry] = []
    for start in range(0, len(ordered), LEAVES_PER_EVENT):
        chunk = ordered[start : start + LEAVES_PER_EVENT]
        leaves = [tombstone_leaf(t) for t in chunk]
        entries.append(
            (
                TOMBSTONES_EVENT,
                {"purge_run_id": run_id},
                {
                    "count": len(chunk),
                    "leaves": ",".join(
                        f"{t.message_id}:{leaf.hex()[:TAG_HEX]}"
                        for t, leaf in zip(chunk, leaves, strict=True)
                    ),
                    "sha256": leaves_digest(leaves),
                },
            )
        )
    audit.append_many(conn, now=now, actor=actor, entries=entries)


# --- set-based purge (the nightly job) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LockedMessage:
    """A message locked for purging in the current transaction: its retention facts as they
    are now, and what its tombstone needs."""

    facts: RetentionFacts
    created: datetime
    document_sha256: bytes


def _facts_query() -> sa.Select:
    m, c = messages.c, conversations.c
    return sa.select(
        m.id,
        m.message_id,
        m.conversation_id,
        m.agreement,
        m.kind,
        m.direction,
        m.sender,
        m.recipient,
        m.stored_at,
        m.created,
        m.document_sha256,
        c.closed_at,
        c.proceeding_closed_at,
        (~_not_held()).label("held"),
        (~_not_in_outbox()).label("pending_delivery"),
    ).join(conversations, c.conversation_id == m.conversation_id)


def lock_batch(conn: Connection, message_ids: Sequence[str]) -> list[LockedMessage]:
    """Lock these messages (and their conversations) in the caller's write transaction and
    return their facts as they are now; ids no longer stored are left out.

    The job decides again on these facts before :func:`purge_batch`: a hold placed, or a
    conversation changed, since the scan is seen here. Conversations are locked in id order
    (no deadlock with another batch or :func:`place_hold`); SQLite's single writer
    (``BEGIN IMMEDIATE``) serialises the same way without row locks.
    """
    if len(message_ids) > MAX_PURGE_BATCH:
        raise ValueError(f"at most {MAX_PURGE_BATCH} messages per batch")
    if not message_ids:
        return []
    conversation_ids = sorted(
        set(
            conn.execute(
                sa.select(messages.c.conversation_id).where(messages.c.message_id.in_(message_ids))
            ).scalars()
        )
    )
    if not conversation_ids:
        return []
    conn.execute(
        sa.select(conversations.c.conversation_id)
        .where(conversations.c.conversation_id.in_(conversation_ids))
        .order_by(conversations.c.conversation_id)
        # FOR NO KEY UPDATE: serialises with holds and other batches, but does not stop a
        # peer's message from being stored in the conversation (its foreign-key check).
        .with_for_update(key_share=True)
    ).all()
    rows = conn.execute(
        _facts_query()
        .where(messages.c.message_id.in_(message_ids))
        .order_by(messages.c.id)
        .with_for_update(of=messages)
    ).all()
    return [
        LockedMessage(
            _facts(r),
            r.created,
            r.document_sha256,
        )
        for r in rows
    ]


def purge_batch(
    conn: Connection,
    decided: Sequence[tuple[LockedMessage, str]],
    *,
    run_id: str,
    actor: str,
    now: datetime,
    policy_sha256: Mapping[str, str] | None = None,
) -> int:
    """Tombstone and destroy these messages (each with the policy that expired it) in the
    caller's transaction, set-based; return how many.

    ``decided`` comes from :func:`lock_batch` in the same transaction; ``policy_sha256`` maps
    a policy name to its hash (recorded in the tombstone). Each message gets its tombstone,
    bound into the audit chain (``purge.tombstones``); then its wrapped data key is deleted
    (crypto-shredding), then attachments, outbox rows, receipt link and the message row; a
    conversation left without messages goes with its debtor tags. All of it commits together
    or not at all, so a message is whole or tombstoned, never half.
    """
    if len(decided) > MAX_PURGE_BATCH:
        raise ValueError(f"at most {MAX_PURGE_BATCH} messages per batch")
    if not decided:
        return 0
    for locked, _policy in decided:
        if locked.facts.held:
            raise LegalHoldActive(
                f"message {locked.facts.message_id}: conversation "
                f"{locked.facts.conversation_id} is under a legal hold; release it first"
            )
        if locked.facts.pending_delivery:
            raise ValueError(f"message {locked.facts.message_id} is still in the outbox")
    run = conn.execute(sa.select(purge_runs.c.state).where(purge_runs.c.run_id == run_id)).first()
    if run is None or run.state != "running":
        raise ValueError(f"purge run {run_id} is not running; start_run first")
    ids = [locked.facts.message_id for locked, _ in decided]
    # INSERT … SELECT from the locked rows, one statement per policy in the batch: the
    # tombstone copies the message's own columns, and no per-row parameters cross the wire.
    by_policy: dict[str, list[str]] = {}
    for locked, policy in decided:
        by_policy.setdefault(policy, []).append(locked.facts.message_id)
    m = messages.c
    for policy, policy_ids in by_policy.items():
        conn.execute(
            tombstones.insert().from_select(
                [
                    "message_id",
                    "conversation_id",
                    "direction",
                    "agreement",
                    "kind",
                    "sender",
                    "recipient",
                    "created",
                    "stored_at",
                    "purged_at",
                    "document_sha256",
                    "policy",
                    "purge_run_id",
                    "policy_sha256",
                ],
                sa.select(
                    m.message_id,
                    m.conversation_id,
                    m.direction,
                    m.agreement,
                    m.kind,
                    m.sender,
                    m.recipient,
                    m.created,
                    m.stored_at,
                    sa.bindparam("purged_at", now, type_=tombstones.c.purged_at.type),
                    m.document_sha256,
                    sa.bindparam("policy", policy, type_=tombstones.c.policy.type),
                    sa.bindparam("run_id", run_id, type_=tombstones.c.purge_run_id.type),
                    sa.bindparam(
                        "policy_sha256",
                        (policy_sha256 or {}).get(policy),
                        type_=tombstones.c.policy_sha256.type,
                    ),
                ).where(m.message_id.in_(policy_ids)),
            )
        )
    _bind(conn, ids, run_id=run_id, actor=actor, now=now)
    # Crypto-shredding first: without the data key the ciphertext is noise everywhere,
    # backups included.
    conn.execute(message_keys.delete().where(message_keys.c.message_id.in_(ids)))
    forget_data_keys(conn, ids)
    conn.execute(verification_reports.delete().where(verification_reports.c.message_id.in_(ids)))
    conn.execute(attachments.delete().where(attachments.c.message_id.in_(ids)))
    outbox_ids = sa.select(outbox.c.id).where(outbox.c.message_id.in_(ids))
    conn.execute(delivery_attempts.delete().where(delivery_attempts.c.outbox_id.in_(outbox_ids)))
    conn.execute(outbox.delete().where(outbox.c.message_id.in_(ids)))
    conn.execute(receipts.delete().where(receipts.c.message_id.in_(ids)))
    conn.execute(messages.delete().where(messages.c.message_id.in_(ids)))
    touched = sorted({locked.facts.conversation_id for locked, _ in decided})
    still_used = set(
        conn.execute(
            sa.select(messages.c.conversation_id)
            .where(messages.c.conversation_id.in_(touched))
            .distinct()
        ).scalars()
    )
    emptied = [cid for cid in touched if cid not in still_used]
    if emptied:
        conn.execute(debtor_tags.delete().where(debtor_tags.c.conversation_id.in_(emptied)))
        conn.execute(
            conversation_machines.delete().where(
                conversation_machines.c.conversation_id.in_(emptied)
            )
        )
        conversation_store.delete(conn, emptied)  # counted out of conversation_counts
    conn.execute(
        purge_runs.update()
        .where(purge_runs.c.run_id == run_id)
        .values(purged=purge_runs.c.purged + len(ids))
    )
    crash_point("purge.batch")
    return len(ids)


def running_runs(conn: Connection) -> list[str]:
    """Runs still marked ``running``: under the purge job lock, runs that were interrupted."""
    return list(
        conn.execute(
            sa.select(purge_runs.c.run_id)
            .where(purge_runs.c.state == "running")
            .order_by(purge_runs.c.started_at)
        ).scalars()
    )


def purged_by_policy(conn: Connection, run_id: str) -> dict[str, int]:
    """How many messages each policy purged in a run (from its tombstones: exact even for a
    run that was interrupted and resumed by the next one)."""
    rows = conn.execute(
        sa.select(tombstones.c.policy, sa.func.count())
        .where(tombstones.c.purge_run_id == run_id)
        .group_by(tombstones.c.policy)
    )
    return {policy: count for policy, count in rows}


def list_runs(conn: Connection, limit: int = 50) -> list[PurgeRun]:
    """The latest purge runs, newest first."""
    rows = conn.execute(sa.select(purge_runs).order_by(purge_runs.c.started_at.desc()).limit(limit))
    return [
        PurgeRun(
            r.run_id,
            r.policy,
            r.actor,
            r.started_at,
            r.finished_at,
            r.state,
            r.purged,
            r.held,
            r.error_code,
            r.policy_sha256,
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class StoredReport:
    run_id: str
    signed_at: datetime
    report: str
    """Canonical JSON; the signature covers its UTF-8 bytes."""
    signature: bytes
    certificate: bytes
    """DER of the seal certificate that signed it."""


def store_report(
    conn: Connection,
    run_id: str,
    *,
    signed_at: datetime,
    report: str,
    signature: bytes,
    certificate: bytes,
) -> None:
    """Store a run's signed report (once per run)."""
    conn.execute(
        purge_reports.insert().values(
            run_id=run_id,
            signed_at=signed_at,
            report=report,
            signature=signature,
            certificate=certificate,
        )
    )


def get_report(conn: Connection, run_id: str) -> StoredReport | None:
    """A run's signed report, or None."""
    r = conn.execute(sa.select(purge_reports).where(purge_reports.c.run_id == run_id)).first()
    if r is None:
        return None
    return StoredReport(r.run_id, r.signed_at, r.report, r.signature, r.certificate)

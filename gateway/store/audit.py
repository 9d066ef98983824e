"""The audit trail: append-only, hash-chained, one chain for every process sharing the store.

Each event's hash is ``SHA-256(prev_hash || canonical(event))`` where ``canonical`` is the
UTF-8 JSON of ``seq, at, actor, kind, subjects, details`` with sorted keys and no spaces, and
the first event's ``prev_hash`` is 32 zero bytes. ``audit_head`` holds the last seq and hash.

Appends are batched per transaction. :func:`append` checks an event and queues it on the
transaction's connection; just before the transaction commits, every queued event is chained
and written at once: one head update, one insert. The update moves the head from the one this
process last wrote, in its ``WHERE`` (the row lock taken by the update, or on SQLite the single
``BEGIN IMMEDIATE`` writer, excludes others); when that head is no longer current (another
process appended) the head is first read with ``SELECT … FOR UPDATE``. So the event
commits or rolls back together with what it records (a rolled-back savepoint drops the events
queued inside it), the chain cannot fork (the head lock is held until commit, ``seq`` is the
primary key), and the head is locked only for the last moments of a transaction instead of
from its first append on. The hook is installed on the engine by ``open_store``
(:func:`install`), so every commit path flushes: ``Store.transaction``, ``Store.batch``,
``Connection.commit``.

:func:`verify` walks the chain and reports the first break: a modified event (its hash no
longer matches its content), a deleted one (a gap in ``seq``, or the head ahead of the last
event), an inserted or reordered one (``prev_hash`` not the previous event's hash).

Every kind is described in :mod:`gateway.store.audit_events`; appending any other raises
ValueError at once (a new event is described, labelled and documented before it is written).

Details and subjects are codes and ids only: never a name, a birth date or a document's text.
The one piece of a person's words, the purpose stated for a read (CIS Art. 9.1), is recorded
only sealed under the KEK ring (gateway.store.read_purposes).
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.store.audit_events import check_kind
from gateway.store.commit_queue import CommitQueue
from gateway.store.tables import CODE_LENGTH, audit_checkpoints, audit_events, audit_head

GENESIS_HASH = bytes(32)
MAX_DETAILS_BYTES = 4096
"""An audit event records ids and codes; kilobytes of details mean someone is logging content."""
VERIFY_BATCH = 1000
"""Events read per query while verifying: bounded memory for a chain of millions."""

JsonScalar = str | int | bool | None


# The statements of every append, built once (building one per call cost more than running it).
_HEAD = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
_HEAD_FOR_UPDATE = _HEAD.with_for_update()
_INSERT_ONE = audit_events.insert()
# RETURNING makes SQLAlchemy batch the rows into multi-row INSERTs (its insertmanyvalues path)
# on both dialects; psycopg's plain executemany would send a statement per row.
_INSERT_MANY = audit_events.insert().returning(audit_events.c.seq)
_MOVE_HEAD = (
    audit_head.update()
    .where(audit_head.c.id == 1)
    .values(seq=sa.bindparam("seq"), hash=sa.bindparam("hash"))
)
_MOVE_HEAD_FROM = _MOVE_HEAD.where(
    audit_head.c.seq == sa.bindparam("old_seq"), audit_head.c.hash == sa.bindparam("old_hash")
)
"""Moves the head only if it still is the one this process last wrote: the compare and the
move in one statement, under the row's lock (PostgreSQL re-checks the condition on the row a
concurrent writer committed; on SQLite the ``BEGIN IMMEDIATE`` writer is alone)."""

_LAST_HEAD: weakref.WeakKeyDictionary[Engine, tuple[int, bytes]] = weakref.WeakKeyDictionary()
"""Per engine, the head this process last wrote: a guess, never trusted. The next append moves
the head from it with :data:`_MOVE_HEAD_FROM` and only reads the head when that moves nothing
(another process appended, or the transaction that wrote it rolled back)."""


class AuditError(Exception):
    """An event could not be appended (malformed details, or the head row is missing)."""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    seq: int
    at: datetime
    actor: str
    """Username, ``peer:<body id>``, ``job:<name>`` or ``system``."""
    kind: str
    """Stable event code, e.g. ``message.received``, ``purge.batch``, ``key.rewrapped``: one of
    :data:`gateway.store.audit_events.AUDIT_EVENTS`."""
    subjects: Mapping[str, str]
    """Ids the event is about: ``{"message_id": …, "conversation_id": …}``."""
    details: Mapping[str, JsonScalar]
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """Result of :func:`verify`; :attr:`intact` is the only success."""

    events_checked: int
    last_seq: int
    broken_at: int | None
    """Seq where the chain first breaks (None: intact)."""
    reason: str
    """Why it breaks, in words; empty when intact."""
    tampering: str = ""
    """The kind of break, a code: ``modified``, ``deleted``, ``inserted``, ``reordered``,
    ``rewritten`` (an event replaced with its hash recomputed), ``truncated`` (events at the end
    gone), ``appended`` (events beyond the head), ``head``; empty when intact."""

    @property
    def intact(self) -> bool:
        return self.broken_at is None

    def raise_for_failure(self) -> None:
        if not self.intact:
            raise AuditChainBroken(self)


class AuditChainBroken(Exception):
    """The audit chain failed verification."""

    def __init__(self, result: AuditVerification) -> None:
        self.result = result
        super().__init__(f"audit chain broken at seq {result.broken_at}: {result.reason}")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _at_text(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def event_hash(
    prev_hash: bytes, seq: int, at: datetime, actor: str, kind: str, subjects: str, details: str
) -> bytes:
    """The chain hash of one event (``subjects``/``details`` are their canonical JSON text)."""
    body = _canonical(
        {
            "seq": seq,
            "at": _at_text(at),
            "actor": actor,
            "kind": kind,
            "subjects": json.loads(subjects),
            "details": json.loads(details),
        }
    )
    return hashlib.sha256(prev_hash + body.encode("utf-8")).digest()


def _check(name: str, value: Mapping[str, Any], scalars_only: bool) -> str:
    for key, item in value.items():
        if not isinstance(key, str):
            raise AuditError(f"audit {name}: keys must be strings, got {key!r}")
        allowed = (str, int, bool, type(None)) if scalars_only else (str,)
        if not isinstance(item, allowed) or isinstance(item, float):
            raise AuditError(f"audit {name}[{key!r}]: only ids and codes (str/int/bool/None)")
    text = _canonical(dict(value))
    if len(text.encode("utf-8")) > MAX_DETAILS_BYTES:
        raise AuditError(f"audit {name}: over {MAX_DETAILS_BYTES} bytes; record ids, not content")
    return text


@dataclass(frozen=True, slots=True)
class _Pending:
    """One event queued in a transaction: validated, canonical, not yet chained."""

    at: datetime
    actor: str
    kind: str
    subjects: str
    details: str


def _write_at_commit(conn: Connection, pending: list[_Pending]) -> None:
    _write(conn, pending)


_QUEUE: CommitQueue[_Pending] = CommitQueue(_write_at_commit)
"""Each transaction's events, chained and written just before it commits."""

READ_ONLY_OPTION = "gateway_read_only"
"""Execution option that ``Store.read()`` sets: appends there are refused at once."""


def install(engine: Engine) -> None:
    """Make audit appends on ``engine`` queue in their transaction and reach the chain in one
    write just before it commits (``gateway.store.open_store`` calls this). Idempotent."""
    _QUEUE.install(engine)


def _queue(conn: Connection) -> list[_Pending]:
    pending = _QUEUE.items(conn)
    if pending is None:
        raise AuditError(
            "audit events are appended inside a write transaction of a store opened with "
            "gateway.store.open_store (store.transaction() or store.batch())"
        )
    if conn.get_execution_options().get(READ_ONLY_OPTION, False):
        raise AuditError(
            "audit event appended in a read-only transaction (store.read()): it would be lost; "
            "record it in store.transaction() or store.batch()"
        )
    return pending


def _entry(
    now: datetime,
    actor: str,
    kind: str,
    subjects: Mapping[str, str] | None,
    details: Mapping[str, JsonScalar] | None,
) -> _Pending:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass an aware datetime (UTC)")
    if not actor or len(actor) > CODE_LENGTH:
        raise AuditError(f"audit actor must be 1..{CODE_LENGTH} characters, got {actor!r}")
    check_kind(kind)  # a kind not in gateway.store.audit_events: a programming error
    return _Pending(
        now,
        actor,
        kind,
        _check("subjects", subjects or {}, scalars_only=False),
        _check("details", details or {}, scalars_only=True),
    )


def append(
    conn: Connection,
    *,
    now: datetime,
    actor: str,
    kind: str,
    subjects: Mapping[str, str] | None = None,
    details: Mapping[str, JsonScalar] | None = None,
) -> None:
    """Append one event in the caller's transaction: it commits or rolls back with the change
    it records (and with the savepoint it was appended in, see ``Store.batch``).

    The event is checked now (bad details raise here) and queued; every event queued in the
    transaction is chained and written in one go just before commit, under one lock of the
    chain head. Its seq is therefore known only after commit (:func:`flush` writes early)."""
    _queue(conn).append(_entry(now, actor, kind, subjects, details))


AuditEntry = tuple[str, Mapping[str, str], Mapping[str, JsonScalar]]
"""``(kind, subjects, details)`` of one event for :func:`append_many`."""


def append_many(
    conn: Connection, *, now: datetime, actor: str, entries: Sequence[AuditEntry]
) -> None:
    """Append several events by one actor at one time, in order, like :func:`append` each
    (a purge batch records hundreds of events)."""
    pending = _queue(conn)
    checked = [_entry(now, actor, kind, subjects, details) for kind, subjects, details in entries]
    pending.extend(checked)


def flush(conn: Connection) -> int | None:
    """Write the events queued so far in this transaction now, returning the last seq (None if
    nothing was queued). Takes the head lock until commit: only for a caller that must know
    its event's seq before committing."""
    pending = _queue(conn)
    if not pending:
        return None
    if _QUEUE.in_savepoint_after_items(conn):
        # Written inside the savepoint, events queued before it would vanish with it.
        raise AuditError("audit.flush inside a savepoint opened after earlier appends")
    seq = _write(conn, pending)
    _QUEUE.written_early(conn)
    return seq


def _write(conn: Connection, pending: Sequence[_Pending]) -> int:
    """Chain ``pending`` after the head: one head update that checks the head is the one this
    process last wrote, then one insert. When it is not, the head is read under lock first
    (one statement more) and moved unconditionally."""
    engine = conn.engine
    guess = _LAST_HEAD.get(engine)
    moved = False
    if guess is not None:
        rows, seq, last = _chained(pending, *guess)
        step = {"seq": seq, "hash": last, "old_seq": guess[0], "old_hash": guess[1]}
        moved = conn.execute(_MOVE_HEAD_FROM, step).rowcount == 1
    if not moved:
        head_row = conn.execute(_HEAD_FOR_UPDATE).first()
        if head_row is None:
            raise AuditError("audit_head row is missing: the store was not migrated")
        rows, seq, last = _chained(pending, head_row.seq, head_row.hash)
        conn.execute(_MOVE_HEAD, {"seq": seq, "hash": last})
    if len(rows) == 1:
        conn.execute(_INSERT_ONE, rows)
    else:
        conn.execute(_INSERT_MANY, rows).all()
    # Kept before commit: if the transaction rolls back, the next append's check misses and
    # reads the head (a stale guess costs one statement, never a fork).
    _LAST_HEAD[engine] = (seq, last)
    return seq


def _chained(
    pending: Sequence[_Pending], seq: int, prev: bytes
) -> tuple[list[dict[str, Any]], int, bytes]:
    """The rows of ``pending`` chained after ``(seq, prev)``, the new head's seq and hash."""
    rows = []
    for item in pending:
        seq += 1
        digest = event_hash(prev, seq, item.at, item.actor, item.kind, item.subjects, item.details)
        rows.append(
            {
                "seq": seq,
                "at": item.at,
                "actor": item.actor,
                "kind": item.kind,
                "subjects": item.subjects,
                "details": item.details,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    return rows, seq, prev


def head(conn: Connection) -> tuple[int, bytes]:
    """The chain head: ``(seq, hash)`` of the last event (``(0, GENESIS_HASH)`` when empty)."""
    row = conn.execute(_HEAD).first()
    if row is None:
        raise AuditError("audit_head row is missing: the store was not migrated")
    return row.seq, row.hash


def event_at(conn: Connection, seq: int) -> AuditEvent | None:
    """The event stored at ``seq``, or None."""
    row = conn.execute(sa.select(audit_events).where(audit_events.c.seq == seq)).first()
    return _event(row) if row else None


def events_in_range(
    conn: Connection,
    *,
    after_seq: int = 0,
    up_to_seq: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = VERIFY_BATCH,
) -> list[AuditEvent]:
    """Events with ``after_seq < seq <= up_to_seq`` and ``since <= at < until`` (each bound
    optional), in seq order, at most ``limit`` (page with the last seq as ``after_seq``)."""
    stmt = sa.select(audit_events).where(audit_events.c.seq > after_seq)
    if up_to_seq is not None:
        stmt = stmt.where(audit_events.c.seq <= up_to_seq)
    if since is not None:
        stmt = stmt.where(audit_events.c.at >= since)
    if until is not None:
        stmt = stmt.where(audit_events.c.at < until)
    rows = conn.execute(stmt.order_by(audit_events.c.seq).limit(limit))
    return [_event(r) for r in rows]


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed chain head as stored (``gateway.app.audit_checkpoints`` signs and checks it)."""

    checkpoint_id: int
    seq: int
    hash: bytes
    at: datetime
    statement: str
    """Canonical JSON that the signature covers."""
    signature: bytes
    certificate: bytes
    """The seal certificate (DER) that signed it."""
    timestamp: bytes | None = None
    """An RFC 3161 token (DER) over the SHA-256 of ``signature``, when a TSA gave one."""


def _checkpoint(r: Any) -> StoredCheckpoint:
    return StoredCheckpoint(
        r.id, r.seq, r.hash, r.at, r.statement, r.signature, r.certificate, r.timestamp
    )


def store_checkpoint(
    conn: Connection,
    *,
    seq: int,
    hash: bytes,
    at: datetime,
    statement: str,
    signature: bytes,
    certificate: bytes,
) -> int:
    """Store a signed checkpoint; return its id."""
    return conn.execute(
        audit_checkpoints.insert()
        .values(
            seq=seq,
            hash=hash,
            at=at,
            statement=statement,
            signature=signature,
            certificate=certificate,
        )
        .returning(audit_checkpoints.c.id)
    ).scalar_one()


def set_checkpoint_timestamp(conn: Connection, checkpoint_id: int, token: bytes) -> None:
    """Keep the TSA's token for a stored checkpoint (fetched after it was committed)."""
    conn.execute(
        audit_checkpoints.update()
        .where(audit_checkpoints.c.id == checkpoint_id)
        .values(timestamp=token)
    )


def checkpoints(
    conn: Connection, after_id: int = 0, limit: int = VERIFY_BATCH
) -> list[StoredCheckpoint]:
    """Stored checkpoints with id > ``after_id``, oldest first."""
    rows = conn.execute(
        sa.select(audit_checkpoints)
        .where(audit_checkpoints.c.id > after_id)
        .order_by(audit_checkpoints.c.id)
        .limit(limit)
    )
    return [_checkpoint(r) for r in rows]


def checkpoints_covering(
    conn: Connection,
    seq: int,
    limit: int = 3,
    not_signed_by: Sequence[bytes] = (),
    *,
    unless_timestamped: bool = False,
) -> list[StoredCheckpoint]:
    """The first stored checkpoints whose head is at or after event ``seq`` (they claim to
    cover that event), earliest head first, but for those whose stored certificate is one of
    ``not_signed_by`` (DER) — ``unless_timestamped``: but for those of them without a
    timestamp. Claims only: the caller checks the signature and the chain between
    (:func:`chain_reaches`)."""
    query = sa.select(audit_checkpoints).where(audit_checkpoints.c.seq >= seq)
    if not_signed_by:
        kept = audit_checkpoints.c.certificate.not_in(list(not_signed_by))
        if unless_timestamped:
            kept = sa.or_(kept, audit_checkpoints.c.timestamp.is_not(None))
        query = query.where(kept)
    rows = conn.execute(
        query.order_by(audit_checkpoints.c.seq, audit_checkpoints.c.id).limit(limit)
    )
    return [_checkpoint(r) for r in rows]


def chain_reaches(
    conn: Connection, from_seq: int, to_seq: int, to_hash: bytes, max_events: int
) -> bool:
    """Whether the stored events ``from_seq..to_seq`` are intact and linked (each hash matches
    its content and names its predecessor's) and end in ``to_hash``: then a signature over
    ``(to_seq, to_hash)`` covers event ``from_seq`` as stored. False beyond ``max_events``
    (the caller's bound on work per lookup; ``audit verify`` walks everything)."""
    if to_seq < from_seq or to_seq - from_seq >= max_events:
        return False
    prev: bytes | None = None
    expected = from_seq
    while expected <= to_seq:
        rows = conn.execute(
            sa.select(audit_events)
            .where(audit_events.c.seq >= expected, audit_events.c.seq <= to_seq)
            .order_by(audit_events.c.seq)
            .limit(VERIFY_BATCH)
        ).all()
        if not rows:
            return False
        for row in rows:
            if row.seq != expected or (prev is not None and row.prev_hash != prev):
                return False
            try:
                digest = event_hash(
                    row.prev_hash, row.seq, row.at, row.actor, row.kind, row.subjects, row.details
                )
            except ValueError:
                return False
            if digest != row.hash:
                return False
            prev, expected = row.hash, expected + 1
    return prev == to_hash


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
        row.seq,
        row.at,
        row.actor,
        row.kind,
        json.loads(row.subjects),
        json.loads(row.details),
        row.prev_hash,
        row.hash,
    )


def search(
    conn: Connection,
    *,
    kind: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: int = VERIFY_BATCH,
) -> list[AuditEvent]:
    """Events with ``seq < before``, newest first, at most ``limit``: of one ``kind`` (or, ending
    in a dot, one family: ``console.``), one ``actor``, ``since <= at < until``."""
    stmt = sa.select(audit_events)
    if before is not None:
        stmt = stmt.where(audit_events.c.seq < before)
    if kind:
        if kind.endswith("."):
            stmt = stmt.where(audit_events.c.kind.startswith(kind, autoescape=True))
        else:
            stmt = stmt.where(audit_events.c.kind == kind)
    if actor:
        stmt = stmt.where(audit_events.c.actor == actor)
    if since is not None:
        stmt = stmt.where(audit_events.c.at >= since)
    if until is not None:
        stmt = stmt.where(audit_events.c.at < until)
    stmt = stmt.order_by(audit_events.c.seq.desc()).limit(limit)
    return [_event(row) for row in conn.execute(stmt)]


def events(
    conn: Connection,
    after_seq: int = 0,
    limit: int = VERIFY_BATCH,
    kinds: Iterable[str] = (),
) -> list[AuditEvent]:
    """Events with seq > ``after_seq``, in order (for export and the console); ``kinds``
    narrows them to those kinds in the query itself."""
    query = sa.select(audit_events).where(audit_events.c.seq > after_seq)
    wanted = tuple(kinds)
    if wanted:
        query = query.where(audit_events.c.kind.in_(wanted))
    rows = conn.execute(query.order_by(audit_events.c.seq).limit(limit))
    return [_event(r) for r in rows]


def _seq_with_hash(conn: Connection, digest: bytes) -> int | None:
    # Only on the failure path (no index on hash): which event carries this hash, if any.
    return conn.execute(
        sa.select(audit_events.c.seq).where(audit_events.c.hash == digest).limit(1)
    ).scalar_one_or_none()


def _broken_link(
    conn: Connection, row: Any, prev2: bytes | None, checked: int
) -> AuditVerification:
    """Event ``row`` does not name the previous event's hash: say what most likely happened."""
    seq = row.seq
    base = f"event {seq} does not follow event {seq - 1} (prev_hash differs): "
    if prev2 is not None and row.prev_hash == prev2:
        return AuditVerification(
            checked,
            seq - 1,
            seq,
            base + f"event {seq - 1} was inserted (event {seq} follows event {seq - 2})",
            "inserted",
        )
    later = _seq_with_hash(conn, row.prev_hash)
    if later is not None and later >= seq:
        return AuditVerification(
            checked,
            seq - 1,
            seq,
            base + f"it names event {later} as its predecessor: events were reordered",
            "reordered",
        )
    return AuditVerification(
        checked,
        seq - 1,
        seq,
        base + f"event {seq - 1} was replaced and its hash recomputed, or an event was "
        "inserted, deleted or reordered here",
        "rewritten",
    )


def verify(conn: Connection) -> AuditVerification:
    """Walk the whole chain; report the first modified, deleted, inserted or reordered event.

    Memory is flat: events are read :data:`VERIFY_BATCH` at a time. A chain rewritten from
    some event on with every hash recomputed is consistent here; only a signed checkpoint
    (``gateway.app.audit_checkpoints``) reveals that.
    """
    expected_seq = 1
    prev = GENESIS_HASH
    prev2: bytes | None = None
    checked = 0
    while True:
        rows = conn.execute(
            sa.select(audit_events)
            .where(audit_events.c.seq >= expected_seq)
            .order_by(audit_events.c.seq)
            .limit(VERIFY_BATCH)
        ).all()
        for row in rows:
            if row.seq != expected_seq:
                return AuditVerification(
                    checked,
                    expected_seq - 1,
                    expected_seq,
                    f"event {expected_seq} is missing (next stored event is {row.seq}): deleted",
                    "deleted",
                )
            if row.prev_hash != prev:
                return _broken_link(conn, row, prev2, checked)
            try:
                digest = event_hash(
                    row.prev_hash, row.seq, row.at, row.actor, row.kind, row.subjects, row.details
                )
            except ValueError:
                digest = b""
            if digest != row.hash:
                return AuditVerification(
                    checked,
                    expected_seq - 1,
                    row.seq,
                    f"event {row.seq} was modified: its hash does not match its content",
                    "modified",
                )
            prev2, prev = prev, row.hash
            checked += 1
            expected_seq += 1
        if len(rows) < VERIFY_BATCH:
            break
    last_seq = expected_seq - 1
    head_row = conn.execute(_HEAD).first()
    if head_row is None:
        return AuditVerification(
            checked, last_seq, last_seq + 1, "audit_head row is missing", "head"
        )
    if head_row.seq > last_seq:
        return AuditVerification(
            checked,
            last_seq,
            last_seq + 1,
            f"the head says the chain ends at event {head_row.seq} but the stored events end at "
            f"{last_seq}: events at the end were deleted",
            "truncated",
        )
    if head_row.seq < last_seq:
        return AuditVerification(
            checked,
            last_seq,
            head_row.seq + 1,
            f"events {head_row.seq + 1}..{last_seq} are beyond the head (event {head_row.seq}): "
            "inserted behind the store's back",
            "appended",
        )
    if head_row.hash != prev:
        return AuditVerification(
            checked,
            last_seq,
            last_seq,
            f"the head's hash differs from event {last_seq}'s hash",
            "head",
        )
    return AuditVerification(checked, last_seq, None, "")

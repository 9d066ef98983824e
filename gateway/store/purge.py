"""Retention: legal holds, purge runs, tombstones, crypto-shredding (CIS Art. 9.6).

Deleting is proving. Purging a batch of messages, in one transaction (:func:`purge_batch`):
write their tombstones (message id, kind, parties, dates, SHA-256 of the signed document,
policy and its hash, purge run id and batch number) with one bulk insert, bind them into the
audit chain with ONE ``purge.batch`` event, destroy their wrapped data keys
(crypto-shredding), delete every other row of theirs and the messages, each with one statement
over the batch's id set; a conversation left without messages goes with its debtor tags. A
message is therefore either whole or tombstoned, never half-deleted.

Binding: each tombstone row has a leaf hash (:func:`tombstone_leaf`: SHA-256 of its columns as
canonical JSON). A batch's ``purge.batch`` event carries its number, its count, its first and
last message id, :func:`batch_digest` (SHA-256 over a header naming run, batch and count, then
the leaves in message-id order) and a short tag of each leaf (:func:`batch_tags`, to name the
row that changed). One event per batch: 1 M purged messages write ~1 k events
(benchmarks/purge_bench.py). ``gateway.app.tombstone_check`` recomputes every batch.

The retention policy (what is old enough) is ``gateway.app.retention``; this module offers the
facts it decides on (:func:`scan`: kind, direction, parties, stored and closed dates, hold,
pending delivery), a simple cut-off query (:func:`candidates`) and does the deleting, one
batch per transaction: :func:`lock_batch` then :func:`purge_batch` (what the nightly job
uses), or :func:`purge_messages` (the same for a list of ids, by hand). Legal holds lock the
conversation row like :func:`lock_batch` does, so a hold and a purge batch never cross.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.crashpoints import crash_point
from gateway.store import attachments as attachment_store
from gateway.store import audit
from gateway.store import conversations as conversation_store
from gateway.store.dialect import in_text_set, keyed_batch_settings
from gateway.store.messages import forget_data_keys
from gateway.store.tables import (
    audit_events,
    conversation_machines,
    conversations,
    delivery_attempts,
    late_answers,
    legal_holds,
    message_keys,
    messages,
    originals,
    outbox,
    purge_reports,
    purge_runs,
    receipts,
    resends,
    search_tags,
    tombstones,
    verification_reports,
)

MAX_SCAN_BATCH = 5000
"""Messages examined per retention scan query: facts only (no payload), a few hundred KiB."""
MAX_PURGE_BATCH = 1000
"""Tombstones bound by one ``purge.batch`` event: keeps its tags within the audit's details
limit (4 KiB). A transaction binds several batches (:data:`MAX_PURGE_TRANSACTION`)."""
MAX_PURGE_TRANSACTION = 10_000
"""Messages purged per transaction, in batches of :data:`MAX_PURGE_BATCH` bound by an event
each. Each statement works on the whole id set, so the per-transaction costs (statements,
plans, the commit, and on SQLite every index page rewritten into the log once per commit)
are shared by up to this many messages (benchmarks/purge_bench.py)."""
PURGE_ACTOR_PREFIX = "purge:"
BATCH_EVENT = "purge.batch"
BATCH_DIGEST_FORMAT = "gateway-purge-batch/1"
"""First line of what :func:`batch_digest` hashes: names the encoding, so a later one differs."""
TAG_BYTES = 2
"""Bytes of each leaf listed (base64) in a batch event: enough to name the edited row (a
chance edit keeps its tag once in 65,536; the batch digest still fails then); 1,000 rows take
2,668 characters of the 4 KiB details."""
CHUNK_EVENT = "purge.tombstones"
"""Runs before 0017 bound 64 tombstones per event, listed by id (:func:`parse_bound_leaves`);
still verified, no longer written."""
CHUNK_TAG_HEX = 16
"""Hex digits of a leaf listed per message in a chunk event."""


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


class Tombstone(NamedTuple):
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


_TOMBSTONE_FIELDS = Tombstone._fields


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


class RetentionFacts(NamedTuple):
    """One stored message as the retention job sees it: clear facts only, no payload. (A
    tuple: the purge makes two per stored message, and a frozen dataclass cost four times
    more to build.)"""

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
    """Holds on the conversation that are not released, newest first."""
    return list_holds(conn, conversation_id=conversation_id)


def _held() -> sa.ColumnElement[bool]:
    """The message's conversation is under a legal hold."""
    return messages.c.conversation_id.in_(
        sa.select(legal_holds.c.conversation_id).where(legal_holds.c.released_at.is_(None))
    )


def _pending_delivery() -> sa.ColumnElement[bool]:
    """The message still waits in the outbox.

    Both this and :func:`_held` are set lookups, not correlated ``EXISTS``: a subquery per
    message was planned on SQLite as a walk of every pending outbox row (``ix_outbox_due``)
    for each message, and 2,000 undelivered messages (a peer down for a few days) made the
    scan of 50,000 messages take 16.9 s instead of 0.6 (tests/store/test_store_purge.py). The
    set is read once per statement instead."""
    return messages.c.message_id.in_(
        sa.select(outbox.c.message_id).where(outbox.c.state == "pending")
    )


def candidates(
    conn: Connection,
    stored_before: datetime,
    limit: int,
    *,
    agreement: str | None = None,
) -> list[str]:
    """Message ids stored before the cut-off, not held, not pending delivery; oldest first."""
    if not 1 <= limit <= MAX_PURGE_TRANSACTION:
        raise ValueError(f"limit must be 1..{MAX_PURGE_TRANSACTION}, got {limit}")
    stmt = (
        sa.select(messages.c.message_id)
        .where(messages.c.stored_at < stored_before, ~_held(), ~_pending_delivery())
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
    rows = conn.execute(
        _facts_query().where(messages.c.id > after).order_by(messages.c.id).limit(limit)
    )
    return [_facts(r) for r in rows]


def _facts(r: Any) -> RetentionFacts:
    """A row whose first 13 columns are :class:`RetentionFacts`' in order (:func:`scan`,
    :func:`_facts_query`) as the retention rule's input. By position: reading a row's columns
    by name cost more than the rest of the purge's Python per message."""
    return RetentionFacts._make((*r[:11], bool(r[11]), bool(r[12])))


def count_messages(conn: Connection) -> int:
    """Every stored message (a run's report states how many it looked at)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one())


def count_held(conn: Connection, stored_before: datetime) -> int:
    """Messages old enough to purge but kept by a legal hold (reported by the purge run)."""
    return conn.execute(
        sa.select(sa.func.count())
        .select_from(messages)
        .where(messages.c.stored_at < stored_before, _held())
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
    below_minimum: Mapping[str, str] | None = None,
) -> None:
    """Record the start of a purge run. ``policy_sha256``: of the policy set it applies; when it
    differs from the last run's, a ``retention.policy_changed`` event records old and new
    hashes first (a changed period is then visible in the trail, not only in its effect)."""
    if policy_sha256 is not None:
        record_policy_set(
            conn,
            policy_sha256,
            source=policy_source,
            actor=actor,
            now=now,
            subjects={"purge_run_id": run_id},
            below_minimum=below_minimum,
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


POLICY_CHANGED_EVENT = "retention.policy_changed"


def recorded_policy_set(conn: Connection) -> str | None:
    """The policy set hash last recorded: by the latest ``retention.policy_changed`` event
    (``serve`` start, a reload, a run), else by the latest run (stores from before 0007 did
    not audit it)."""
    details = conn.execute(
        sa.select(audit_events.c.details)
        .where(audit_events.c.kind == POLICY_CHANGED_EVENT)
        .order_by(audit_events.c.seq.desc())
        .limit(1)
    ).scalar()
    if details is not None:
        recorded = json.loads(details).get("new_sha256")
        return recorded if isinstance(recorded, str) else None
    previous: str | None = conn.execute(
        sa.select(purge_runs.c.policy_sha256)
        .where(purge_runs.c.policy_sha256.is_not(None))
        .order_by(purge_runs.c.started_at.desc())
        .limit(1)
    ).scalar()
    return previous


def record_policy_set(
    conn: Connection,
    policy_sha256: str,
    *,
    source: str,
    actor: str,
    now: datetime,
    subjects: Mapping[str, str] | None = None,
    below_minimum: Mapping[str, str] | None = None,
) -> bool:
    """Audit ``retention.policy_changed`` (old and new hashes, the source, and each policy
    below the minimum with its stated reason) when ``policy_sha256`` is not the set last
    recorded; True if it was. Called at ``serve`` start, when the job reloads the policies,
    and at each run's start, so that a changed period shows in the trail before anything is
    destroyed under it."""
    previous = recorded_policy_set(conn)
    if previous == policy_sha256:
        return False
    details: dict[str, audit.JsonScalar] = {
        "old_sha256": previous,
        "new_sha256": policy_sha256,
        "source": source[-200:],
    }
    if below_minimum:
        details["below_minimum"] = json.dumps(dict(below_minimum), ensure_ascii=False)[:1000]
    audit.append(
        conn,
        now=now,
        actor=actor,
        kind=POLICY_CHANGED_EVENT,
        subjects=dict(subjects or {}),
        details=details,
    )
    return True


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


def get_run(conn: Connection, run_id: str, *, for_update: bool = False) -> PurgeRun | None:
    """A purge run, or None. ``for_update``: locked until the caller's transaction ends, after
    every transaction of the run in flight (:func:`purge_batch` holds the row from its check
    that the run is running): what is read after it is all the run purged."""
    stmt = sa.select(purge_runs).where(purge_runs.c.run_id == run_id)
    row = conn.execute(stmt.with_for_update() if for_update else stmt).first()
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
    if len(message_ids) > MAX_PURGE_TRANSACTION:
        raise ValueError(f"at most {MAX_PURGE_TRANSACTION} messages per transaction")
    run = conn.execute(
        sa.select(purge_runs.c.actor, purge_runs.c.state).where(purge_runs.c.run_id == run_id)
    ).first()
    if run is None or run.state != "running":
        raise ValueError(f"purge run {run_id} is not running; start_run first")
    locked = lock_batch(conn, message_ids)
    bound = purge_batch(
        conn, [(message, policy) for message in locked], run_id=run_id, actor=run.actor, now=now
    )
    return sum(b.count for b in bound)


def get_tombstone(conn: Connection, message_id: str) -> Tombstone | None:
    """The tombstone of a purged message, or None."""
    row = conn.execute(sa.select(tombstones).where(tombstones.c.message_id == message_id)).first()
    if row is None:
        return None
    return _tombstone(row)


def _tombstone(row: Any) -> Tombstone:
    return Tombstone(*(getattr(row, f) for f in _TOMBSTONE_FIELDS))


def tombstones_of(conn: Connection, conversation_id: str) -> list[Tombstone]:
    """The tombstones of a conversation's purged messages, oldest first."""
    rows = conn.execute(
        sa.select(tombstones)
        .where(tombstones.c.conversation_id == conversation_id)
        .order_by(tombstones.c.created, tombstones.c.message_id)
    )
    return [_tombstone(r) for r in rows]


# --- binding tombstones into the audit chain -----------------------------------------------


_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
"""``json.dumps(…, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, its encoder
built once (``dumps`` with arguments builds one per call)."""


def _time_text(at: datetime) -> str:
    if at.tzinfo is not UTC:  # the store hands out UTC already: no conversion per column
        at = at.astimezone(UTC)
    return at.isoformat(timespec="microseconds")


@functools.lru_cache(maxsize=8)
def _purged_at_json(at: datetime) -> str:
    """The JSON text of a ``purged_at``: one instant for every tombstone of a run's
    transaction, so written once, not per row."""
    return _json_string(_time_text(at))  # type: ignore[no-any-return]


_LEAF_KEYS = tuple(sorted(_TOMBSTONE_FIELDS))
_LEAF_FIELDS = tuple(_TOMBSTONE_FIELDS.index(name) for name in _LEAF_KEYS)
_LEAF_TEMPLATE = "{" + ",".join(f'"{name}":%s' for name in _LEAF_KEYS) + "}"
"""The canonical JSON of a tombstone with its values left out: the keys are fixed, so sorting
them and writing the separators is done once, not per row (:func:`tombstone_leaf`)."""
_json_string: Any = json.encoder.encode_basestring  # type: ignore[attr-defined]
"""The C encoder of a JSON string (``ensure_ascii=False``): the same bytes as ``json.dumps``."""


def _leaf_value(value: Any) -> str:
    if value.__class__ is str:
        return _json_string(value)  # type: ignore[no-any-return]
    if value is None:
        return "null"
    if isinstance(value, datetime):
        return _json_string(_time_text(value))  # type: ignore[no-any-return]
    if isinstance(value, bytes):
        return f'"{value.hex()}"'
    return _CANONICAL_JSON(value)


def tombstone_leaf(t: Tombstone) -> bytes:
    """SHA-256 of every column of a tombstone as canonical JSON (sorted keys, no spaces, UTF-8;
    times UTC ISO 8601 to the microsecond, the document hash in hex): any edit of the row
    changes it. (Written through a template of the fixed keys: byte for byte what
    ``json.dumps(…, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` of the columns
    gives, tested; a million rows a run make the difference.)"""
    q = _json_string
    try:  # the column types of a stored row
        text = _LEAF_TEMPLATE % (
            q(t.agreement),
            q(t.conversation_id),
            q(_time_text(t.created)),
            q(t.direction),
            f'"{t.document_sha256.hex()}"',
            q(t.kind),
            q(t.message_id),
            q(t.policy),
            "null" if t.policy_sha256 is None else q(t.policy_sha256),
            q(t.purge_run_id),
            _purged_at_json(t.purged_at),
            q(t.recipient),
            q(t.sender),
            q(_time_text(t.stored_at)),
        )
    except (TypeError, AttributeError):  # any other value: the general encoding
        text = _LEAF_TEMPLATE % tuple(_leaf_value(t[i]) for i in _LEAF_FIELDS)
    return hashlib.sha256(text.encode("utf-8")).digest()


def batch_digest(run_id: str, batch: int, leaves: Sequence[bytes]) -> bytes:
    """The hash a ``purge.batch`` event carries over its batch's purged ids and tombstones:

    ``SHA-256("gateway-purge-batch/1\\n" run_id "\\n" batch "\\n" count "\\n" leaf_1 … leaf_n)``

    the header in UTF-8 (``batch`` and ``count`` in decimal), then each tombstone's 32-byte
    :func:`tombstone_leaf` in message-id order (the leaf covers the message id, so the ids are
    hashed with their rows). The run, the batch number and the count are inside, so a batch's
    rows cannot be moved to another batch or run, or shortened, without changing it.
    """
    digest = hashlib.sha256(f"{BATCH_DIGEST_FORMAT}\n{run_id}\n{batch}\n{len(leaves)}\n".encode())
    for leaf in leaves:
        digest.update(leaf)
    return digest.digest()


def batch_tags(leaves: Sequence[bytes]) -> str:
    """Base64 of the first :data:`TAG_BYTES` of each leaf, in order: lets a verifier name the
    row that differs; the batch digest is what a forger would have to match."""
    return base64.b64encode(b"".join(leaf[:TAG_BYTES] for leaf in leaves)).decode("ascii")


def split_tags(tags: str) -> list[bytes]:
    """The per-row tags of a ``purge.batch`` event, in message-id order."""
    raw = base64.b64decode(tags.encode("ascii"), validate=True) if tags else b""
    return [raw[i : i + TAG_BYTES] for i in range(0, len(raw), TAG_BYTES)]


def runs_digest(batch_digests: Sequence[bytes]) -> str:
    """What a signed report states over a run's tombstones: SHA-256 (hex) over its batch
    digests (:func:`batch_digest`, 32 bytes each) in batch-number order."""
    digest = hashlib.sha256()
    for one in batch_digests:
        digest.update(one)
    return digest.hexdigest()


def leaves_digest(leaves: Sequence[bytes]) -> str:
    """SHA-256 (hex) over leaf hashes in order: what a ``purge.tombstones`` chunk event and a
    ``gateway-purge-report/1`` carried (runs before 0017; read only to verify them)."""
    digest = hashlib.sha256()
    for leaf in leaves:
        digest.update(leaf)
    return digest.hexdigest()


def tombstones_by_ids(conn: Connection, message_ids: Sequence[str]) -> dict[str, Tombstone]:
    """These messages' tombstones by message id (ids without one are absent)."""
    if not message_ids:
        return {}
    rows = conn.execute(
        sa.select(tombstones).where(in_text_set(conn, tombstones.c.message_id, message_ids))
    )
    return {r.message_id: _tombstone(r) for r in rows}


def batch_tombstones(conn: Connection, run_id: str, batch: int) -> list[Tombstone]:
    """A batch's tombstones in message-id order (sorted here, not by the database's
    collation, so that the order is the one :func:`batch_digest` was computed in)."""
    rows = conn.execute(
        sa.select(tombstones).where(
            tombstones.c.purge_run_id == run_id, tombstones.c.purge_batch == batch
        )
    )
    return sorted((_tombstone(r) for r in rows), key=lambda t: t.message_id)


def run_batches(conn: Connection, run_id: str) -> list[int]:
    """The batch numbers a run's tombstones carry, ascending (rows before 0017 carry none)."""
    return list(
        conn.execute(
            sa.select(tombstones.c.purge_batch)
            .where(tombstones.c.purge_run_id == run_id, tombstones.c.purge_batch.is_not(None))
            .distinct()
            .order_by(tombstones.c.purge_batch)
        ).scalars()
    )


def run_digest_from_rows(conn: Connection, run_id: str) -> tuple[int, int, str]:
    """``(tombstones, batches, digest)`` of a run recomputed from its rows, a batch at a time:
    what ``verify-report`` checks a ``gateway-purge-report/2`` against, and what closes a run
    that was interrupted (its batch digests were not kept)."""
    digests = []
    for batch in run_batches(conn, run_id):
        rows = batch_tombstones(conn, run_id, batch)
        digests.append(batch_digest(run_id, batch, [tombstone_leaf(t) for t in rows]))
    # Every row of the run is counted, in a batch or not: one slipped in without a batch
    # number changes the count.
    count = sum(batch_counts(conn, run_id).values())
    return count, len(digests), runs_digest(digests)


def unbatched_tombstones(
    conn: Connection, run_id: str, *, after: str = "", limit: int = MAX_SCAN_BATCH
) -> list[Tombstone]:
    """A run's tombstones without a batch number, in message-id order, after ``after``."""
    rows = conn.execute(
        sa.select(tombstones)
        .where(
            tombstones.c.purge_run_id == run_id,
            tombstones.c.purge_batch.is_(None),
            tombstones.c.message_id > after,
        )
        .order_by(tombstones.c.message_id)
        .limit(limit)
    )
    return [_tombstone(r) for r in rows]


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
    """``(count, SHA-256 over the leaves in message-id order)`` of a run's tombstones: what a
    ``gateway-purge-report/1`` (before 0017) signed; read only to verify such reports."""
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


def batch_counts(conn: Connection, run_id: str | None = None) -> dict[tuple[str, int | None], int]:
    """Tombstones stored per (run, batch number); None: rows without a batch (before 0017)."""
    stmt = sa.select(tombstones.c.purge_run_id, tombstones.c.purge_batch, sa.func.count()).group_by(
        tombstones.c.purge_run_id, tombstones.c.purge_batch
    )
    if run_id is not None:
        stmt = stmt.where(tombstones.c.purge_run_id == run_id)
    return {(run, batch): count for run, batch, count in conn.execute(stmt)}


def parse_bound_leaves(listing: str) -> list[tuple[str, str]]:
    """``[(message_id, leaf tag)]`` from a ``purge.tombstones`` chunk event's ``leaves``."""
    pairs = []
    for item in listing.split(","):
        message_id, _, tag = item.partition(":")
        pairs.append((message_id, tag))
    return pairs


# --- set-based purge (the nightly job) ----------------------------------------------------------


class LockedMessage(NamedTuple):
    """A message locked for purging in the current transaction: its retention facts as they
    are now, and what its tombstone needs."""

    facts: RetentionFacts
    created: datetime
    document_sha256: bytes


class PurgedBatch(NamedTuple):
    """What :func:`purge_batch` destroyed: the batch's number in its run, how many messages,
    and the :func:`batch_digest` its ``purge.batch`` event carries (empty batch: 0, 0, b"")."""

    batch: int
    count: int
    sha256: bytes


def _facts_query(*extra: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """The columns :func:`_facts` reads, in its order (it reads them by position), then
    ``extra``, of each message with its conversation."""
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
        c.closed_at,
        c.proceeding_closed_at,
        _held().label("held"),
        _pending_delivery().label("pending_delivery"),
        *extra,
    ).join(conversations, c.conversation_id == m.conversation_id)


_CHANGEABLE = slice(RetentionFacts._fields.index("conversation_closed_at"), None)
"""The facts of a stored message that can change after it is stored: the last four
(:func:`lock_batch` re-reads them)."""


def lock_batch(
    conn: Connection,
    message_ids: Sequence[str],
    scanned: Mapping[str, RetentionFacts] | None = None,
) -> list[LockedMessage]:
    """Lock these messages (and their conversations) in the caller's write transaction and
    return their facts as they are now; ids no longer stored are left out.

    The job decides again on these facts before :func:`purge_batch`: a hold placed, or a
    conversation changed, since the scan is seen here. Conversations are locked in id order
    (no deadlock with another batch or :func:`place_hold`); SQLite's single writer
    (``BEGIN IMMEDIATE``) serialises the same way without row locks.

    ``scanned``: the facts the scan read of these ids (:func:`scan`). Then only what can
    change after a message is stored is read again — its conversation's closing times, a hold,
    the outbox, and the document's hash (a document signed again before it left) — and the
    message's own header facts are the scan's: they never change once stored.
    """
    if len(message_ids) > MAX_PURGE_TRANSACTION:
        raise ValueError(f"at most {MAX_PURGE_TRANSACTION} messages per transaction")
    if not message_ids:
        return []
    keyed_batch_settings(conn)
    in_batch = in_text_set(conn, messages.c.message_id, message_ids)
    if conn.dialect.name == "postgresql":
        # ``= ANY(ARRAY(…))``: probe the conversations' key for each id; an ``IN (SELECT …)``
        # was planned as a merge join walking every conversation's key, at each batch.
        theirs = sa.select(messages.c.conversation_id).where(in_batch).scalar_subquery()
        conn.execute(
            sa.select(conversations.c.conversation_id)
            .where(conversations.c.conversation_id == sa.any_(sa.func.array(theirs)))
            .order_by(conversations.c.conversation_id)
            # FOR NO KEY UPDATE: serialises with holds and other batches, but does not stop a
            # peer's message from being stored in the conversation (its foreign-key check).
            .with_for_update(key_share=True)
        ).all()
    if scanned is not None:
        return _merge_changes(conn, in_batch, scanned)
    rows = conn.execute(
        _facts_query(messages.c.created, messages.c.document_sha256)
        .where(in_batch)
        .order_by(messages.c.id)
        .with_for_update(of=messages)
    ).all()
    return [LockedMessage(_facts(r), r[13], r[14]) for r in rows]


def _merge_changes(
    conn: Connection, in_batch: Any, scanned: Mapping[str, RetentionFacts]
) -> list[LockedMessage]:
    """:func:`lock_batch` given the scan's facts: the locked rows' changeable facts read, the
    scan's facts kept where those are the same (most of the time: a tuple is then reused, not
    rebuilt), replaced where not."""
    m, c = messages.c, conversations.c
    rows = conn.execute(
        sa.select(
            m.message_id,
            c.closed_at,
            c.proceeding_closed_at,
            _held(),
            _pending_delivery(),
            m.created,
            m.document_sha256,
        )
        .join(conversations, c.conversation_id == m.conversation_id)
        .where(in_batch)
        .order_by(m.id)
        .with_for_update(of=messages)
    ).all()
    locked = []
    for message_id, closed_at, proceeding_closed_at, held, pending, created, sha256 in rows:
        facts = scanned[message_id]
        now = (closed_at, proceeding_closed_at, bool(held), bool(pending))
        if now != facts[_CHANGEABLE]:
            facts = RetentionFacts._make((*facts[: _CHANGEABLE.start], *now))
        locked.append(LockedMessage(facts, created, sha256))
    return locked


MESSAGE_ROWS: tuple[tuple[sa.Table, str], ...] = (
    (message_keys, "message_id"),
    (verification_reports, "message_id"),
    (receipts, "message_id"),
)
"""Every table holding a message's rows by its id, deleted by the batch's message-id set before
the message itself (:func:`_delete_messages`). The wrapped data keys go first: without them the
ciphertext is noise in every copy (crypto-shredding). Attachments and their segments go through
``gateway.store.attachments.delete_for_messages`` (segments are keyed by attachment), outbox
rows after their delivery attempts. No foreign key deletes any of them (migration 0020)."""


CONVERSATION_ROWS: tuple[sa.Table, ...] = (
    search_tags,
    conversation_machines,
    late_answers,
    resends,
    originals,
)
"""Every table holding a conversation's rows by its ``conversation_id``, deleted with it when
its last message goes (:func:`_delete_emptied_conversations`). No foreign key deletes them
(migration 0020): a table missing here would outlive the purge
(tests/store/test_store_purge_coverage.py)."""


def _delete_messages(conn: Connection, ids: Sequence[str]) -> None:
    """Delete these messages and every row of theirs, one statement per table over the set."""
    for table, column in MESSAGE_ROWS:
        conn.execute(table.delete().where(in_text_set(conn, table.c[column], ids)))
    forget_data_keys(conn, ids)
    attachment_store.delete_for_messages(conn, ids)
    outbox_ids = sa.select(outbox.c.id).where(in_text_set(conn, outbox.c.message_id, ids))
    conn.execute(delivery_attempts.delete().where(delivery_attempts.c.outbox_id.in_(outbox_ids)))
    conn.execute(outbox.delete().where(in_text_set(conn, outbox.c.message_id, ids)))
    conn.execute(messages.delete().where(in_text_set(conn, messages.c.message_id, ids)))


def _delete_emptied_conversations(conn: Connection, touched: Sequence[str]) -> None:
    """A conversation left without messages goes, with its search tags and machine."""
    still_used = set(
        conn.execute(
            sa.select(messages.c.conversation_id)
            .where(in_text_set(conn, messages.c.conversation_id, touched))
            .distinct()
        ).scalars()
    )
    emptied = [cid for cid in touched if cid not in still_used]
    if not emptied:
        return
    for table in CONVERSATION_ROWS:
        conn.execute(table.delete().where(in_text_set(conn, table.c.conversation_id, emptied)))
    conversation_store.delete(conn, emptied)  # counted out of conversation_counts


def _next_batch(conn: Connection, run_id: str) -> int:
    """The run's next batch number (its rows are locked by this transaction's writes; one
    run is purged by one process at a time, under the job lock)."""
    last = conn.execute(
        sa.select(sa.func.max(tombstones.c.purge_batch)).where(tombstones.c.purge_run_id == run_id)
    ).scalar()
    return int(last or 0) + 1


def _tombstone_of(
    locked: LockedMessage, policy: str, *, run_id: str, now: datetime, policy_hash: str | None
) -> Tombstone:
    f = locked.facts
    return Tombstone(
        message_id=f.message_id,
        conversation_id=f.conversation_id,
        direction=f.direction,
        agreement=f.agreement,
        kind=f.kind,
        sender=f.sender,
        recipient=f.recipient,
        created=locked.created,
        stored_at=f.stored_at,
        purged_at=now,
        document_sha256=locked.document_sha256,
        policy=policy,
        purge_run_id=run_id,
        policy_sha256=policy_hash,
    )


_TOMBSTONE_COPY = (
    "message_id",
    "conversation_id",
    "direction",
    "agreement",
    "kind",
    "sender",
    "recipient",
    "created",
    "stored_at",
    "document_sha256",
)
"""The tombstone's columns copied from the locked message row."""


def _insert_tombstones(
    conn: Connection,
    made: Sequence[Tombstone],
    *,
    batch: int,
) -> None:
    """One batch's tombstones in bulk: one ``INSERT … SELECT`` from the locked message rows
    per policy in the batch. The message's own columns never cross the wire; they are the
    locked row's, the same the leaves were computed from."""
    by_policy: dict[tuple[str, str | None], list[str]] = {}
    for t in made:
        by_policy.setdefault((t.policy, t.policy_sha256), []).append(t.message_id)
    t = tombstones.c
    first = made[0]
    for (policy, policy_hash), ids in by_policy.items():
        constants = {
            "purged_at": first.purged_at,
            "policy": policy,
            "purge_run_id": first.purge_run_id,
            "policy_sha256": policy_hash,
            "purge_batch": batch,
        }
        conn.execute(
            tombstones.insert().from_select(
                [*_TOMBSTONE_COPY, *constants],
                sa.select(
                    *(messages.c[name] for name in _TOMBSTONE_COPY),
                    *(
                        sa.bindparam(f"t_{name}", value, type_=t[name].type)
                        for name, value in constants.items()
                    ),
                ).where(in_text_set(conn, messages.c.message_id, ids)),
            )
        )


def purge_batch(
    conn: Connection,
    decided: Sequence[tuple[LockedMessage, str]],
    *,
    run_id: str,
    actor: str,
    now: datetime,
    policy_sha256: Mapping[str, str] | None = None,
    batch_size: int = MAX_PURGE_BATCH,
    first_batch: int | None = None,
) -> list[PurgedBatch]:
    """Tombstone and destroy these messages (each with the policy that expired it) in the
    caller's transaction, set-based; return the batches that bind them, in order.

    ``decided`` comes from :func:`lock_batch` in the same transaction (up to
    :data:`MAX_PURGE_TRANSACTION`); ``policy_sha256`` maps a policy name to its hash (recorded
    in the tombstone). In message-id order, every ``batch_size`` (≤ :data:`MAX_PURGE_BATCH`)
    messages make a batch: its tombstones go in with one bulk insert and ONE ``purge.batch``
    audit event binds them (count, first and last id, :func:`batch_digest`, per-row tags).
    Then every row of all the messages is deleted by the id set (:data:`MESSAGE_ROWS`,
    wrapped data keys first: crypto-shredding), then the messages; a conversation left without
    messages goes with its debtor tags. All of it commits together or not at all, so a
    message is whole or tombstoned, never half.
    """
    if len(decided) > MAX_PURGE_TRANSACTION:
        raise ValueError(f"at most {MAX_PURGE_TRANSACTION} messages per transaction")
    if not 1 <= batch_size <= MAX_PURGE_BATCH:
        raise ValueError(f"batch_size must be 1..{MAX_PURGE_BATCH}")
    if not decided:
        return []
    for locked, _policy in decided:
        if locked.facts.held:
            raise LegalHoldActive(
                f"message {locked.facts.message_id}: conversation "
                f"{locked.facts.conversation_id} is under a legal hold; release it first"
            )
        if locked.facts.pending_delivery:
            raise ValueError(f"message {locked.facts.message_id} is still in the outbox")
    # FOR KEY SHARE: the run's own transactions in flight together do not wait for each other
    # here, but a run being closed (its report signed: get_run(for_update=True)) waits for
    # them, and one starting after the close sees it closed.
    run = conn.execute(
        sa.select(purge_runs.c.state)
        .where(purge_runs.c.run_id == run_id)
        .with_for_update(read=True, key_share=True)
    ).first()
    if run is None or run.state != "running":
        raise ValueError(f"purge run {run_id} is not running; start_run first")
    if first_batch is None:
        first_batch = _next_batch(conn, run_id)
    hashes = policy_sha256 or {}
    made = sorted(
        (
            _tombstone_of(locked, policy, run_id=run_id, now=now, policy_hash=hashes.get(policy))
            for locked, policy in decided
        ),
        key=lambda t: t.message_id,
    )
    bound: list[PurgedBatch] = []
    events: list[audit.AuditEntry] = []
    for start in range(0, len(made), batch_size):
        part = made[start : start + batch_size]
        batch = first_batch + len(bound)
        _insert_tombstones(conn, part, batch=batch)
        leaves = [tombstone_leaf(t) for t in part]
        digest = batch_digest(run_id, batch, leaves)
        events.append(
            (
                BATCH_EVENT,
                {"purge_run_id": run_id},
                {
                    "batch": batch,
                    "count": len(part),
                    "first": part[0].message_id,
                    "last": part[-1].message_id,
                    "sha256": digest.hex(),
                    "tags": batch_tags(leaves),
                },
            )
        )
        bound.append(PurgedBatch(batch, len(part), digest))
    ids = [t.message_id for t in made]
    _delete_messages(conn, ids)
    _delete_emptied_conversations(conn, sorted({t.conversation_id for t in made}))
    # The rows every transaction writes (the audit head, the run's count) go last: two purge
    # transactions in flight wait for each other only from here to their commit.
    audit.append_many(conn, now=now, actor=actor, entries=events)
    conn.execute(
        purge_runs.update()
        .where(purge_runs.c.run_id == run_id)
        .values(purged=purge_runs.c.purged + len(ids))
    )
    crash_point("purge.batch")
    return bound


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
    timestamp: bytes | None = None
    """A TSA's token (DER) over the SHA-256 of ``signature``, when ``[tsa] url`` gave one."""


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


def set_report_timestamp(conn: Connection, run_id: str, token: bytes) -> None:
    """Keep the TSA's token over a stored report's signature (fetched after it was stored)."""
    conn.execute(
        purge_reports.update().where(purge_reports.c.run_id == run_id).values(timestamp=token)
    )


def get_report(conn: Connection, run_id: str) -> StoredReport | None:
    """A run's signed report, or None."""
    r = conn.execute(sa.select(purge_reports).where(purge_reports.c.run_id == run_id)).first()
    if r is None:
        return None
    return StoredReport(r.run_id, r.signed_at, r.report, r.signature, r.certificate, r.timestamp)

"""Tombstones against the audit chain: every row edited, deleted or inserted is named.

The purge binds each batch's tombstones into the chain with one ``purge.batch`` event: the
batch's number, count, first and last message id, the batch digest (SHA-256 over the run,
batch, count and every row's leaf in message-id order) and a 2-byte tag of each leaf (see
``gateway.store.purge``). Once the chain itself verifies, :func:`check_tombstones` reads each
batch's rows back and recomputes them:

* fewer rows than the event counts → ``tombstone-deleted``, naming the missing row when it was
  the first or last (the event names those) and its neighbours otherwise;
* more rows → ``tombstone-inserted``, naming the row whose tag the event does not have;
* a row whose tag differs → ``tombstone-modified`` naming it (the row was edited: digest
  zeroed, policy changed, dates moved…); tags that all match but a digest that does not →
  ``tombstone-modified`` naming the batch (a forger matched 16-bit tags, not the SHA-256);
* a row of a run in no bound batch → ``tombstone-inserted`` naming it.

Runs before 0012 wrote one ``purge.tombstones`` event per 64 rows (ids and 16-hex tags), and
before that one ``message.purged`` event per message (document hash and policy): those rows
are checked against those events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from gateway.store import Store
from gateway.store import audit as audit_store
from gateway.store import purge as purge_store
from gateway.store.purge import Tombstone

LEGACY_EVENT = "message.purged"
_KINDS = (purge_store.BATCH_EVENT, purge_store.CHUNK_EVENT, LEGACY_EVENT)


@dataclass(frozen=True, slots=True)
class TombstoneProblem:
    seq: int
    """The audit event that binds the row (for an inserted row: the run's last binding)."""
    kind: str
    """``tombstone-deleted``, ``tombstone-modified`` or ``tombstone-inserted``."""
    message_id: str
    reason: str


def _bindings(conn: Connection, run_id: str | None = None) -> Iterator[audit_store.AuditEvent]:
    after = 0
    while batch := audit_store.events(conn, after_seq=after, kinds=_KINDS):
        after = batch[-1].seq
        for event in batch:
            if run_id is None or event.subjects.get("purge_run_id") == run_id:
                yield event


def _check_event(conn: Connection, event: audit_store.AuditEvent) -> TombstoneProblem | None:
    run_id = event.subjects.get("purge_run_id", "")
    if event.kind == purge_store.BATCH_EVENT:
        return _check_batch(conn, event, run_id)
    if event.kind == LEGACY_EVENT:
        return _check_legacy(conn, event, run_id)
    return _check_chunk(conn, event, run_id)


def _check_batch(
    conn: Connection, event: audit_store.AuditEvent, run_id: str
) -> TombstoneProblem | None:
    batch = int(event.details.get("batch") or 0)
    rows = purge_store.batch_tombstones(conn, run_id, batch)
    leaves = [purge_store.tombstone_leaf(t) for t in rows]
    tags = purge_store.split_tags(str(event.details.get("tags", "")))
    where = f"batch {batch} of purge run {run_id}"
    if len(rows) != event.details.get("count") or len(tags) != len(rows):
        return _misaligned(event, rows, leaves, tags, where)
    for tombstone, leaf, tag in zip(rows, leaves, tags, strict=True):
        if leaf[: purge_store.TAG_BYTES] != tag:
            return TombstoneProblem(
                event.seq,
                "tombstone-modified",
                tombstone.message_id,
                f"message {tombstone.message_id} ({where}): the tombstone is not the one the "
                "chain recorded (a column was edited)",
            )
    if purge_store.batch_digest(run_id, batch, leaves).hex() != event.details.get("sha256"):
        first, last = event.details.get("first"), event.details.get("last")
        return TombstoneProblem(
            event.seq,
            "tombstone-modified",
            str(first),
            f"{where}: its {len(rows)} tombstones (messages {first} … {last}) do not hash to "
            "what the chain recorded (a row edited so that its short tag still matches)",
        )
    return None


def _misaligned(
    event: audit_store.AuditEvent,
    rows: Sequence[Tombstone],
    leaves: Sequence[bytes],
    tags: Sequence[bytes],
    where: str,
) -> TombstoneProblem:
    """Rows and the event's tags disagree in number: name the row deleted or inserted, at the
    first position where they part."""
    position = next(
        (
            i
            for i in range(min(len(rows), len(tags)))
            if leaves[i][: purge_store.TAG_BYTES] != tags[i]
        ),
        min(len(rows), len(tags)),
    )
    recorded = len(tags)
    if len(rows) > recorded:
        extra = rows[position].message_id
        return TombstoneProblem(
            event.seq,
            "tombstone-inserted",
            extra,
            f"message {extra} ({where}): a tombstone the chain never recorded "
            f"({len(rows)} rows, the chain recorded {recorded})",
        )
    first, last = str(event.details.get("first", "")), str(event.details.get("last", ""))
    if position == 0 and (not rows or rows[0].message_id != first):
        missing, place = first, "its first"
    elif position >= len(rows) and (not rows or rows[-1].message_id != last):
        missing, place = last, "its last"
    else:
        before = rows[position - 1].message_id if position else first
        after = rows[position].message_id if position < len(rows) else last
        missing, place = "", f"between messages {before} and {after}"
    named = f"message {missing} ({where}, {place})" if missing else f"{where}: a message {place}"
    return TombstoneProblem(
        event.seq,
        "tombstone-deleted",
        missing,
        f"{named}: its tombstone is gone from the batch, deleted or moved ({len(rows)} rows, "
        f"the chain recorded {recorded})",
    )


def _gone(event: audit_store.AuditEvent, message_id: str, run_id: str) -> TombstoneProblem:
    """A message ``event`` binds has no tombstone any more."""
    return TombstoneProblem(
        event.seq,
        "tombstone-deleted",
        message_id,
        f"message {message_id} (purge run {run_id}): its tombstone is gone",
    )


def _check_chunk(
    conn: Connection, event: audit_store.AuditEvent, run_id: str
) -> TombstoneProblem | None:
    pairs = purge_store.parse_bound_leaves(str(event.details.get("leaves", "")))
    stored = purge_store.tombstones_by_ids(conn, [message_id for message_id, _ in pairs])
    leaves = []
    for message_id, tag in pairs:
        tombstone = stored.get(message_id)
        if tombstone is None:
            return _gone(event, message_id, run_id)
        leaf = purge_store.tombstone_leaf(tombstone)
        if leaf.hex()[: purge_store.CHUNK_TAG_HEX] != tag:
            return TombstoneProblem(
                event.seq,
                "tombstone-modified",
                message_id,
                f"message {message_id} (purge run {run_id}): the tombstone is not the one "
                "the chain recorded (a column was edited)",
            )
        leaves.append(leaf)
    if purge_store.leaves_digest(leaves) != event.details.get("sha256"):
        first = pairs[0][0] if pairs else ""
        return TombstoneProblem(
            event.seq,
            "tombstone-modified",
            first,
            f"purge run {run_id}: the tombstones of messages {first}… ({len(pairs)}) do not "
            "hash to what the chain recorded",
        )
    return None


def _check_legacy(
    conn: Connection, event: audit_store.AuditEvent, run_id: str
) -> TombstoneProblem | None:
    message_id = event.subjects.get("message_id", "")
    tombstone = purge_store.tombstones_by_ids(conn, [message_id]).get(message_id)
    if tombstone is None:
        return _gone(event, message_id, run_id)
    if (
        tombstone.document_sha256.hex() != event.details.get("document_sha256")
        or tombstone.policy != event.details.get("policy")
        or tombstone.purge_run_id != run_id
    ):
        return TombstoneProblem(
            event.seq,
            "tombstone-modified",
            message_id,
            f"message {message_id} (purge run {run_id}): the tombstone's hash, policy or run "
            "is not what the chain recorded",
        )
    return None


def _listed(event: audit_store.AuditEvent) -> list[str]:
    """Message ids a pre-0012 event lists."""
    if event.kind == LEGACY_EVENT:
        return [event.subjects.get("message_id", "")]
    return [m for m, _ in purge_store.parse_bound_leaves(str(event.details.get("leaves", "")))]


def check_tombstones(store: Store, run_id: str | None = None) -> TombstoneProblem | None:
    """The first tombstone (of every run, or of ``run_id``) that differs from the chain."""
    bound_batches: set[tuple[str, int]] = set()
    listed: Counter[str] = Counter()
    last_seq: dict[str, int] = {}
    with store.read() as conn:
        for event in _bindings(conn, run_id):
            problem = _check_event(conn, event)
            if problem is not None:
                return problem
            event_run = event.subjects.get("purge_run_id", "")
            if event.kind == purge_store.BATCH_EVENT:
                bound_batches.add((event_run, int(event.details.get("batch") or 0)))
            else:
                listed[event_run] += len(_listed(event))
            last_seq[event_run] = event.seq
        for (stored_run, batch), count in sorted(
            purge_store.batch_counts(conn, run_id).items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)
        ):
            seq = last_seq.get(stored_run, 0)
            if batch is not None and (stored_run, batch) not in bound_batches:
                return _inserted(conn, stored_run, seq, batch)
            if batch is None and count > listed[stored_run]:
                return _inserted(conn, stored_run, seq, None)
    return None


def _inserted(conn: Connection, run_id: str, seq: int, batch: int | None) -> TombstoneProblem:
    """Name a row of ``run_id`` that no binding event lists: one in a batch no event binds,
    or one without a batch that no pre-0012 event lists."""
    if batch is not None:
        rows = purge_store.batch_tombstones(conn, run_id, batch)
        extra = rows[0].message_id if rows else ""
        return TombstoneProblem(
            seq,
            "tombstone-inserted",
            extra,
            f"message {extra}: a tombstone of purge run {run_id} in batch {batch}, which the "
            "chain never recorded",
        )
    listed = {m for event in _bindings(conn, run_id) for m in _listed(event)}
    after = ""
    while page := purge_store.unbatched_tombstones(conn, run_id, after=after):
        for t in page:
            if t.message_id not in listed:
                return TombstoneProblem(
                    seq,
                    "tombstone-inserted",
                    t.message_id,
                    f"message {t.message_id}: a tombstone of purge run {run_id} that the "
                    "chain never recorded",
                )
        after = page[-1].message_id
    return TombstoneProblem(
        seq,
        "tombstone-inserted",
        "",
        f"purge run {run_id}: more tombstones than the chain recorded",
    )

"""Tombstones against the audit chain: every row edited, deleted or inserted is named.

The purge binds each batch's tombstones into the chain (``purge.tombstones`` events: message
ids, a short tag of each row's leaf hash, and the SHA-256 over the full leaves; see
``gateway.store.purge``). Once the chain itself verifies, :func:`check_tombstones` recomputes
every bound row's leaf from the table:

* a listed message without a tombstone → ``tombstone-deleted``;
* a tag that differs → ``tombstone-modified`` (the row was edited: digest zeroed, policy
  changed, dates moved…);
* tags that all match but a chunk digest that does not → ``tombstone-modified`` naming the
  chunk's messages (a forger matched a 64-bit tag, not the SHA-256);
* more rows for a run than its events bound → ``tombstone-inserted`` naming the extra row.

Runs from before the binding wrote one ``message.purged`` event per message with the
document's hash and the policy: those rows are checked on those two columns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from gateway.store import Store
from gateway.store import audit as audit_store
from gateway.store import purge as purge_store

LEGACY_EVENT = "message.purged"


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
    kinds = (purge_store.TOMBSTONES_EVENT, LEGACY_EVENT)
    while batch := audit_store.events(conn, after_seq=after, kinds=kinds):
        after = batch[-1].seq
        for event in batch:
            if run_id is None or event.subjects.get("purge_run_id") == run_id:
                yield event


def _check_event(conn: Connection, event: audit_store.AuditEvent) -> TombstoneProblem | None:
    run_id = event.subjects.get("purge_run_id", "")
    if event.kind == LEGACY_EVENT:
        return _check_legacy(conn, event, run_id)
    pairs = purge_store.parse_bound_leaves(str(event.details.get("leaves", "")))
    stored = purge_store.tombstones_by_ids(conn, [message_id for message_id, _ in pairs])
    leaves = []
    for message_id, tag in pairs:
        tombstone = stored.get(message_id)
        if tombstone is None:
            return TombstoneProblem(
                event.seq,
                "tombstone-deleted",
                message_id,
                f"message {message_id} (purge run {run_id}): its tombstone is gone",
            )
        leaf = purge_store.tombstone_leaf(tombstone)
        if leaf.hex()[: purge_store.TAG_HEX] != tag:
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
        return TombstoneProblem(
            event.seq,
            "tombstone-deleted",
            message_id,
            f"message {message_id} (purge run {run_id}): its tombstone is gone",
        )
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


def _bound_count(event: audit_store.AuditEvent) -> int:
    if event.kind == LEGACY_EVENT:
        return 1
    return len(purge_store.parse_bound_leaves(str(event.details.get("leaves", ""))))


def check_tombstones(store: Store, run_id: str | None = None) -> TombstoneProblem | None:
    """The first tombstone (of every run, or of ``run_id``) that differs from the chain."""
    bound: Counter[str] = Counter()
    last_seq: dict[str, int] = {}
    with store.read() as conn:
        for event in _bindings(conn, run_id):
            problem = _check_event(conn, event)
            if problem is not None:
                return problem
            event_run = event.subjects.get("purge_run_id", "")
            bound[event_run] += _bound_count(event)
            last_seq[event_run] = event.seq
        counts = purge_store.tombstone_counts(conn)
        for stored_run, count in sorted(counts.items()):
            if run_id is not None and stored_run != run_id:
                continue
            if count > bound[stored_run]:
                return _inserted(conn, stored_run, last_seq.get(stored_run, 0))
    return None


def _inserted(conn: Connection, run_id: str, seq: int) -> TombstoneProblem:
    """Name a row of ``run_id`` that no binding event lists."""
    listed: set[str] = set()
    for event in _bindings(conn, run_id):
        if event.kind == LEGACY_EVENT:
            listed.add(event.subjects.get("message_id", ""))
        else:
            pairs = purge_store.parse_bound_leaves(str(event.details.get("leaves", "")))
            listed.update(message_id for message_id, _ in pairs)
    after = ""
    while page := purge_store.run_tombstones(conn, run_id, after=after):
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

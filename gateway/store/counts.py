"""Conversation counts kept in the transaction that changes them.

Every conversation opened, moved to another state or purged adds a delta (+1 / -1) to its
``(state, agreement, requesting party, requested party)`` key in this transaction's queue.
Just before the transaction commits the queue is summed and written in one statement, keys in
sorted order: concurrent transactions then take the few counter rows' locks in the same order
(no deadlock) and hold them only for the commit, as the audit chain's head is. A transaction
that rolls back (or a savepoint that does) takes its deltas with it, so the counts always equal
a scan of ``conversations``.
"""

from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from gateway.store.dialect import _insert_construct
from gateway.store.tables import conversation_counts as table

Key = tuple[str, str, str, str]
"""(state, agreement, requesting party, requested party)."""


@dataclass(slots=True)
class _Queue:
    deltas: list[tuple[Key, int]] = field(default_factory=list)
    marks: list[int] = field(default_factory=list)
    """Queue length when each open savepoint began, innermost last."""


_QUEUES: weakref.WeakKeyDictionary[Connection, _Queue] = weakref.WeakKeyDictionary()
_BUILT: dict[str, Any] = {}
_KEY_COLUMNS = ("state", "agreement", "requesting_party", "requested_party")


def install(engine: Engine) -> None:
    """Make count deltas on ``engine`` reach the table at commit (``open_store`` calls it)."""
    if event.contains(engine, "commit", _flush_on_commit):
        return
    event.listen(engine, "begin", _on_begin)
    event.listen(engine, "commit", _flush_on_commit)
    event.listen(engine, "rollback", _on_rollback)
    event.listen(engine, "savepoint", _on_savepoint)
    event.listen(engine, "rollback_savepoint", _on_rollback_savepoint)
    event.listen(engine, "release_savepoint", _on_release_savepoint)


def _on_begin(conn: Connection) -> None:
    _QUEUES[conn] = _Queue()


def _on_rollback(conn: Connection) -> None:
    _QUEUES.pop(conn, None)


def _on_savepoint(conn: Connection, _name: str | None) -> None:
    queue = _QUEUES.get(conn)
    if queue is not None:
        queue.marks.append(len(queue.deltas))


def _on_rollback_savepoint(conn: Connection, _name: str, _context: Any) -> None:
    queue = _QUEUES.get(conn)
    if queue is not None and queue.marks:
        del queue.deltas[queue.marks.pop() :]


def _on_release_savepoint(conn: Connection, _name: str, _context: Any) -> None:
    queue = _QUEUES.get(conn)
    if queue is not None and queue.marks:
        queue.marks.pop()


def add(conn: Connection, key: Key, delta: int) -> None:
    """Count ``delta`` conversations more (or fewer) under ``key`` when this transaction
    commits."""
    queue = _QUEUES.get(conn) if conn.in_transaction() else None
    if queue is None:
        raise RuntimeError(
            "conversation counts change inside a write transaction of a store opened with "
            "gateway.store.open_store"
        )
    queue.deltas.append((key, delta))


def _flush_on_commit(conn: Connection) -> None:
    queue = _QUEUES.pop(conn, None)
    if queue is None or not queue.deltas:
        return
    summed: Counter[Key] = Counter()
    for key, delta in queue.deltas:
        summed[key] += delta
    rows = [
        {
            "state": k[0],
            "agreement": k[1],
            "requesting_party": k[2],
            "requested_party": k[3],
            "n": n,
        }
        for k, n in sorted(summed.items())
        if n
    ]
    if rows:
        conn.execute(_upsert(conn), rows)


def _upsert(conn: Connection) -> Any:
    stmt = _BUILT.get(conn.dialect.name)
    if stmt is None:
        insert = _insert_construct(conn, table)
        stmt = insert.on_conflict_do_update(
            index_elements=list(_KEY_COLUMNS),
            set_={"n": table.c.n + insert.excluded.n},
        )
        _BUILT[conn.dialect.name] = stmt
    return stmt


def read(conn: Connection) -> dict[Key, int]:
    """Every non-zero count by key."""
    rows = conn.execute(sa.select(table).where(table.c.n != 0))
    return {(r.state, r.agreement, r.requesting_party, r.requested_party): r.n for r in rows}

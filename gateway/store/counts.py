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

from collections import Counter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.store.commit_queue import CommitQueue
from gateway.store.dialect import insert_construct
from gateway.store.tables import conversation_counts as table

Key = tuple[str, str, str, str]
"""(state, agreement, requesting party, requested party)."""


_BUILT: dict[str, Any] = {}
_KEY_COLUMNS = ("state", "agreement", "requesting_party", "requested_party")


def install(engine: Engine) -> None:
    """Make count deltas on ``engine`` reach the table at commit (``open_store`` calls it)."""
    _QUEUE.install(engine)


def add(conn: Connection, key: Key, delta: int) -> None:
    """Count ``delta`` conversations more (or fewer) under ``key`` when this transaction
    commits."""
    deltas = _QUEUE.items(conn)
    if deltas is None:
        raise RuntimeError(
            "conversation counts change inside a write transaction of a store opened with "
            "gateway.store.open_store"
        )
    deltas.append((key, delta))


def _flush_on_commit(conn: Connection, deltas: list[tuple[Key, int]]) -> None:
    summed: Counter[Key] = Counter()
    for key, delta in deltas:
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
        insert = insert_construct(conn, table)
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


_QUEUE: CommitQueue[tuple[Key, int]] = CommitQueue(_flush_on_commit)
"""Each transaction's deltas, summed and written just before it commits."""

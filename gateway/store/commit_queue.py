"""Rows a transaction queues and writes in one go just before it commits: the audit chain's
events (gateway.store.audit) and the conversation counts' deltas (gateway.store.counts).

A rollback drops the transaction's queue; a savepoint rolled back drops what was queued since
it began (SQLAlchemy nests savepoints strictly, so a stack of queue lengths is enough). Queues
are keyed by the SQLAlchemy Connection, not ``Connection.info``, which belongs to the pooled
DBAPI connection and is unreachable once a dead connection is invalidated.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")


@dataclass(slots=True)
class _Queue(Generic[T]):
    items: list[T] = field(default_factory=list)
    marks: list[int] = field(default_factory=list)
    """Queue length when each open savepoint began, innermost last."""


class CommitQueue(Generic[T]):
    """One kind of queued rows; ``write(conn, items)`` runs at commit when any were queued."""

    def __init__(self, write: Callable[[Connection, list[T]], None]) -> None:
        self._write = write
        self._queues: weakref.WeakKeyDictionary[Connection, _Queue[T]] = weakref.WeakKeyDictionary()

    def install(self, engine: Engine) -> None:
        """Follow ``engine``'s transactions (``open_store`` calls it). Idempotent."""
        if event.contains(engine, "commit", self._on_commit):
            return
        event.listen(engine, "begin", self._on_begin)
        event.listen(engine, "commit", self._on_commit)
        event.listen(engine, "rollback", self._on_rollback)
        event.listen(engine, "savepoint", self._on_savepoint)
        event.listen(engine, "rollback_savepoint", self._on_rollback_savepoint)
        event.listen(engine, "release_savepoint", self._on_release_savepoint)

    def items(self, conn: Connection) -> list[T] | None:
        """The transaction's queue to append to; None outside a transaction of an installed
        engine."""
        queue = self._queues.get(conn) if conn.in_transaction() else None
        return None if queue is None else queue.items

    def in_savepoint_after_items(self, conn: Connection) -> bool:
        """True when a savepoint opened after items were queued is still open."""
        queue = self._queues.get(conn)
        return queue is not None and any(queue.marks)

    def written_early(self, conn: Connection) -> None:
        """The caller wrote the queued items itself: the database now undoes them with a
        savepoint, and what is queued from here on belongs to every open savepoint."""
        queue = self._queues.get(conn)
        if queue is not None:
            queue.items.clear()
            queue.marks = [0 for _ in queue.marks]

    def _on_begin(self, conn: Connection) -> None:
        self._queues[conn] = _Queue()

    def _on_commit(self, conn: Connection) -> None:
        queue = self._queues.pop(conn, None)
        if queue is not None and queue.items:
            self._write(conn, queue.items)

    def _on_rollback(self, conn: Connection) -> None:
        # The change the rows record is undone: so are the rows.
        self._queues.pop(conn, None)

    def _on_savepoint(self, conn: Connection, _name: str | None) -> None:
        queue = self._queues.get(conn)
        if queue is not None:
            queue.marks.append(len(queue.items))

    def _on_rollback_savepoint(self, conn: Connection, _name: str, _context: object) -> None:
        queue = self._queues.get(conn)
        if queue is not None and queue.marks:
            del queue.items[queue.marks.pop() :]

    def _on_release_savepoint(self, conn: Connection, _name: str, _context: object) -> None:
        queue = self._queues.get(conn)
        if queue is not None and queue.marks:
            queue.marks.pop()

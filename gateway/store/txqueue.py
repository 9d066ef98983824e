"""Work queued in a write transaction and done just before it commits.

The audit chain and the conversation counts both record a change in the transaction that
makes it, yet write their rows only at commit: one statement for all of the transaction's
entries, under the few locks they need, held for the commit alone. A rollback drops what the
transaction queued; a savepoint rolled back drops what was queued inside it; a released one
keeps it. This module is that mechanism, once.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")


@dataclass(slots=True)
class Queued(Generic[T]):
    """What one transaction has queued so far."""

    items: list[T] = field(default_factory=list)
    marks: list[int] = field(default_factory=list)
    """Queue length when each open savepoint began, innermost last."""


class TransactionQueue(Generic[T]):
    """Entries of type ``T`` queued per transaction on the engines it is installed on, handed
    to ``at_commit(conn, items)`` just before each commit that queued any."""

    def __init__(self, at_commit: Callable[[Connection, list[T]], None]) -> None:
        self._at_commit = at_commit
        # Keyed by the SQLAlchemy Connection (not ``Connection.info``, which belongs to the
        # pooled DBAPI connection and is unreachable once a dead connection is invalidated).
        self._queues: weakref.WeakKeyDictionary[Connection, Queued[T]] = weakref.WeakKeyDictionary()
        # Bound once: ``event.contains`` recognises only the very object that was listened.
        self._listeners: dict[str, Callable[..., None]] = {
            "begin": self._on_begin,
            "commit": self._on_commit,
            "rollback": self._on_rollback,
            "savepoint": self._on_savepoint,
            "rollback_savepoint": self._on_rollback_savepoint,
            "release_savepoint": self._on_release_savepoint,
        }

    def install(self, engine: Engine) -> None:
        """Queue on ``engine`` from its next transaction on. Idempotent."""
        if event.contains(engine, "commit", self._listeners["commit"]):
            return
        for name, listener in self._listeners.items():
            event.listen(engine, name, listener)

    def queued(self, conn: Connection) -> Queued[T] | None:
        """The queue of ``conn``'s transaction, or None outside a transaction of an engine
        this queue is installed on."""
        return self._queues.get(conn) if conn.in_transaction() else None

    def _on_begin(self, conn: Connection) -> None:
        self._queues[conn] = Queued()

    def _on_commit(self, conn: Connection) -> None:
        queue = self._queues.pop(conn, None)
        if queue is not None and queue.items:
            self._at_commit(conn, queue.items)

    def _on_rollback(self, conn: Connection) -> None:
        # The change the entries record is undone: so are the entries.
        self._queues.pop(conn, None)

    def _on_savepoint(self, conn: Connection, _name: str | None) -> None:
        # SQLAlchemy names its savepoints after this event fires, and nests them strictly (one
        # context manager inside another), so a stack of queue lengths is enough.
        queue = self._queues.get(conn)
        if queue is not None:
            queue.marks.append(len(queue.items))

    def _on_rollback_savepoint(self, conn: Connection, _name: str, _context: Any) -> None:
        queue = self._queues.get(conn)
        if queue is not None and queue.marks:
            del queue.items[queue.marks.pop() :]

    def _on_release_savepoint(self, conn: Connection, _name: str, _context: Any) -> None:
        queue = self._queues.get(conn)
        if queue is not None and queue.marks:
            queue.marks.pop()

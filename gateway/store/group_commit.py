"""Group commit: units of work from concurrent threads written in one transaction.

Theory of operation. Each receive ends with a short write (message, receipt, report, audit).
Written one transaction each, every document pays a ``BEGIN``, an audit-head update and a
commit (on PostgreSQL a WAL flush). Here the first thread to arrive becomes the *leader*: it
takes every unit waiting, runs them in one :meth:`Store.batch` (a savepoint per unit, so one
unit's failure undoes only that unit; a unit alone needs none) and commits once; the others
wait for their unit's outcome. When its own unit is done the leader hands the lead to the
next waiting thread, so no caller serves others for long. Nothing waits on a timer: under
light load a batch is one unit and costs what a plain transaction costs; under load batches
grow by themselves.

A unit's result is returned to its caller only after the batch committed: the caller may then
answer its peer (a receipt is sent only for what is durable).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection

from gateway.crashpoints import crash_point
from gateway.store.engine import Store

T = TypeVar("T")

MAX_UNITS_PER_BATCH = 64
"""Units one commit takes at most: enough to amortise the commit under any load this node
sees, few enough that one batch holds the write lock (SQLite) for milliseconds, not longer."""


@dataclass(eq=False)
class _Unit(Generic[T]):
    work: Callable[[Connection], T]
    key: Any
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    """Set when the previous leader hands the lead to this unit's thread."""
    result: Any = None
    error: BaseException | None = None


class GroupCommitter:
    """Runs units of work in shared transactions (see the module's theory of operation)."""

    def __init__(self, store: Store, *, max_units: int = MAX_UNITS_PER_BATCH) -> None:
        self._store = store
        self._max_units = max_units
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiting: deque[_Unit[Any]] = deque()
        self._leading = False
        self.batches = 0
        """Transactions committed so far (for metrics and tests)."""
        self.units = 0

    def run(self, work: Callable[[Connection], T], *, key: Any = None) -> T:
        """Run ``work(conn)`` in a shared transaction; return its result once committed, or
        raise what it raised (its unit alone rolled back) or what the commit raised."""
        unit: _Unit[T] = _Unit(work, key)
        with self._lock:
            self._waiting.append(unit)
            if self._leading:
                while not unit.done.is_set() and not unit.lead:
                    self._changed.wait()
            else:
                self._leading = True
                unit.lead = True
        if unit.lead and not unit.done.is_set():
            self._lead(unit)
        if unit.error is not None:
            raise unit.error
        return unit.result  # type: ignore[no-any-return]

    def _lead(self, own: _Unit[Any]) -> None:
        while not own.done.is_set():
            with self._lock:
                batch = [
                    self._waiting.popleft() for _ in range(min(self._max_units, len(self._waiting)))
                ]
            self._commit(batch)
        with self._lock:
            if self._waiting:
                self._waiting[0].lead = True  # the next thread in line leads from here
            else:
                self._leading = False
            self._changed.notify_all()

    def _commit(self, batch: list[_Unit[Any]]) -> None:
        try:
            with self._written(batch):
                crash_point("commit.batch")
            crash_point("commit.done")
        except BaseException as exc:  # the commit (or the connection) failed: every unit did
            for unit in batch:
                unit.error = exc
                unit.result = None
        with self._lock:
            self.batches += 1
            self.units += len(batch)
            for unit in batch:
                unit.done.set()
            self._changed.notify_all()

    @contextmanager
    def _written(self, batch: list[_Unit[Any]]) -> Iterator[None]:
        """Run the batch's units in one transaction; the caller's block runs after them, just
        before the commit.

        A unit alone (any light load) runs in a plain transaction: no savepoint to open and
        release, since rolling the transaction back undoes exactly this unit. Its exception
        reaches :meth:`_commit`, which records it as the unit's outcome, as a savepoint's
        rollback would have."""
        if len(batch) == 1:
            (unit,) = batch
            with self._store.transaction() as conn:
                unit.result = unit.work(conn)
                yield
            return
        with self._store.batch() as shared:
            for unit in batch:
                with shared.unit(unit.key) as conn:
                    unit.result = unit.work(conn)
            for unit, outcome in zip(batch, shared.outcomes, strict=True):
                unit.error = outcome.error
            yield


__all__ = ["MAX_UNITS_PER_BATCH", "GroupCommitter"]

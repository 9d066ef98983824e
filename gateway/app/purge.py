"""The nightly purge: destroy what retention says is old enough (CIS Art. 9.6), and prove it.

Theory of operation
-------------------
1. **Plan** (:func:`plan`): walk every stored message in storage order, a page of facts at a
   time (:data:`SCAN_PAGE`; never the whole store in memory), and decide each one with the
   node's policies (``retention.expires_at``: the policy's event — received, conversation
   closed, proceeding closed — plus its period, against the caller's ``now``). An expired
   message is purged unless its conversation is under a legal hold or it still waits in the
   outbox (undelivered); those are counted, not purged.
2. **Purge** (:func:`run_purge`): the plan runs in a reader thread up to two pages ahead
   (:class:`_ScanAhead`; for a large SQLite store in a child process, :class:`_ScanProcess`),
   and expired messages go in transactions of :data:`PURGE_BATCH`
   (10,000). The transaction's messages are locked and decided *again* on the locked facts (a
   hold placed since the scan wins), then tombstoned and destroyed set-based
   (``store.purge.purge_batch``: tombstones in bulk inserts, every 1,000 of them a batch bound
   by ONE ``purge.batch`` audit event carrying their count and hash, wrapped data keys
   deleted — crypto-shredding — then every row of the messages, one statement per table over
   the transaction's id set). A kill at any point loses at most the open transaction: every
   message is whole or tombstoned (crash points ``purge.batch`` inside a transaction,
   ``purge.committed`` between two). A run found still
   ``running`` at the next start was interrupted: it is closed as failed (``interrupted``)
   with a signed report of what it did; the new run then purges the rest. Running twice
   purges nothing twice (idempotent).
3. **Shred** (:func:`shred_periods`, once after the batches): every retention period key some
   of whose messages were just purged is destroyed, after the data keys it still wraps (kept,
   held, undelivered messages of the same week) are re-wrapped under a new generation: no
   copy of the store can then open the purged messages' data keys with the KEK.
4. **Report**: counts by policy (from the run's tombstones, so exact even across a resume),
   held and undelivered counts, duration, errors, the policy set's hash and periods, the
   run's tombstone and batch counts and ``tombstones_sha256``, the SHA-256 over its batch
   digests in batch order (``store.purge.runs_digest``; what :func:`verify_report` recomputes
   from the rows); canonical JSON signed with the body's seal
   (``gateway.crypto.statements.sign_statement``) and stored (``purge_reports``).

The dry run (``plan`` alone) lists the same decisions the real run then executes.
Callers take the ``purge`` job lock (the scheduler does; ``gateway purge`` does too): one run
at a time, or the interrupted-run recovery could close a live run.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import multiprocessing
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection as Pipe
from typing import Any, cast

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.app import signing
from gateway.app.audit import seal_signers
from gateway.app.context import AppContext, require
from gateway.app.locks import default_owner, job_lock
from gateway.app.retention import (
    ConversationEvents,
    Expiry,
    MessageDirection,
    MessageFacts,
    PolicySet,
    RetentionPolicy,
    expiry_under,
)
from gateway.app.tombstone_check import check_tombstones
from gateway.crashpoints import crash_point
from gateway.crypto.keys.generations import Signer
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.kek_ring import load_kek_ring
from gateway.crypto.keys.keystore import KeyRole, KeyStore, SigningKey
from gateway.crypto.statements import StatementCheck, sign_statement, verify_statement
from gateway.crypto.timestamps import timestamp_or_none, timestamped_before
from gateway.crypto.trust import TrustList
from gateway.exchange import service
from gateway.exchange.existence import CLOCK_DISORDER, event_proven
from gateway.model.ids import time_ordered_uuid
from gateway.model.problems import GatewayError
from gateway.store import Store, open_store, period_keys
from gateway.store import audit as audit_store
from gateway.store import purge as purge_store
from gateway.store.period_keys import ShredResult
from gateway.store.purge import (
    LockedMessage,
    PurgedBatch,
    PurgeRun,
    RetentionFacts,
    StoredReport,
)

log = logging.getLogger(__name__)

PURGE_JOB = "purge"
"""The purge's lock name: the scheduled job's (gateway.app.scheduled.PURGE)."""

MAX_PURGE_BATCH = purge_store.MAX_PURGE_TRANSACTION
"""The most messages a run may be asked to purge per transaction (the store's bound)."""
SCAN_PAGE = purge_store.MAX_SCAN_BATCH
"""Facts read per query while planning: a few hundred KiB, whatever the store's size."""
PURGE_BATCH = purge_store.MAX_PURGE_TRANSACTION
"""Messages destroyed per transaction, bound by one ``purge.batch`` event per
``store.purge.MAX_PURGE_BATCH`` (1,000) of them. The transaction's statements each work on
its whole id set, so the statements, their plans and the commit are shared by all; on SQLite
the commit writes each index page it changed into the log once, and a million random ids
touch most pages of every index in each transaction whatever its size: 10,000 a transaction
writes a tenth of the pages 1,000 did. The price: SQLite's single writer is held for about a
second (docs/purge-and-audit.md; benchmarks/purge_bench.py)."""
MAX_BATCH_ERRORS = 10
"""A run that failed this many batches stops: the database is likely unwell, and the next
run resumes where this one stopped. (A transaction already in flight beside the last failed
one still ends, so a run with two writers may count one more.)"""
REPORT_FORMAT = "gateway-purge-report/2"
"""/2: ``tombstones_sha256`` is over the run's batch digests (``store.purge.runs_digest``);
/1 (before 0012) was over every leaf in message-id order: still verified."""
RUN_POLICY_LABEL = "retention-policies"
"""``purge_runs.policy`` of a run that applies the whole policy set (per-policy counts are
in the tombstones and the report)."""
INTERRUPTED = "interrupted"
PURGE_GC_THRESHOLD = 50_000
"""The cyclic garbage collector's youngest-generation threshold while a run goes (Python's
default is 700). A run allocates hundreds of container objects per message (rows, facts,
decisions), almost all freed by reference counting; at 700 the collector ran a quarter of a
million times per 300,000 messages and took a third of the run's CPU (docs/benchmarks.md).
Process-wide while the run lasts, then restored: the other threads' young cycles wait for
50,000 allocations instead of 700, a few megabytes at most."""


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's first threshold to :data:`PURGE_GC_THRESHOLD` for the block."""
    first, *older = gc.get_threshold()
    gc.set_threshold(max(first, PURGE_GC_THRESHOLD), *older)
    try:
        yield
    finally:
        gc.set_threshold(first, *older)


class Action:
    """What the plan does with an expired message."""

    PURGE = "purge"
    HELD = "held"
    """Kept: its conversation is under a legal hold."""
    UNDELIVERED = "undelivered"
    """Kept: still waiting in the outbox."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One expired message and what happens to it (a line of the dry run)."""

    message_id: str
    conversation_id: str
    kind: str
    direction: str
    party: str
    policy: str
    expires_at: datetime
    action: str
    """:class:`Action` value."""


PolicyChoice = dict[tuple[str, str, str, str], RetentionPolicy | None]
"""The policy chosen per (agreement, kind, direction, party): what ``PolicySet.select``
depends on. A store holds a handful of those for millions of messages, so a walk over it
chooses once per combination (:func:`decide`'s ``chosen``)."""


def _expiry(
    policies: PolicySet, facts: RetentionFacts, party: str, chosen: PolicyChoice | None
) -> Expiry:
    key = (facts.agreement, facts.kind, facts.direction, party)
    if chosen is not None and key in chosen:
        policy = chosen[key]
    else:
        policy = policies.select(
            MessageFacts(
                agreement=facts.agreement,
                kind=facts.kind,
                direction=MessageDirection(facts.direction),
                sender=facts.sender,
                recipient=facts.recipient,
                stored_at=facts.stored_at,
            )
        )
        if chosen is not None:
            chosen[key] = policy
    return expiry_under(
        policy,
        facts.stored_at,
        ConversationEvents(facts.conversation_closed_at, facts.proceeding_closed_at),
    )


def decide(
    policies: PolicySet,
    facts: RetentionFacts,
    now: datetime,
    chosen: PolicyChoice | None = None,
) -> Decision | None:
    """The decision on one message at ``now``; None while it is not expired. ``chosen``: the
    policies chosen so far under ``policies`` (filled as it goes), for a caller deciding many
    messages."""
    party = facts.sender if facts.direction == MessageDirection.IN else facts.recipient
    expiry = _expiry(policies, facts, party, chosen)
    if not expiry.expired(now):
        return None
    assert expiry.at is not None  # expired() implies a time
    action = (
        Action.HELD
        if facts.held
        else Action.UNDELIVERED
        if facts.pending_delivery
        else Action.PURGE
    )
    return Decision(
        facts.message_id,
        facts.conversation_id,
        facts.kind,
        facts.direction,
        party,
        expiry.policy,
        expiry.at,
        action,
    )


def plan(
    store: Store, policies: PolicySet, now: datetime, *, page: int = SCAN_PAGE
) -> Iterator[Decision | int]:
    """Walk the store; yield a :class:`Decision` per expired message, and after each page the
    count of messages examined in it (for progress). Each page is its own short read
    transaction; memory holds one page."""
    for item in _expired(store, policies, now, page):
        yield item if isinstance(item, int) else item[1]


def _expired(
    store: Store, policies: PolicySet, now: datetime, page: int = SCAN_PAGE
) -> Iterator[tuple[RetentionFacts, Decision] | int]:
    """:func:`plan`, each decision with the facts it was made on (the run reuses it when the
    locked facts are the same)."""
    _check_now(now)
    after = 0
    chosen: PolicyChoice = {}
    while True:
        with store.read() as conn:
            facts = purge_store.scan(conn, after=after, limit=page)
        for f in facts:
            decision = decide(policies, f, now, chosen)
            if decision is not None:
                yield f, decision
        if facts:
            yield len(facts)
        if len(facts) < page:
            return
        after = facts[-1].position


SCAN_AHEAD_PAGES = 2
"""Pages of decisions the reader thread may hold ready: the batch writer never waits for the
scan, and memory holds at most this many pages more."""
_END = object()


class _ScanAhead:
    """:func:`_expired` run by a reader thread, up to :data:`SCAN_AHEAD_PAGES` pages ahead.

    While the run's thread waits on the database for a batch's statements, the reader reads
    and decides the next pages on its own connection: the client's work and the database's
    overlap instead of taking turns (on PostgreSQL the server works on another core; on
    SQLite the engine releases the GIL while it runs a statement). The reader only ever reads,
    in short transactions of its own, ahead of the batches: what it yields is decided again
    under the batch's locks when anything changed since."""

    def __init__(self, store: Store, policies: PolicySet, now: datetime) -> None:
        self._pages: queue.Queue[object] = queue.Queue(maxsize=SCAN_AHEAD_PAGES)
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._read, args=(store, policies, now), name="purge-scan", daemon=True
        )
        self._thread.start()

    def _read(self, store: Store, policies: PolicySet, now: datetime) -> None:
        page: list[tuple[RetentionFacts, Decision] | int] = []
        try:
            for item in _expired(store, policies, now):
                page.append(item)
                if isinstance(item, int):  # the end of a page
                    if not self._put(page):
                        return
                    page = []
            self._put(page)
        except BaseException as exc:  # handed to the run's thread, which raises it
            self._put(exc)
        finally:
            self._put(_END)

    def _put(self, item: object) -> bool:
        while not self._stopping.is_set():
            try:
                self._pages.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[tuple[RetentionFacts, Decision] | int]:
        try:
            while (page := self._pages.get()) is not _END:
                if isinstance(page, BaseException):
                    raise page
                yield from cast(list[tuple[RetentionFacts, Decision] | int], page)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop the reader (the run stops early, or has read everything) and wait for it."""
        self._stopping.set()
        self._thread.join()


SCAN_PROCESS_FROM = 200_000
"""SQLite stores holding at least this many messages are walked by a child process
(:class:`_ScanProcess`) instead of a thread. SQLite works inside this process, so the batches
and the walk otherwise take turns for one interpreter lock while the second core idles; in a
child, the walk's reading and deciding run on that core (300,000 messages: 34.4–35.1 s with the
thread, 26.4–27.7 s with the child; docs/benchmarks.md). Not on PostgreSQL: its server already
works on the second core, and the child's extra CPU (pickling, its own statements) only took
from it. Below the threshold the child's start (about a second of imports) costs more than it
saves."""


class _ScanProcess:
    """:func:`_expired` run by a child process (``spawn``: a clean interpreter, never a fork
    of the node's threads) on its own connection, a page at a time through a pipe.

    A page travels as plain tuples (:func:`_page_row`): rebuilding them here costs a few
    microseconds a message, where unpickling the facts and decisions as objects cost 17. The
    pipe's buffer is the read-ahead: the child waits in ``send`` until this side takes the
    page. The database URL, password included, goes through the pipe that ``spawn`` uses for
    the child's arguments, never on its command line."""

    def __init__(self, store: Store, policies: PolicySet, now: datetime) -> None:
        context = multiprocessing.get_context("spawn")
        self._pages, sender = context.Pipe(duplex=False)
        url = store.engine.url.render_as_string(hide_password=False)
        self._process = context.Process(
            target=_scan_in_child, args=(url, policies, now, sender), name="purge-scan"
        )
        self._process.start()
        sender.close()  # this side only reads: the child's end closing is the end of pages

    def __iter__(self) -> Iterator[tuple[RetentionFacts, Decision] | int]:
        try:
            while True:
                try:
                    sent = self._pages.recv()
                except EOFError:
                    self._process.join(5)
                    raise RuntimeError(
                        f"the purge's scan process ended early (exit code {self._process.exitcode})"
                    ) from None
                if sent is None:
                    return
                if isinstance(sent, str):
                    raise RuntimeError(f"the purge's scan process failed: {sent}")
                rows, examined = sent
                yield from _page_items(rows)
                yield examined
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop the child (the run stops early, or has read everything) and wait for it."""
        self._pages.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def _scan_in_child(url: str, policies: PolicySet, now: datetime, pages: Pipe) -> None:
    store = open_store(url)
    try:
        rows: list[tuple[Any, ...]] = []
        for item in _expired(store, policies, now):
            if isinstance(item, int):  # the end of a page
                pages.send((rows, item))
                rows = []
            else:
                rows.append(_page_row(*item))
        pages.send(None)
    except (BrokenPipeError, KeyboardInterrupt):  # the run stopped reading: nothing to say
        pass
    except Exception as exc:  # told to the run, which raises it
        pages.send(f"{type(exc).__name__}: {exc}")
    finally:
        store.dispose()
        pages.close()


def _page_row(facts: RetentionFacts, decision: Decision) -> tuple[Any, ...]:
    """A scanned message as plain values: its facts, then what the decision adds to them."""
    return (*facts, decision.party, decision.policy, decision.expires_at, decision.action)


_FACTS = len(RetentionFacts._fields)


def _page_items(rows: list[tuple[Any, ...]]) -> Iterator[tuple[RetentionFacts, Decision]]:
    """:func:`_page_row` undone."""
    for row in rows:
        facts = RetentionFacts._make(row[:_FACTS])
        party, policy, expires_at, action = row[_FACTS:]
        yield (
            facts,
            Decision(
                facts.message_id,
                facts.conversation_id,
                facts.kind,
                facts.direction,
                party,
                policy,
                expires_at,
                action,
            ),
        )


def _check_now(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now={now!r} is naive; pass an aware time (UTC)")


# --- the run --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    examined: int
    total: int
    """Messages stored when the run started (an estimate: receiving goes on)."""
    purged: int


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """The signed result of one run (``report`` is what the signature covers)."""

    run_id: str
    state: str
    """``finished`` or ``failed``."""
    purged_by_policy: dict[str, int]
    held_by_policy: dict[str, int]
    undelivered: int
    examined: int
    duration_ms: int
    errors: dict[str, int]
    """Error code (exception type, or ``interrupted``) → batches it failed."""
    report: str
    """Canonical JSON of all of the above and the times; signed."""
    signature: bytes
    certificate: bytes
    timestamp: bytes | None = None
    """A TSA's token over the signature's SHA-256, when ``[tsa] url`` gave one."""

    @property
    def purged(self) -> int:
        return sum(self.purged_by_policy.values())


@dataclass(slots=True)
class _Tally:
    examined: int = 0
    held: Counter[str] = field(default_factory=Counter)
    undelivered: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    purged: int = 0
    batches: list[PurgedBatch] | None = field(default_factory=list)
    """Each committed batch (its number and digest), in the order transactions committed; the
    report's ``tombstones_sha256`` is over their digests in batch-number order. None for a run
    closed after an interruption: recomputed from its rows then."""
    shredded: ShredResult | None = None
    """Period keys this run destroyed (None: the run did not shred)."""

    def stopped(self) -> bool:
        """Too many batches failed: the run stops (:data:`MAX_BATCH_ERRORS`)."""
        return sum(self.errors.values()) >= MAX_BATCH_ERRORS

    def merge(self, outcome: _BatchOutcome) -> None:
        """Count what one transaction did (the run's thread only)."""
        self.held.update(outcome.held)
        self.undelivered += outcome.undelivered
        if outcome.error is not None:
            self.errors[outcome.error] += 1
        assert self.batches is not None
        self.batches.extend(outcome.bound)
        self.purged += sum(bound.count for bound in outcome.bound)

    def batch_digests(self) -> list[bytes]:
        assert self.batches is not None
        return [bound.sha256 for bound in sorted(self.batches, key=lambda bound: bound.batch)]


def shred_periods(store: Store, keys: KekRing, *, actor: str, now: datetime) -> ShredResult:
    """Once per run, after its batches: destroy every retention period key some of whose
    messages were purged, after carrying its survivors (kept, held, undelivered) into a new
    generation of the same week's key (``gateway.store.period_keys``). Separate from the
    batches on purpose: a batch deletes rows, this step destroys keys."""
    result = period_keys.shred_dirty_periods(store, keys, actor=actor, now=now)
    if result.destroyed:
        log.info(
            "purge: %d period key(s) destroyed, %d kept data key(s) re-wrapped out of them",
            len(result.destroyed),
            result.carried,
        )
    return result


def run_purge(
    store: Store,
    policies: PolicySet,
    now: datetime,
    *,
    seal: SigningKey,
    actor: str,
    batch_size: int = PURGE_BATCH,
    progress: Callable[[Progress], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    scheduled_for: datetime | None = None,
    keys: KekRing | None = None,
    writers: int | None = None,
    scan_process_from: int = SCAN_PROCESS_FROM,
    timestamper: Any = None,
) -> PurgeReport:
    """Purge every message expired at ``now``; return the signed, stored report.

    ``timestamper`` (``[tsa] url``, :func:`gateway.app.signing.timestamper`): the report then
    also gets a TSA's token over its signature, asked after the run's last transaction (a TSA
    that does not answer leaves the report without one, logged): its time then stays provable
    whatever later happens to the seal.

    ``scan_process_from``: from how many stored messages the walk of a SQLite store runs in a
    child process (:data:`SCAN_PROCESS_FROM`; tests set 0 to take that path on a small store).

    ``writers``: purge transactions in flight at once (default :func:`writer_count`: 2 on
    PostgreSQL, 1 on SQLite).

    ``keys``: the node's KEK ring. With it, the run ends by destroying the retention period
    keys its purges emptied (:func:`shred_periods`); without it (tests of the batches alone)
    the wrapped data keys are deleted but no period key is destroyed.

    ``now`` is the retention instant (and the tombstones' ``purged_at``); the run's duration is
    measured, not derived from it. ``scheduled_for``: the slot of a scheduled run (the report
    then tells a catch-up run from an on-time one); None for a run by hand.
    ``on_batch(purged_so_far)`` is called after each committed
    batch (benchmarks sample memory there). The caller holds the ``purge`` job lock.
    """
    _check_now(now)
    if not 1 <= batch_size <= MAX_PURGE_BATCH:
        raise ValueError(f"batch_size must be 1..{MAX_PURGE_BATCH}")
    writers = writer_count(store) if writers is None else writers
    if not 1 <= writers <= PURGE_WRITERS:
        raise ValueError(f"writers must be 1..{PURGE_WRITERS}")
    _close_interrupted(store, now, seal)
    started = time.monotonic()
    run_id = time_ordered_uuid()
    with store.transaction() as conn:
        purge_store.start_run(
            conn,
            run_id,
            RUN_POLICY_LABEL,
            actor,
            now,
            policy_sha256=policies.sha256,
            policy_source=policies.source,
            below_minimum=policies.below_minimum(),
        )
        total = purge_store.count_messages(conn)
    tally = _Tally()
    pool = _Writers(store, policies, now, run_id, actor, writers)

    def settle(outcome: _BatchOutcome) -> None:
        tally.merge(outcome)
        if on_batch is not None:
            on_batch(tally.purged)

    in_child = total >= scan_process_from and store.engine.dialect.name == "sqlite"
    walk = _ScanProcess if in_child else _ScanAhead
    try:
        with fewer_collections():
            try:
                _drive(walk(store, policies, now), pool, settle, tally, batch_size, total, progress)
            finally:
                pool.close(settle)
    except Exception as exc:
        tally.errors[f"stopped: {type(exc).__name__}"] += 1
        _close_stopped(store, run_id, now, started, tally, seal, policies, scheduled_for)
        raise
    if keys is not None:
        tally.shredded = shred_periods(store, keys, actor=actor, now=now)
    if progress is not None:
        progress(Progress(tally.examined, total, tally.purged))
    duration_ms = int((time.monotonic() - started) * 1000)
    report = _finish(
        store, run_id, now, duration_ms, tally, seal, policies, scheduled_for=scheduled_for
    )
    return report if timestamper is None else _timestamped(store, report, timestamper)


def _timestamped(store: Store, report: PurgeReport, timestamper: Any) -> PurgeReport:
    token = timestamp_or_none(report.signature, timestamper, f"purge report {report.run_id}")
    if token is None:
        return report
    with store.transaction() as conn:
        purge_store.set_report_timestamp(conn, report.run_id, token)
    return replace(report, timestamp=token)


def _drive(
    ahead: _ScanAhead | _ScanProcess,
    pool: _Writers,
    settle: Callable[[_BatchOutcome], None],
    tally: _Tally,
    batch_size: int,
    total: int,
    progress: Callable[[Progress], None] | None,
) -> None:
    """Hand the walk's expired messages to the writers, ``batch_size`` a transaction; count
    the kept ones and the pages examined. Stops early when too many transactions failed."""
    batch: dict[str, tuple[RetentionFacts, Decision]] = {}
    try:
        for item in ahead:
            if isinstance(item, int):
                tally.examined += item
                if progress is not None:
                    progress(Progress(tally.examined, total, tally.purged))
                continue
            facts, decision = item
            if decision.action == Action.HELD:
                tally.held[decision.policy] += 1
            elif decision.action == Action.UNDELIVERED:
                tally.undelivered += 1
            else:
                batch[facts.message_id] = item
                if len(batch) >= batch_size:
                    if not _submit(pool, batch, settle, tally):
                        return
                    batch = {}
    finally:
        ahead.stop()
    if batch:
        _submit(pool, batch, settle, tally)


def _submit(
    pool: _Writers,
    batch: dict[str, tuple[RetentionFacts, Decision]],
    settle: Callable[[_BatchOutcome], None],
    tally: _Tally,
) -> bool:
    """Start a transaction on ``batch`` once a writer is free; False when the run stopped."""
    pool.make_room(settle)
    if tally.stopped():
        return False
    pool.submit(batch)
    return True


def _close_stopped(
    store: Store,
    run_id: str,
    now: datetime,
    started: float,
    tally: _Tally,
    seal: SigningKey,
    policies: PolicySet,
    scheduled_for: datetime | None,
) -> None:
    """The run stopped on an exception (its walk failed, a caller's callback raised): close it
    now as failed, with a signed report of what its committed transactions purged, rather
    than leave it ``running`` until the next run closes it as interrupted. When even that
    fails (the database is gone), the next run does close it."""
    duration_ms = int((time.monotonic() - started) * 1000)
    try:
        _finish(store, run_id, now, duration_ms, tally, seal, policies, scheduled_for=scheduled_for)
    except Exception:
        log.exception("purge run %s stopped and could not be closed; the next run will", run_id)


PURGE_WRITERS = 2
"""Purge transactions in flight at once on PostgreSQL: while one waits on the server, the
other's statements run on another core (the server's work per message is most of a
purge's). Their batches never share a message; a conversation of both is locked by the first
and waited for by the second, in id order (no deadlock); the audit head, the run's row and the
state counts are written last, so the two serialise only at their ends. SQLite has one writer:
one transaction at a time there."""


def writer_count(store: Store) -> int:
    """Purge transactions a run keeps in flight on this store by default."""
    return PURGE_WRITERS if store.engine.dialect.name == "postgresql" else 1


@dataclass(slots=True)
class _BatchOutcome:
    """What one purge transaction did (made in a writer thread, merged by the run's)."""

    bound: list[PurgedBatch] = field(default_factory=list)
    held: Counter[str] = field(default_factory=Counter)
    undelivered: int = 0
    error: str | None = None


class _BatchNumbers:
    """The run's batch numbers, handed out in order to the transactions as they decide how
    many ``purge.batch`` events they bind (a transaction rolled back leaves a gap: the
    report and ``audit verify`` go by the numbers the rows and events carry)."""

    def __init__(self) -> None:
        self._next = 1
        self._lock = threading.Lock()

    def take(self, count: int) -> int:
        with self._lock:
            first, self._next = self._next, self._next + count
            return first


class _Writers:
    """Purge transactions run by up to ``count`` threads, each on its own connection; results
    are settled in submission order by the run's thread (its tally is never shared)."""

    def __init__(
        self,
        store: Store,
        policies: PolicySet,
        now: datetime,
        run_id: str,
        actor: str,
        count: int,
    ) -> None:
        hashes = policies.policy_sha256()  # once per run, not per transaction
        self._job = (store, policies, hashes, now, run_id, actor, _BatchNumbers())
        self._count = count
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="purge-write")
        self._pending: deque[Future[_BatchOutcome]] = deque()

    def make_room(self, settle: Callable[[_BatchOutcome], None]) -> None:
        """Settle the oldest transactions until another may start."""
        while len(self._pending) >= self._count:
            self._settle_oldest(settle)

    def submit(self, scanned: dict[str, tuple[RetentionFacts, Decision]]) -> None:
        """Start a transaction on these messages (after :meth:`make_room`)."""
        self._pending.append(self._pool.submit(_purge_one_batch, *self._job, scanned))

    def _settle_oldest(self, settle: Callable[[_BatchOutcome], None]) -> None:
        outcome = self._pending.popleft().result()
        # Between two transactions of the run: this one committed (or failed), none is open
        # in this thread.
        crash_point("purge.committed")
        settle(outcome)

    def close(self, settle: Callable[[_BatchOutcome], None]) -> None:
        try:
            while self._pending:
                self._settle_oldest(settle)
        finally:
            self._pool.shutdown(wait=True)


def _purge_one_batch(
    store: Store,
    policies: PolicySet,
    policy_hashes: dict[str, str],
    now: datetime,
    run_id: str,
    actor: str,
    numbers: _BatchNumbers,
    scanned: Mapping[str, tuple[RetentionFacts, Decision]],
) -> _BatchOutcome:
    outcome = _BatchOutcome()
    events_per_batch = min(len(scanned), purge_store.MAX_PURGE_BATCH)
    try:
        with store.transaction() as conn:
            locked = purge_store.lock_batch(
                conn, list(scanned), {mid: facts for mid, (facts, _) in scanned.items()}
            )
            decided: list[tuple[LockedMessage, str]] = []
            for message in locked:
                facts, earlier = scanned[message.facts.message_id]
                # Decided again only if something changed since the scan (a hold placed, the
                # conversation closed or reopened): the same facts give the same decision.
                decision = (
                    earlier if facts == message.facts else decide(policies, message.facts, now)
                )
                if decision is None:
                    continue  # no longer expired (e.g. a proceeding reopened): kept
                if decision.action == Action.PURGE:
                    decided.append((message, decision.policy))
                elif decision.action == Action.HELD:
                    outcome.held[decision.policy] += 1  # a hold placed since the scan
                else:
                    outcome.undelivered += 1
            outcome.bound = purge_store.purge_batch(
                conn,
                decided,
                run_id=run_id,
                actor=actor,
                now=now,
                policy_sha256=policy_hashes,
                batch_size=events_per_batch,
                first_batch=numbers.take(-(-len(decided) // events_per_batch)),
            )
    except sa.exc.SQLAlchemyError as exc:
        outcome = _BatchOutcome(error=type(exc).__name__)
        log.error(
            "purge run %s: a batch of %d failed (%s); continuing",
            run_id,
            len(scanned),
            outcome.error,
        )
    return outcome


def _finish(
    store: Store,
    run_id: str,
    now: datetime,
    duration_ms: int,
    tally: _Tally,
    seal: SigningKey,
    policies: PolicySet | None,
    *,
    examined_known: bool = True,
    scheduled_for: datetime | None = None,
) -> PurgeReport:
    error_code = next(iter(tally.errors), None)
    finished_at = now + timedelta(milliseconds=duration_ms)
    with store.transaction() as conn:
        # Locked first: a transaction of the run still in flight (a run closed as interrupted
        # by another that took the job lock over) commits before its tombstones are counted.
        run = purge_store.get_run(conn, run_id, for_update=True)
        assert run is not None
        by_policy = purge_store.purged_by_policy(conn, run_id)
        if tally.batches is None:
            tombstone_count, batches, tombstones_sha256 = purge_store.run_digest_from_rows(
                conn, run_id
            )
        else:
            tombstone_count = tally.purged
            batches = len(tally.batches)
            tombstones_sha256 = purge_store.runs_digest(tally.batch_digests())
        body = {
            "format": REPORT_FORMAT,
            "body_id": seal.body_id,
            "run_id": run_id,
            "actor": run.actor,
            "state": "failed" if error_code else "finished",
            "retention_now": now.astimezone(UTC).isoformat(),
            "scheduled_for": scheduled_for.astimezone(UTC).isoformat() if scheduled_for else None,
            "started_at": run.started_at.astimezone(UTC).isoformat(),
            "finished_at": finished_at.astimezone(UTC).isoformat(),
            "duration_ms": duration_ms,
            "policy_source": policies.source if policies else "unknown",
            # The rule applied, bound to what it destroyed: an interrupted run closed later
            # names the hash its start recorded.
            "policy_set_sha256": policies.sha256 if policies else run.policy_sha256,
            "policies": policies.periods() if policies else {},
            "tombstones": tombstone_count,
            "batches": batches,
            "tombstones_sha256": tombstones_sha256,
            "examined": tally.examined if examined_known else None,
            "purged": sum(by_policy.values()),
            "purged_by_policy": by_policy,
            "held_by_policy": dict(tally.held),
            "undelivered": tally.undelivered,
            "errors": dict(tally.errors),
            "period_keys_destroyed": (
                list(tally.shredded.destroyed) if tally.shredded is not None else None
            ),
            "data_keys_carried": tally.shredded.carried if tally.shredded is not None else None,
        }
        signed = sign_statement(seal, body)
        purge_store.store_report(
            conn,
            run_id,
            signed_at=finished_at,
            report=signed.statement,
            signature=signed.signature,
            certificate=signed.certificate,
        )
        # Closed after the report exists, so that the audit event can carry its hash.
        purge_store.finish_run(
            conn,
            run_id,
            finished_at,
            held=sum(tally.held.values()),
            error_code=error_code,
            report_sha256=hashlib.sha256(signed.statement.encode()).hexdigest(),
        )
        run = purge_store.get_run(conn, run_id)
        assert run is not None
    log.info(
        "purge run %s %s: %d purged %s, %d held, %d undelivered, %d ms",
        run_id,
        run.state,
        body["purged"],
        by_policy,
        sum(tally.held.values()),
        tally.undelivered,
        duration_ms,
    )
    return PurgeReport(
        run_id,
        run.state,
        by_policy,
        dict(tally.held),
        tally.undelivered,
        tally.examined,
        duration_ms,
        dict(tally.errors),
        signed.statement,
        signed.signature,
        signed.certificate,
    )


def _close_interrupted(store: Store, now: datetime, seal: SigningKey) -> list[PurgeReport]:
    """Close runs left ``running`` by a killed process (failed, ``interrupted``) with a signed
    report of what they purged; the current run does the rest."""
    with store.read() as conn:
        stale = purge_store.running_runs(conn)
    reports = []
    for run_id in stale:
        log.warning("purge run %s was interrupted; closing it, this run finishes its work", run_id)
        tally = _Tally(errors=Counter({INTERRUPTED: 1}), batches=None)
        reports.append(_finish(store, run_id, now, 0, tally, seal, None, examined_known=False))
    return reports


# --- reading reports -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportCheck:
    run_id: str
    ok: bool
    reason: str
    report: dict[str, object]
    stored: bool = True
    """False when no report is stored for the run (``ok`` is False too)."""


def verify_report(
    store: Store, run_id: str, signers: Sequence[Signer] = (), trust: TrustList | None = None
) -> ReportCheck:
    """Check a stored report's seal signature (and, with ``signers``, that the signer is one of
    this body's seal generations and could sign at the time the report states) and that it
    belongs to ``run_id``. A report of a generation revoked for key compromise holds only with
    evidence the key holder could not write: its own TSA token, valid under ``trust`` and
    earlier than the revocation, or a signed audit checkpoint of a trusted generation, made
    before the revocation, covering the event that closed the run with this report's hash (or
    one of the compromised seal's own whose TSA timestamp is earlier)."""
    with store.read() as conn:
        stored = purge_store.get_report(conn, run_id)
    if stored is None:
        return ReportCheck(run_id, False, f"no report stored for run {run_id}", {}, stored=False)
    check = verify_statement(
        stored.report, stored.signature, stored.certificate, signers, time_field="finished_at"
    )
    report = json.loads(stored.report)
    if check.compromised_at is not None:
        if not _report_proven(store, stored, check, signers, trust):
            return ReportCheck(run_id, False, check.reason, report)
    elif not check.ok:
        return ReportCheck(run_id, False, check.reason, report)
    if report.get("run_id") != run_id:
        return ReportCheck(run_id, False, "the signed report names another run", report)
    if "tombstones_sha256" in report:
        problem = _check_run_tombstones(store, run_id, report)
        if problem:
            return ReportCheck(run_id, False, problem, report)
    return ReportCheck(run_id, True, "", report)


def _report_proven(
    store: Store,
    stored: StoredReport,
    check: StatementCheck,
    signers: Sequence[Signer],
    trust: TrustList | None,
) -> bool:
    """Evidence the holder of a seal revoked for key compromise could not write that the
    report existed before ``check.compromised_at``: its own TSA token, valid under ``trust``,
    earlier than that; or a trusted checkpoint made before it covering the event that closed
    the run naming this report's hash."""
    assert check.signed_at is not None and check.compromised_at is not None
    if (
        timestamped_before(stored.timestamp, stored.signature, check.compromised_at, trust)
        is not None
    ):
        return True
    digest = hashlib.sha256(stored.report.encode()).hexdigest()
    window = (check.signed_at - CLOCK_DISORDER, check.signed_at + CLOCK_DISORDER)
    with store.read() as conn:
        for kind in ("purge.finished", "purge.failed"):
            for event in audit_store.search(conn, kind=kind, since=window[0], until=window[1]):
                if (
                    event.subjects.get("purge_run_id") == stored.run_id
                    and event.details.get("report_sha256") == digest
                ):
                    proof = event_proven(conn, event.seq, signers, check.compromised_at, trust)
                    return proof is not None
    return False


def _check_run_tombstones(store: Store, run_id: str, report: dict[str, object]) -> str:
    """The run's tombstones recomputed against the signed report; on a mismatch, the chain's
    bindings name the row. Empty when they agree."""
    with store.read() as conn:
        if report.get("format") == "gateway-purge-report/1":
            count, digest = purge_store.run_tombstones_digest(conn, run_id)
        else:
            count, _batches, digest = purge_store.run_digest_from_rows(conn, run_id)
    if count == report.get("tombstones") and digest == report.get("tombstones_sha256"):
        return ""
    found = check_tombstones(store, run_id)
    where = f"{found.reason}" if found else "a tombstone was edited, deleted or added"
    return (
        f"the run's tombstones ({count}) do not hash to what the report signed "
        f"({report.get('tombstones')}): {where}"
    )


# --- the use cases of the command line, the local API and the console -------------------------


NOW_AHEAD_TOLERANCE = timedelta(minutes=5)
"""How far a run's evaluation time may lie ahead of the node's clock (the tolerance peers allow
a signing time): a run never looks further ahead, or it would destroy data before its period
ends; a dry run may."""


class PurgeRefused(ValueError):
    """A purge cannot be run as asked (a bad batch size, no seal to sign its report); the
    message names the field and what to do. Nothing was changed."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class PurgeLocked(RuntimeError):
    """Another process of the node holds the purge lock: that run goes on, this one did not
    start."""


@dataclass(frozen=True, slots=True)
class RunListing:
    run: PurgeRun
    signed: bool
    """A signed report is stored for the run."""


def _policies(ctx: AppContext) -> PolicySet:
    if ctx.config is None:
        raise PurgeRefused(
            "the node's configuration is needed for its retention policies", "CONFIG_INVALID"
        )
    return PolicySet.from_config(ctx.config)


def plan_purge(ctx: AppContext, now: datetime) -> Iterator[Decision | int]:
    """What a run at ``now`` would purge, keep held or keep undelivered, and why (``gateway
    purge --dry-run``); ints are progress counts of messages examined."""
    require(ctx, service.Action.READ_CONFIGURATION)
    return plan(ctx.store, _policies(ctx), now)


def run_purge_now(
    ctx: AppContext,
    keys: KeyStore | None,
    now: datetime,
    *,
    batch_size: int = PURGE_BATCH,
    progress: Callable[[Progress], None] | None = None,
) -> PurgeReport:
    """Run the purge by hand under the node-wide purge lock (one run at a time across the
    node's processes), signed with the seal in force; the actor is recorded as the run's.
    ``keys``: the node's (None: the context's). Raises :class:`PurgeRefused` or
    :class:`PurgeLocked`."""
    require(ctx, service.Action.RUN_PURGE)
    present = ctx.clock()
    if now > present + NOW_AHEAD_TOLERANCE:
        raise PurgeRefused(
            f"now: {now.isoformat()} is later than the present ({present.isoformat()}); a run "
            "destroys only what has expired by now (CIS Art. 9.6: kept for the whole period). "
            "See what a later date would destroy with a dry run (gateway purge --dry-run --now "
            "…)",
            "PURGE_NOW_IN_FUTURE",
        )
    policies = _policies(ctx)
    keys = keys or ctx.keys
    if keys is None:
        raise PurgeRefused(
            "the node's keys are needed to sign the run's report", "SEAL_UNAVAILABLE"
        )
    if not 1 <= batch_size <= MAX_PURGE_BATCH:
        raise PurgeRefused(f"batch_size: 1..{MAX_PURGE_BATCH} messages a transaction", "INVALID")
    try:
        # The report states its times from ``now`` (finished_at = now + duration): it is signed
        # by the generation in force then, or a run at a past ``now`` after a rotation would be
        # signed by a generation not yet in force at the time it states, and never verify. A
        # generation revoked since is refused (load at the present).
        generation = keys.active_generation(KeyRole.SEAL, "", min(now, present))
        seal = keys.load(KeyRole.SEAL, generation=generation, at=present)
    except (GatewayError, OSError) as exc:
        raise PurgeRefused(
            f"the seal is not loaded ({exc}): the run's report could not be signed",
            "SEAL_UNAVAILABLE",
        ) from exc
    try:
        ring = load_kek_ring(keys)
    except (GatewayError, OSError) as exc:
        raise PurgeRefused(
            f"the node's KEK is not loaded ({exc}): the retention period keys could not be "
            "destroyed (docs/purge-and-audit.md)",
            "KEK_UNAVAILABLE",
        ) from exc
    assert ctx.config is not None
    owner = default_owner(ctx.config.node.body_id)
    with job_lock(ctx.store.engine, PURGE_JOB, owner) as acquired:
        if not acquired:
            raise PurgeLocked("the purge runs on another process of the node (lock purge)")
        report = run_purge(
            ctx.store,
            policies,
            now,
            seal=seal,
            actor=ctx.actor.code,
            progress=progress,
            batch_size=batch_size,
            keys=ring,
            timestamper=signing.timestamper(ctx.config),
        )
    if not ctx.store.checkpoint_wal():
        log.warning(
            "the SQLite log is held by a reader: the purged rows leave gateway.db-wal at its "
            "next checkpoint"
        )
    return report


def list_runs(ctx: AppContext, limit: int = 20) -> list[RunListing]:
    """The latest purge runs, newest first, each with whether its signed report is stored."""
    require(ctx, service.Action.READ_CONFIGURATION)
    with ctx.store.read() as conn:
        runs = purge_store.list_runs(conn, limit=limit)
        return [RunListing(r, purge_store.get_report(conn, r.run_id) is not None) for r in runs]


def stored_report(ctx: AppContext, run_id: str) -> StoredReport | None:
    """The run's signed report as stored (bytes signed, signature, certificate), or None."""
    require(ctx, service.Action.READ_AUDIT, run_id)
    with ctx.store.read() as conn:
        return purge_store.get_report(conn, run_id)


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """A run's signed report as the files to check it by away from the node, with openssl
    alone (docs/purge-and-audit.md): the exact signed bytes, the DER signature, and the seal's
    certificate in PEM."""

    report_json: bytes
    signature: bytes
    seal_pem: bytes
    timestamp: bytes | None = None
    """The TSA's RFC 3161 token (DER) over the signature, when the report has one: ``openssl
    ts -verify -token_in -in report.tst -data report.sig -CAfile TSA-CA.pem`` checks it."""


def report_files(ctx: AppContext, run_id: str) -> ReportFiles | None:
    """The run's signed report as :class:`ReportFiles` (``gateway purge report --out``, the
    local API's ``GET …/purge-runs/{run_id}/report``), or None when none is stored."""
    stored = stored_report(ctx, run_id)
    if stored is None:
        return None
    certificate = x509.load_der_x509_certificate(stored.certificate)
    return ReportFiles(
        stored.report.encode("utf-8"),
        stored.signature,
        certificate.public_bytes(serialization.Encoding.PEM),
        stored.timestamp,
    )


def check_report(ctx: AppContext, run_id: str) -> ReportCheck:
    """:func:`verify_report` against this node's seal generations, as a use case (``gateway
    purge verify-report``)."""
    require(ctx, service.Action.READ_AUDIT, run_id)
    return verify_report(ctx.store, run_id, seal_signers(ctx), TrustList.configured(ctx.config))

"""The node's job scheduler: APScheduler 3.x (``AsyncIOScheduler``) inside ``gateway serve``.

Jobs (names are stable: they key the persistent job store and the job locks):

* ``purge``                — the nightly purge (CIS Art. 9.6), cron, default 02:30 node time;
* ``outbox-retry``         — the outbox retry sweep, every ``outbox_retry_seconds``;
* ``deadline-reminders``   — reminders of request deadlines (CIS Art. 12; SC Art. 6.1), daily;
* ``key-expiry-warnings``  — warnings about certificates nearing expiry, daily.

This module schedules; it does not know what the jobs do. Their bodies are injected callables
(``body(run: JobRun)``, sync or ``async``), wired by the service.

Theory of operation
-------------------
* **Persistent job store**: APScheduler's ``SQLAlchemyJobStore`` in the node's own database,
  table ``jobs_apscheduler`` (prefixed, apart from the store's tables). It remembers each job's
  next run time across restarts, so a run due while the node was down is not forgotten.
* **Catch-up, once**: every job has ``coalesce=True``; the daily jobs have no misfire grace
  limit. A node down at 02:30 for three nights runs the purge *once* when it comes back. At
  start, a job whose schedule is unchanged keeps its stored next run time (re-adding it with
  ``replace_existing`` alone would recompute it from now and silently drop the missed run).
* **One node at a time**: several nodes on one PostgreSQL share the job store table, so each
  run is normally picked up by one of them; when two pick the same run (APScheduler 3 does
  not coordinate schedulers), the job lock (:mod:`gateway.app.locks`) lets one run it and the
  other logs the skip. Every run of every job goes through the lock, on SQLite too.
* **Once per slot**: after taking the lock, a run claims its slot — the job and the time it
  was scheduled for — in ``jobs_slots`` (:mod:`gateway.app.slots`), whose primary key lets
  one claim win. A second process that picks the same run after the first released the lock,
  or a restart that replays it, finds the slot taken and skips it: timing no longer matters.
  The row then records the outcome, duration and count (``gateway jobs list``, ``/metrics``).
* Job bodies never run on the scheduler's bookkeeping path: a custom executor dispatches by
  job name to this instance's bodies, takes the lock in a worker thread, runs sync bodies in a
  thread and ``async`` bodies on the loop. (APScheduler 3 itself reads and updates its job
  table on the event loop at each due time; those are single-row statements.)
"""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
import pickle
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from gateway.app import slots
from gateway.app.locks import DEFAULT_LEASE, JobLock, advisory_key, default_owner
from gateway.app.schedule import TABLE_PREFIX, ScheduleSettings
from gateway.app.scheduled import (
    JOB_NAMES,
    OUTBOX_RETRY,
    JobRun,
    NodeLike,
    job_bodies,
)
from gateway.config import NodeConfig
from gateway.model.problems import ConfigurationError

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)


DAILY_MISFIRE_GRACE_SECONDS: int | None = None
"""No limit: a purge (or reminder, or warning) run late is always better than none, and
``coalesce`` makes the catch-up a single run however many were missed."""
SHUTDOWN_GRACE_SECONDS = 30.0
"""How long shutdown waits for running jobs before cancelling ``async`` ones. A purge batch is
one short transaction, so a run stopped here loses at most the batch in flight."""
LOCK_DB_TIMEOUT_SECONDS = 30
"""Lock statements run in a worker thread: like the store's busy timeout, wait for SQLite's
single writer (or a slow PostgreSQL connect) rather than lose a nightly run at once."""
JOB_STORE_DB_TIMEOUT_SECONDS = 5
"""APScheduler 3 reads and updates its job table on the event loop: a database that does not
answer may stall the service this long at most. APScheduler then retries after 10 s."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- what a job body gets, and what came of a run -----------------------------------------------


JobBody = Callable[[JobRun], Awaitable[Any] | Any]


class Outcome(StrEnum):
    RAN = "ran"
    SKIPPED = "skipped"
    """Another node held the job's lock (or this node has no body for the job)."""
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class JobOutcome:
    job: str
    scheduled_for: datetime
    outcome: Outcome
    started_at: datetime
    finished_at: datetime
    detail: str = ""
    """For SKIPPED: who holds the lock; for FAILED: the exception's type and message."""
    count: int | None = None
    """What a run handled, when its body says (messages purged, sweeps, reminders sent)."""


@dataclass(frozen=True, slots=True)
class JobSpec:
    name: str
    body: JobBody
    trigger: BaseTrigger
    misfire_grace_seconds: int | None = DAILY_MISFIRE_GRACE_SECONDS
    """None: a late run always runs (once, with coalesce)."""
    coalesce: bool = True
    """Several missed runs become one. Only tests turn this off."""


def job_specs(settings: ScheduleSettings, bodies: Mapping[str, JobBody]) -> tuple[JobSpec, ...]:
    """The node's jobs, for the bodies given (a job without a body is not scheduled here)."""
    unknown = set(bodies) - set(JOB_NAMES)
    if unknown:
        raise ValueError(f"unknown job(s) {sorted(unknown)}; known: {', '.join(JOB_NAMES)}")
    # A sweep missed by more than its interval is superseded by the next one; a daily job
    # run late is always better than none.
    grace = {OUTBOX_RETRY: settings.outbox_retry_seconds}
    return tuple(
        JobSpec(
            name,
            bodies[name],
            settings.trigger_of(name),
            grace.get(name, DAILY_MISFIRE_GRACE_SECONDS),
        )
        for name in JOB_NAMES
        if name in bodies
    )


# --- APScheduler plumbing -----------------------------------------------------------------------


def scheduled_job_placeholder(*_args: Any, **_kwargs: Any) -> None:
    """What the job store records as every job's function (it must be importable by name to be
    stored). Never called: :class:`_DispatchingExecutor` runs this node's body for the job."""
    raise RuntimeError("gateway jobs run through GatewayScheduler's executor, not directly")


_UNPICKLE_ALLOWED = frozenset(
    {
        ("datetime", "datetime"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("zoneinfo", "ZoneInfo"),
        ("apscheduler.triggers.cron", "CronTrigger"),
        ("apscheduler.triggers.interval", "IntervalTrigger"),
        ("apscheduler.triggers.date", "DateTrigger"),
        *(
            ("apscheduler.triggers.cron.fields", name)
            for name in (
                "BaseField",
                "WeekField",
                "DayOfMonthField",
                "DayOfWeekField",
                "MonthField",
            )
        ),
        *(
            ("apscheduler.triggers.cron.expressions", name)
            for name in (
                "AllExpression",
                "RangeExpression",
                "MonthRangeExpression",
                "WeekdayRangeExpression",
                "WeekdayPositionExpression",
                "LastDayOfMonthExpression",
            )
        ),
    }
)
"""What a stored job may contain: our triggers and times. APScheduler 3 stores jobs pickled,
and unpickling runs whatever the bytes name; a row written by anyone with write access to the
database must not become code running on every node (where the keys are)."""


def _zoneinfo_getattr(obj: Any, name: str) -> Any:
    # ZoneInfo pickles as getattr(ZoneInfo, "_unpickle")(key, from_cache): allow exactly that.
    if obj is ZoneInfo and name == "_unpickle":
        return ZoneInfo._unpickle  # type: ignore[attr-defined]
    raise pickle.UnpicklingError(f"stored job: getattr({obj!r}, {name!r}) is not allowed")


_PLACEHOLDER_REF = f"{__name__}:scheduled_job_placeholder"


class _JobStateUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("builtins", "getattr"):
            return _zoneinfo_getattr
        if (module, name) in _UNPICKLE_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"stored job refers to {module}.{name}, which is not allowed")


class _OwnedEngineJobStore(SQLAlchemyJobStore):
    """The stock store, with three changes: stored jobs are unpickled through an allow-list;
    the engine is the scheduler's (disposed by it, not by the store); the table is created
    safely when several nodes start at once."""

    def _reconstitute_job(self, job_state: bytes) -> Job:
        # Same as the stock method but for the restricted unpickler. A refused row raises;
        # the stock _get_jobs then logs "Unable to restore job" and deletes the row.
        state = _JobStateUnpickler(io.BytesIO(job_state)).load()
        if not isinstance(state, dict) or state.get("func") != _PLACEHOLDER_REF:
            # Job.__setstate__ would import whatever module the row names.
            raise pickle.UnpicklingError("stored job names a function other than ours")
        state["jobstore"] = self
        job = Job.__new__(Job)
        job.__setstate__(state)
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def start(self, scheduler: Any, alias: str) -> None:
        # The stock start() checks, then creates: two nodes starting together on a fresh
        # PostgreSQL both create and one fails (found by the two-node test). IF NOT EXISTS is
        # atomic on SQLite; on PostgreSQL it still races in pg_type, so serialise with a
        # transaction-level advisory lock as well.
        BaseJobStore.start(self, scheduler, alias)
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one() or ""
                key = advisory_key(schema, f"create-{self.jobs_t.name}")
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            conn.execute(sa.schema.CreateTable(self.jobs_t, if_not_exists=True))
            for index in self.jobs_t.indexes:
                conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))

    def shutdown(self) -> None:
        pass


class _DispatchingExecutor(BaseExecutor):
    """Runs each due run time through ``runner(job_id, run_time)`` on the event loop, with
    APScheduler's misfire check and events (executed / missed / error)."""

    def __init__(self, runner: Callable[[str, datetime], Awaitable[None]]) -> None:
        super().__init__()
        self._runner = runner
        self.tasks: set[asyncio.Task[list[JobExecutionEvent]]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self._loop = scheduler._eventloop

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(self._run_all(job, run_times))
        self.tasks.add(task)

        def done(t: asyncio.Task[list[JobExecutionEvent]]) -> None:
            self.tasks.discard(t)
            if t.cancelled():
                self._run_job_error(job.id, asyncio.CancelledError())
            elif t.exception() is not None:
                exc = t.exception()
                self._run_job_error(job.id, exc, exc.__traceback__ if exc else None)
            else:
                self._run_job_success(job.id, t.result())

        task.add_done_callback(done)

    async def _run_all(self, job: Any, run_times: list[datetime]) -> list[JobExecutionEvent]:
        events = []
        alias = job._jobstore_alias
        for run_time in run_times:
            if job.misfire_grace_time is not None:
                late = datetime.now(UTC) - run_time
                if late > timedelta(seconds=job.misfire_grace_time):
                    log.warning("job %r: run time %s missed by %s; not run", job.id, run_time, late)
                    events.append(JobExecutionEvent(EVENT_JOB_MISSED, job.id, alias, run_time))
                    continue
            try:
                await self._runner(job.id, run_time)
            except Exception as exc:
                events.append(
                    JobExecutionEvent(
                        EVENT_JOB_ERROR,
                        job.id,
                        alias,
                        run_time,
                        exception=exc,
                        traceback="".join(traceback.format_tb(exc.__traceback__)),
                    )
                )
            else:
                events.append(JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, alias, run_time))
        return events


def _job_engine(url: str, timeout_seconds: int) -> sa.Engine:
    """An engine of the scheduler's own on the node's database URL. No pool: job-store
    statements are rare, and each lock gets a dedicated connection, closed (never pooled back)
    after the run. ``timeout_seconds`` bounds a connect (PostgreSQL) or a wait for the write
    lock (SQLite)."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigurationError(f"[database] url {url!r} is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return sa.create_engine(
            parsed, poolclass=sa.NullPool, connect_args={"timeout": float(timeout_seconds)}
        )
    if backend == "postgresql":
        return sa.create_engine(
            parsed, poolclass=sa.NullPool, connect_args={"connect_timeout": timeout_seconds}
        )
    raise ConfigurationError(
        f"[database] url: the scheduler supports sqlite and postgresql, not {backend!r}"
    )


# --- the scheduler ------------------------------------------------------------------------------


class GatewayScheduler:
    """The node's scheduler. ``await start()`` inside the running loop, ``await shutdown()``."""

    def __init__(
        self,
        database_url: str,
        jobs: Sequence[JobSpec],
        *,
        timezone: tzinfo,
        owner: str,
        table_prefix: str = TABLE_PREFIX,
        lock_lease: timedelta = DEFAULT_LEASE,
        on_outcome: Callable[[JobOutcome], None] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """``on_outcome`` hears of every run (metrics, tests); for sync bodies it is called from
        the worker thread. ``clock`` gives ``JobRun.started_at`` (time is a parameter)."""
        names = [j.name for j in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate job names in {names}")
        self.engine = _job_engine(database_url, LOCK_DB_TIMEOUT_SECONDS)
        """For job locks (used from worker threads)."""
        self._store_engine = _job_engine(database_url, JOB_STORE_DB_TIMEOUT_SECONDS)
        self.owner = owner
        self._specs = {j.name: j for j in jobs}
        self._lease = lock_lease
        self._on_outcome = on_outcome
        self._clock = clock
        self._executor = _DispatchingExecutor(self._run)
        self.apscheduler = AsyncIOScheduler(
            timezone=timezone,
            jobstores={
                "default": _OwnedEngineJobStore(
                    engine=self._store_engine, tablename=f"{table_prefix}apscheduler"
                )
            },
            executors={"default": self._executor},
            job_defaults={"coalesce": True, "max_instances": 1},
        )

    @classmethod
    def from_config(
        cls, config: NodeConfig, bodies: Mapping[str, JobBody], **kwargs: Any
    ) -> GatewayScheduler | None:
        """The scheduler for a node, or None when ``[scheduler] enabled = false``."""
        settings = ScheduleSettings.from_config(config)
        if not settings.enabled:
            return None
        return cls(
            config.database_url,
            job_specs(settings, bodies),
            timezone=settings.timezone,
            owner=settings.owner or default_owner(config.node.body_id),
            lock_lease=timedelta(seconds=settings.lock_lease_seconds),
            **kwargs,
        )

    async def start(self) -> None:
        """Open the job store, (re)install the jobs keeping missed runs, begin running."""
        await asyncio.to_thread(slots.ensure_table, self.engine)
        self.apscheduler.start(paused=True)
        stored = {job.id: job for job in self.apscheduler.get_jobs()}
        for name, spec in self._specs.items():
            options: dict[str, Any] = {}
            prior = stored.get(name)
            if prior is not None and repr(prior.trigger) == repr(spec.trigger):
                # Unchanged schedule: keep the stored next run time, which may be in the past
                # (due while the node was down) — that is the run to catch up.
                options["next_run_time"] = prior.next_run_time
            self.apscheduler.add_job(
                scheduled_job_placeholder,
                trigger=spec.trigger,
                id=name,
                name=name,
                replace_existing=True,
                misfire_grace_time=spec.misfire_grace_seconds,
                coalesce=spec.coalesce,
                max_instances=1,
                **options,
            )
            log.info(
                "job %r scheduled: %s, next run %s", name, spec.trigger, self.next_run_time(name)
            )
        self.apscheduler.resume()

    async def shutdown(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop scheduling; wait up to ``grace`` seconds for running jobs, then cancel."""
        if self.apscheduler.running:
            self.apscheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the loop's next turn
        running = set(self._executor.tasks)
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        self.engine.dispose()
        self._store_engine.dispose()

    def next_run_time(self, name: str) -> datetime | None:
        """The stored next run time of job ``name`` (None: paused or unknown)."""
        job = self.apscheduler.get_job(name)
        return job.next_run_time if job is not None else None

    # --- one run ------------------------------------------------------------------------------

    async def _run(self, name: str, scheduled_for: datetime) -> None:
        spec = self._specs.get(name)
        if spec is None:
            # With a shared job table this run is now lost for every node (this one moved the
            # job to its next run time): all nodes of a database must run the same jobs.
            log.error(
                "job %r came due on %s, which has no body for it; this run is lost. Give every "
                "node sharing the database the same jobs",
                name,
                self.owner,
            )
            self._report(name, scheduled_for, Outcome.SKIPPED, self._clock(), "no body here")
            return
        lock = JobLock(self.engine, name, self.owner, lease=self._lease)
        if inspect.iscoroutinefunction(spec.body):
            await self._run_async(spec, lock, scheduled_for)
        else:
            # Lock, body and release in one thread: cancelling the awaiting task must not
            # release the lock while the thread still runs the body.
            await asyncio.to_thread(self._run_sync, spec, lock, scheduled_for)

    def _acquire(self, lock: JobLock, scheduled_for: datetime) -> bool:
        try:
            return lock.acquire()
        except Exception as exc:
            # The database is unreachable (or similar): this run cannot be done safely.
            log.exception(
                "job %r (scheduled for %s): could not take its lock; run not done",
                lock.name,
                scheduled_for.isoformat(),
            )
            now = self._clock()
            detail = f"lock: {type(exc).__name__}: {exc}"
            self._report(lock.name, scheduled_for, Outcome.FAILED, now, detail)
            raise

    def _claim(self, lock: JobLock, scheduled_for: datetime) -> datetime | None:
        """Claim the slot under the lock; its start time, or None when it was done before (the
        lock is then released and the skip reported)."""
        started = self._clock()
        try:
            done_by = slots.claim(self.engine, lock.name, scheduled_for, self.owner, started)
        except Exception:
            lock.release()
            raise
        if done_by is not None:
            lock.release()
            self._skipped(lock.name, scheduled_for, lock, f"slot already taken by {done_by}")
            return None
        return started

    def _finish_slot(
        self,
        name: str,
        scheduled_for: datetime,
        outcome: str,
        detail: str = "",
        count: int | None = None,
    ) -> None:
        try:
            slots.finish(
                self.engine,
                name,
                scheduled_for,
                outcome=outcome,
                finished_at=self._clock(),
                detail=detail,
                count=count,
            )
        except Exception:  # the run is done; only its record is missing
            log.exception("job %r: could not record how its slot ended", name)

    def _run_sync(self, spec: JobSpec, lock: JobLock, scheduled_for: datetime) -> None:
        if not self._acquire(lock, scheduled_for):
            self._skipped(spec.name, scheduled_for, lock)
            return
        started = self._claim(lock, scheduled_for)
        if started is None:
            return
        try:
            result = spec.body(JobRun(spec.name, scheduled_for, started, self.owner))
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError(f"job {spec.name!r}: a sync body returned an awaitable")
        except Exception as exc:
            self._finish_slot(spec.name, scheduled_for, slots.FAILED, type(exc).__name__)
            self._failed(spec.name, scheduled_for, started, exc)
            raise
        finally:
            lock.release()
        count = count_of(result)
        self._finish_slot(spec.name, scheduled_for, slots.SUCCEEDED, count=count)
        self._ran(spec.name, scheduled_for, started, count)

    async def _run_async(self, spec: JobSpec, lock: JobLock, scheduled_for: datetime) -> None:
        if not await asyncio.to_thread(self._acquire, lock, scheduled_for):
            self._skipped(spec.name, scheduled_for, lock)
            return
        started = await asyncio.to_thread(self._claim, lock, scheduled_for)
        if started is None:
            return
        try:
            result = await spec.body(JobRun(spec.name, scheduled_for, started, self.owner))
        except Exception as exc:
            await asyncio.to_thread(
                self._finish_slot, spec.name, scheduled_for, slots.FAILED, type(exc).__name__
            )
            self._failed(spec.name, scheduled_for, started, exc)
            raise
        finally:
            await asyncio.to_thread(lock.release)
        count = count_of(result)
        await asyncio.to_thread(
            self._finish_slot, spec.name, scheduled_for, slots.SUCCEEDED, "", count
        )
        self._ran(spec.name, scheduled_for, started, count)

    def _skipped(
        self, name: str, scheduled_for: datetime, lock: JobLock, why: str | None = None
    ) -> None:
        holder = why or lock.held_by or "another node"
        # DEBUG: with several processes or nodes on one database, every run time but one is a
        # skip by design (~1,900 lines a day at WARNING); the run itself is logged where it ran.
        log.debug(
            "job %r (scheduled for %s) skipped on %s: %s",
            name,
            scheduled_for.isoformat(),
            self.owner,
            why or f"its lock is held by {holder}",
        )
        now = self._clock()
        self._report(name, scheduled_for, Outcome.SKIPPED, now, holder)

    def _ran(
        self, name: str, scheduled_for: datetime, started: datetime, count: int | None = None
    ) -> None:
        log.info(
            "job %r (scheduled for %s) ran on %s%s",
            name,
            scheduled_for.isoformat(),
            self.owner,
            "" if count is None else f": {count} handled",
        )
        self._report(name, scheduled_for, Outcome.RAN, started, count=count)

    def _failed(
        self, name: str, scheduled_for: datetime, started: datetime, exc: Exception
    ) -> None:
        log.error(
            "job %r (scheduled for %s) failed on %s",
            name,
            scheduled_for.isoformat(),
            self.owner,
            exc_info=sys.exc_info(),
        )
        self._report(name, scheduled_for, Outcome.FAILED, started, f"{type(exc).__name__}: {exc}")

    def _report(
        self,
        name: str,
        scheduled_for: datetime,
        outcome: Outcome,
        started: datetime,
        detail: str = "",
        count: int | None = None,
    ) -> None:
        if self._on_outcome is None:
            return
        try:
            self._on_outcome(
                JobOutcome(name, scheduled_for, outcome, started, self._clock(), detail, count)
            )
        except Exception:
            log.exception("job outcome listener failed for %r", name)


def count_of(result: Any) -> int | None:
    """What a body's result says it handled: a purge report's purged messages, a list's length,
    a mapping's summed counts; None when it says nothing countable."""
    purged = getattr(result, "purged", None)
    if isinstance(purged, int):
        return purged
    if isinstance(result, Mapping):
        values = [v for v in result.values() if isinstance(v, int) and not isinstance(v, bool)]
        return sum(values) if values else None
    if isinstance(result, list | tuple):
        return len(result)
    return None


def scheduler_context(
    scheduler: GatewayScheduler,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp ``cleanup_ctx`` entry: start with the app, shut down with it."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        await scheduler.start()
        yield
        await scheduler.shutdown()

    return context


def scheduler_for(config: NodeConfig, node: NodeLike, **kwargs: Any) -> GatewayScheduler | None:
    """The node's scheduler with the real job bodies (gateway.app.scheduled), or None when
    ``[scheduler] enabled = false``. ``kwargs`` go to :class:`GatewayScheduler` (``on_outcome``,
    ``clock``)."""
    return GatewayScheduler.from_config(config, job_bodies(config, node), **kwargs)

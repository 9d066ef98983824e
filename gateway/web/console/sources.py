"""Where the dashboard and the administration pages read from: small injected callables, and
ready adapters over a node.

:func:`make_console_app` takes each source as a keyword and refuses to start without any of
them. ``gateway serve`` (and the demo, which runs the same node runtime) wires them all at once
with :func:`node_console_sources`::

    app = make_console_app(runtime.service, StoreUserDirectory(node.store),
                           sessions=SessionStore(node.store), ...,
                           **node_console_sources(node, runtime.api_executor))

Every adapter runs its blocking work (database, key files) in the given executor: the event
loop only renders pages. The sources only read; nothing here changes keys, holds or the trail.
Every source reads through the application layer (:mod:`gateway.app`), as the signed-in user
where it has one: the same role check and the same rows as ``gateway`` commands and the API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from gateway.app import admin
from gateway.app import audit as app_audit
from gateway.app import jobs as app_jobs
from gateway.app import keys as app_keys
from gateway.app import purge as app_purge
from gateway.app.admin import LegalHold
from gateway.app.audit import AuditEvent, AuditQuery
from gateway.app.audit_checkpoints import TrailVerification
from gateway.app.context import AppContext, Store, serving_context
from gateway.app.outbox import UNDELIVERED_ROWS, UndeliveredItem, undelivered
from gateway.app.purge import PurgeRun
from gateway.app.retention import PolicySet
from gateway.crypto.keys.generations import expiring_keys
from gateway.crypto.keys.keystore import KeyEntry, KeyStore
from gateway.exchange.service import Actor
from gateway.model.directory import Directory

__all__ = [
    "AuditQuery",
    "AuditTrail",
    "ExpiringKey",
    "JobRun",
    "StoreAuditTrail",
    "UndeliveredItem",
    "admin_holds",
    "app_job_runs",
    "keystore_entries",
    "keystore_expiring",
    "node_console_sources",
    "store_audit",
    "store_purge_runs",
    "store_undelivered",
]

if TYPE_CHECKING:  # the scheduler (and APScheduler) is imported when a node wires it
    from gateway.app.schedule import ScheduleSettings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ExpiringKey:
    """A key or certificate the dashboard warns about (filled in by the node)."""

    name: str
    role: str
    """``seal``, ``official``, ``tls``, ``encryption``, ``kek``."""
    not_after: datetime


ExpiringKeys = Callable[[], Awaitable[Sequence[ExpiringKey]]]
Undelivered = Callable[[Actor], Awaitable[Sequence[UndeliveredItem]]]
KeyEntries = Callable[[Actor], Awaitable[Sequence[KeyEntry]]]
"""The node's keys and certificates as the actor may see them (:func:`keystore_entries`)."""
DirectorySource = Callable[[], Awaitable[Directory | None]]
"""The verified directory of bodies the node works with now."""
RetentionSource = Callable[[], Awaitable[PolicySet]]
"""The node's retention policies (``PolicySet.from_config``)."""
HoldsSource = Callable[[Actor, bool], Awaitable[Sequence[LegalHold]]]
"""Legal holds, newest first, as the actor may see them (:func:`admin_holds`); the second
argument: active ones only."""
PurgeRunsSource = Callable[[Actor, int], Awaitable[Sequence[PurgeRun]]]
"""The latest purge runs, newest first, as the actor may see them; the argument: how many."""


@dataclass(frozen=True, slots=True)
class JobRun:
    """A scheduled job, its schedule and its last run (filled in by the node)."""

    job: str
    schedule: str
    """A crontab line in the node's zone, or an interval (``every 30 s``)."""
    enabled: bool
    status: app_jobs.JobStatus
    """Last run and last success (``jobs_slots``); ``last`` None: never ran."""


JobRunsSource = Callable[[Actor], Awaitable[Sequence[JobRun]]]
"""Each scheduled job with its last run, as the actor may see them (:func:`app_job_runs`)."""


class AuditTrail(Protocol):
    async def search(
        self, actor: Actor, query: AuditQuery, *, before: int | None, limit: int
    ) -> Sequence[AuditEvent]:
        """Events matching ``query`` with ``seq < before``, newest first, at most ``limit``."""
        ...

    async def verify(self, actor: Actor) -> TrailVerification:
        """Verify the whole trail and record it (:func:`gateway.app.audit.verify`)."""
        ...


async def _run(executor: Executor | None, fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(executor, fn)


class StoreAuditTrail:
    """:class:`AuditTrail` over a node's store, through :mod:`gateway.app.audit` as the
    signed-in user (``gateway audit`` reads the same way)."""

    def __init__(
        self, store: Store, executor: Executor | None = None, context: AppContext | None = None
    ) -> None:
        self.context = context or serving_context(store)
        """The node's (with its keys: checkpoints are checked against its seal)."""
        self.executor = executor

    async def search(
        self, actor: Actor, query: AuditQuery, *, before: int | None, limit: int
    ) -> Sequence[AuditEvent]:
        def find() -> list[AuditEvent]:
            return app_audit.search(
                self.context.acting_as(actor), query, before=before, limit=limit
            )

        return await _run(self.executor, find)

    async def verify(self, actor: Actor) -> TrailVerification:
        def check() -> TrailVerification:
            return app_audit.verify(self.context.acting_as(actor))

        return await _run(self.executor, check)


def admin_holds(context: AppContext, executor: Executor | None = None) -> HoldsSource:
    """The holds page reads through the admin service, as ``gateway holds list`` and the local
    API's ``GET /api/v1/holds`` do: the same role check, the same rows."""

    async def holds(actor: Actor, active_only: bool) -> Sequence[LegalHold]:
        def read() -> list[LegalHold]:
            return admin.list_holds(context.acting_as(actor), active_only=active_only)

        return await _run(executor, read)

    return holds


def store_purge_runs(store: Store, executor: Executor | None = None) -> PurgeRunsSource:
    """The latest purge runs through :func:`gateway.app.purge.list_runs`, as ``gateway purge
    runs`` lists them."""
    context = serving_context(store)

    async def runs(actor: Actor, limit: int) -> Sequence[PurgeRun]:
        def read() -> list[PurgeRun]:
            return [item.run for item in app_purge.list_runs(context.acting_as(actor), limit)]

        return await _run(executor, read)

    return runs


def keystore_entries(
    context: AppContext, keys: KeyStore, executor: Executor | None = None
) -> KeyEntries:
    """Every key generation and every KEK of the ring (the retired ones too), for the keys
    page: read through :func:`gateway.app.keys.list_keys` as the console's user, as ``gateway
    keys list`` reads it."""

    async def entries(actor: Actor) -> Sequence[KeyEntry]:
        def read() -> list[KeyEntry]:
            return app_keys.list_keys(context.acting_as(actor), keys).all_entries()

        return await _run(executor, read)

    return entries


def _utc_now() -> datetime:
    return datetime.now(UTC)


def store_audit(
    store: Store,
    executor: Executor | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> Callable[[str, str, dict[str, Any]], Awaitable[None]]:
    """The console's ``audit`` callback appending to the node's hash-chained trail (each event
    in a transaction of its own, kind ``console.*``, details as the console gives them;
    :func:`gateway.app.audit.record`); ``clock`` is the node's (tests pin it)."""
    context = serving_context(store, clock=clock)

    async def append(actor: str, event: str, details: dict[str, Any]) -> None:
        def write() -> None:
            who = context.acting_as(Actor(name=actor, roles=frozenset()))
            app_audit.record(who, event, details)

        await _run(executor, write)

    return append


def store_undelivered(
    store: Store, executor: Executor | None = None, limit: int = UNDELIVERED_ROWS
) -> Undelivered:
    """The dashboard's undelivered documents (:func:`gateway.app.outbox.undelivered`)."""
    context = serving_context(store)

    async def listed(actor: Actor) -> Sequence[UndeliveredItem]:
        def read() -> list[UndeliveredItem]:
            return undelivered(context.acting_as(actor), limit)

        return await _run(executor, read)

    return listed


def keystore_expiring(
    keys: KeyStore, clock: Callable[[], datetime], executor: Executor | None = None
) -> ExpiringKeys:
    """The dashboard's keys and certificates ending within the warning period
    (:func:`gateway.crypto.keys.generations.expiring_keys`, as ``gateway keys list`` flags them)."""

    async def expiring() -> Sequence[ExpiringKey]:
        def read() -> list[ExpiringKey]:
            return [
                ExpiringKey(name=k.name, role=str(k.role), not_after=k.not_after)
                for k in expiring_keys(keys, clock())
            ]

        return await _run(executor, read)

    return expiring


def app_job_runs(
    context: AppContext, schedules: ScheduleSettings, executor: Executor | None = None
) -> JobRunsSource:
    """The node's scheduled jobs (purge, outbox retries, deadline reminders, key expiry
    warnings) with their schedules (``[scheduler]``) and their last runs, read through
    :func:`gateway.app.jobs.job_runs` as the console's user, as ``gateway jobs list`` shows."""

    from gateway.app.scheduled import JOB_NAMES

    async def runs(actor: Actor) -> Sequence[JobRun]:
        def read() -> list[JobRun]:
            found = app_jobs.job_runs(context.acting_as(actor), JOB_NAMES)
            return [
                JobRun(s.job, schedules.schedule_of(s.job), schedules.enabled, s) for s in found
            ]

        return await _run(executor, read)

    return runs


def node_console_sources(node: Any, executor: Executor | None = None) -> dict[str, Any]:
    """Every source of the dashboard and the administration pages of a
    :class:`gateway.exchange.node.Node`, as keywords for
    :func:`gateway.web.console.make_console_app`."""

    from gateway.app.schedule import ScheduleSettings

    serving = serving_context(node.store, node.config, node.clock, node.keys, node.kek_ring)

    async def directory() -> Directory | None:
        return node.directory  # swapped whole on reload: reading it is atomic

    async def retention() -> PolicySet:
        return PolicySet.from_config(node.config)

    return {
        "expiring_keys": keystore_expiring(node.keys, node.clock, executor),
        "undelivered": store_undelivered(node.store, executor),
        "key_entries": keystore_entries(serving, node.keys, executor),
        "directory": directory,
        "retention": retention,
        "holds": admin_holds(serving, executor),
        "purge_runs": store_purge_runs(node.store, executor),
        "job_runs": app_job_runs(serving, ScheduleSettings.from_config(node.config), executor),
        "audit_trail": StoreAuditTrail(node.store, executor, serving),
        "acts": serving,
    }

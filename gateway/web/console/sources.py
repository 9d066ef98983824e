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
The keys and holds pages read through the application layer (:mod:`gateway.app`) as the
signed-in user.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

from gateway.app import admin
from gateway.app import keys as app_keys
from gateway.app.context import AppContext, serving_context
from gateway.app.retention import PolicySet
from gateway.crypto.keystore import KeyEntry, KeyStore
from gateway.crypto.rotation import expiring_keys
from gateway.exchange.service import Actor
from gateway.model.directory import Directory
from gateway.store import audit as audit_store
from gateway.store import purge as purge_store
from gateway.store.audit import AuditEvent, AuditVerification
from gateway.store.engine import Store
from gateway.store.outbox import OutboxState
from gateway.store.purge import LegalHold, PurgeRun
from gateway.store.tables import audit_events, messages, outbox

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ExpiringKey:
    """A key or certificate the dashboard warns about (filled in by the node)."""

    name: str
    role: str
    """``seal``, ``official``, ``tls``, ``encryption``, ``kek``."""
    not_after: datetime


@dataclass(frozen=True, slots=True)
class UndeliveredItem:
    """An outbox entry not yet delivered (filled in by the node)."""

    message_id: str
    conversation_id: str
    destination: str
    state: str
    """``pending`` or ``failed``."""
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None = None
    """A stable error code, never text from the peer."""


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
PurgeRunsSource = Callable[[int], Awaitable[Sequence[PurgeRun]]]
"""The latest purge runs, newest first; the argument: how many."""


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """The audit page's filters (each optional)."""

    kind: str | None = None
    """An event code (``console.signed_in``) or, ending in a dot, a family (``console.``)."""
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    """Exclusive."""


class AuditTrail(Protocol):
    async def search(
        self, query: AuditQuery, *, before: int | None, limit: int
    ) -> Sequence[AuditEvent]:
        """Events matching ``query`` with ``seq < before``, newest first, at most ``limit``."""
        ...

    async def verify(self) -> AuditVerification:
        """Walk the whole chain (:func:`gateway.store.audit.verify`)."""
        ...


async def _run(executor: Executor | None, fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(executor, fn)


class StoreAuditTrail:
    """:class:`AuditTrail` over a node's store (read-only queries)."""

    def __init__(self, store: Store, executor: Executor | None = None) -> None:
        self.store = store
        self.executor = executor

    async def search(
        self, query: AuditQuery, *, before: int | None, limit: int
    ) -> Sequence[AuditEvent]:
        def find() -> list[AuditEvent]:
            stmt = sa.select(audit_events)
            if before is not None:
                stmt = stmt.where(audit_events.c.seq < before)
            if query.kind:
                if query.kind.endswith("."):
                    stmt = stmt.where(audit_events.c.kind.startswith(query.kind, autoescape=True))
                else:
                    stmt = stmt.where(audit_events.c.kind == query.kind)
            if query.actor:
                stmt = stmt.where(audit_events.c.actor == query.actor)
            if query.since is not None:
                stmt = stmt.where(audit_events.c.at >= query.since)
            if query.until is not None:
                stmt = stmt.where(audit_events.c.at < query.until)
            stmt = stmt.order_by(audit_events.c.seq.desc()).limit(limit)
            with self.store.read() as conn:
                return [_event(row) for row in conn.execute(stmt)]

        return await _run(self.executor, find)

    async def verify(self) -> AuditVerification:
        def check() -> AuditVerification:
            with self.store.read() as conn:
                return audit_store.verify(conn)

        return await _run(self.executor, check)


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
        row.seq,
        row.at,
        row.actor,
        row.kind,
        json.loads(row.subjects),
        json.loads(row.details),
        row.prev_hash,
        row.hash,
    )


def admin_holds(context: AppContext, executor: Executor | None = None) -> HoldsSource:
    """The holds page reads through the admin service, as ``gateway holds list`` and the local
    API's ``GET /api/v1/holds`` do: the same role check, the same rows."""

    async def holds(actor: Actor, active_only: bool) -> Sequence[LegalHold]:
        def read() -> list[LegalHold]:
            return admin.list_holds(context.acting_as(actor), active_only=active_only)

        return await _run(executor, read)

    return holds


def store_purge_runs(store: Store, executor: Executor | None = None) -> PurgeRunsSource:
    async def runs(limit: int) -> Sequence[PurgeRun]:
        def read() -> list[PurgeRun]:
            with store.read() as conn:
                return purge_store.list_runs(conn, limit=limit)

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
    in a transaction of its own, kind ``console.*``, details as the console gives them);
    ``clock`` is the node's (tests pin it)."""

    async def append(actor: str, event: str, details: dict[str, Any]) -> None:
        def write() -> None:
            with store.transaction() as conn:
                audit_store.append(
                    conn,
                    now=clock(),
                    actor=actor[:64],
                    kind=event,
                    details=details,
                )

        await _run(executor, write)

    return append


UNDELIVERED_ROWS = 50
"""Outbox entries the dashboard lists, the next due first: a screenful; the metrics count all."""


def store_undelivered(
    store: Store, executor: Executor | None = None, limit: int = UNDELIVERED_ROWS
) -> Undelivered:
    """The dashboard's undelivered documents: outbox entries pending or given up, with the
    conversation each belongs to, the next due first (the outbox's due index)."""

    stmt = (
        sa.select(
            outbox.c.message_id,
            messages.c.conversation_id,
            outbox.c.destination,
            outbox.c.state,
            outbox.c.attempts,
            outbox.c.next_attempt_at,
            outbox.c.last_error,
        )
        .join(messages, messages.c.message_id == outbox.c.message_id)
        .where(outbox.c.state.in_((OutboxState.PENDING.value, OutboxState.FAILED.value)))
        .order_by(outbox.c.state.desc(), outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
    )

    async def undelivered(actor: Actor) -> Sequence[UndeliveredItem]:
        def read() -> list[UndeliveredItem]:
            with store.read() as conn:
                return [
                    UndeliveredItem(
                        message_id=row.message_id,
                        conversation_id=row.conversation_id,
                        destination=row.destination,
                        state=row.state,
                        attempts=row.attempts,
                        next_attempt_at=row.next_attempt_at
                        if row.state == OutboxState.PENDING.value
                        else None,
                        last_error=row.last_error,
                    )
                    for row in conn.execute(stmt)
                ]

        return await _run(executor, read)

    return undelivered


def keystore_expiring(
    keys: KeyStore, clock: Callable[[], datetime], executor: Executor | None = None
) -> ExpiringKeys:
    """The dashboard's keys and certificates ending within the warning period
    (:func:`gateway.crypto.rotation.expiring_keys`, as ``gateway keys list`` flags them)."""

    async def expiring() -> Sequence[ExpiringKey]:
        def read() -> list[ExpiringKey]:
            return [
                ExpiringKey(name=k.name, role=str(k.role), not_after=k.not_after)
                for k in expiring_keys(keys, clock())
            ]

        return await _run(executor, read)

    return expiring


def node_console_sources(node: Any, executor: Executor | None = None) -> dict[str, Any]:
    """Every source of the dashboard and the administration pages of a
    :class:`gateway.exchange.node.Node`, as keywords for
    :func:`gateway.web.console.make_console_app`."""

    serving = serving_context(node.store, node.config, node.clock)

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
        "audit_trail": StoreAuditTrail(node.store, executor),
    }

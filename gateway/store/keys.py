"""Wrapped keys in the store: KEK rotation (re-wrapping) and the debtor index key.

Rotation: load the new KEK into the ring as active (the old one stays loaded), then call
:func:`rewrap_batch` until it returns 0. Each batch re-wraps the retention period keys
(``gateway.store.period_keys``: a few rows, the messages' data keys under them stay as they
are) and moves data keys still wrapped directly by a KEK (rows from before 0012) under their
period key, in its own transaction; it is resumable at any point (what is done is done, the
rest still names the old KEK) and safe to run from several processes (rows are taken with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL). When :func:`kek_usage` shows nothing under the old
KEK, it can be retired and — once every backup made under it has expired — destroyed.
:func:`rewrap_all` runs the batches to the end; :func:`kek_usage` counts what each KEK wraps
(``gateway.crypto.keys.kek_ring.destroy_kek`` takes that count).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.crashpoints import crash_point
from gateway.crypto import at_rest
from gateway.crypto.at_rest import WrappedKey
from gateway.crypto.keys.kek import KekRing
from gateway.store import audit, period_keys
from gateway.store.dialect import insert_if_absent
from gateway.store.tables import audit_events, message_keys, messages, secret_keys

if TYPE_CHECKING:
    from gateway.store.engine import Store

MAX_REWRAP_BATCH = 1000
"""Data keys re-wrapped per transaction: a FileKek wraps ~1M keys/s, a token far fewer; one
batch should finish in well under a second on a PKCS#11 token."""
SEARCH_INDEX_KEY_NAME = "search-index"
"""Name of the secret the search index keys derive from (``at_rest.search_keys``)."""
DEFAULT_PAUSE = 0.0
"""Seconds between re-wrap batches; raise it on a busy node to leave the database room."""


def count_by_kek(conn: Connection) -> dict[str, int]:
    """How many message data keys are wrapped directly under each KEK id: rows from before
    migration 0012 not yet moved under their period key (the others are under a period key)."""
    rows = conn.execute(
        sa.select(message_keys.c.kek_id, sa.func.count())
        .where(message_keys.c.period_key_id.is_(None))
        .group_by(message_keys.c.kek_id)
    )
    return {kek_id: n for kek_id, n in rows}


def rewrap_batch(
    conn: Connection, keys: KekRing, now: datetime, limit: int = MAX_REWRAP_BATCH
) -> int:
    """Re-wrap what is under another KEK than the ring's active one; return how many keys.

    The period keys (a few rows: one per storage week and generation) are re-wrapped under the
    active KEK, not the messages' data keys under them. A data key still wrapped directly by a
    KEK (a row from before migration 0012) is moved under its week's period key, up to
    ``limit`` per batch. Also re-wraps the store's own secrets (the debtor index key). A key
    under a KEK the ring does not hold raises ``at_rest.UnknownKek``: load the old KEK too
    while rotating.
    """
    if not 1 <= limit <= MAX_REWRAP_BATCH:
        raise ValueError(f"limit must be 1..{MAX_REWRAP_BATCH}, got {limit}")
    active = keys.active.key_id
    period_done = period_keys.rewrap_under_active(conn, keys)
    rows = conn.execute(
        sa.select(
            message_keys.c.message_id,
            message_keys.c.kek_id,
            message_keys.c.wrapped_dek,
            messages.c.stored_at,
        )
        .join(messages, messages.c.message_id == message_keys.c.message_id)
        .where(message_keys.c.period_key_id.is_(None))
        .order_by(message_keys.c.message_id)
        .limit(limit)
        .with_for_update(of=message_keys, skip_locked=True)
    ).all()
    for row in rows:
        dek = at_rest.unwrap_data_key(WrappedKey(row.kek_id, row.wrapped_dek), keys)
        period_keys.move_into_period(conn, row.message_id, dek, row.stored_at, keys, now)
    secrets_done = period_keys.rewrap_under_active(conn, keys, secret_keys)
    if rows or secrets_done or period_done:
        audit.append(
            conn,
            now=now,
            actor="job:key-rotation",
            kind="key.rewrapped",
            subjects={"kek_id": active},
            details={"data_keys": len(rows), "period_keys": period_done, "secrets": secrets_done},
        )
    return len(rows) + secrets_done + period_done


def kek_usage(conn: Connection) -> dict[str, int]:
    """How many stored keys each KEK wraps directly: period keys, message data keys from before
    migration 0012 not yet moved under a period key, and the store's own secrets."""
    usage = dict(count_by_kek(conn))
    for source in (
        period_keys.kek_usage(conn),
        {
            kek_id: n
            for kek_id, n in conn.execute(
                sa.select(secret_keys.c.kek_id, sa.func.count()).group_by(secret_keys.c.kek_id)
            )
        },
    ):
        for kek_id, n in source.items():
            usage[kek_id] = usage.get(kek_id, 0) + n
    return usage


@dataclass(frozen=True, slots=True)
class UnderKek:
    """What one KEK still wraps or sealed, as ``gateway keys destroy-kek`` tells it."""

    period_keys: int
    data_keys: int
    """Message data keys from before migration 0012, not yet moved under a period key."""
    secrets: int
    audit_purposes: int
    """Audit events whose stated read purpose was sealed under it: readable only with it."""

    @property
    def wrapped(self) -> int:
        """Stored keys that would become unreadable: destroying is refused while any remain."""
        return self.period_keys + self.data_keys + self.secrets

    def describe(self) -> str:
        return (
            f"{self.period_keys} retention period key(s), {self.data_keys} message data key(s) "
            f"from before period keys, {self.secrets} store secret(s)"
        )


def under_kek(conn: Connection, kek_id: str) -> UnderKek:
    """Count what ``kek_id`` wraps (period keys, old-shape data keys, secrets) and the audit
    events whose sealed purpose names it (``v1.<kek id>.…``, gateway.store.read_purposes)."""
    purposes = conn.execute(
        sa.select(sa.func.count())
        .select_from(audit_events)
        .where(audit_events.c.details.contains(f"v1.{kek_id}.", autoescape=True))
    ).scalar_one()
    secrets_n = conn.execute(
        sa.select(sa.func.count()).select_from(secret_keys).where(secret_keys.c.kek_id == kek_id)
    ).scalar_one()
    return UnderKek(
        period_keys.kek_usage(conn).get(kek_id, 0),
        count_by_kek(conn).get(kek_id, 0),
        secrets_n,
        purposes,
    )


@dataclass(frozen=True, slots=True)
class RewrapProgress:
    done: int
    """Keys re-wrapped by this run so far."""
    total: int
    """Keys under another KEK than the active one when the run started (may grow if a lagging
    process still wraps under the old KEK: ``done`` can pass it)."""
    active: str


@dataclass(frozen=True, slots=True)
class RewrapResult:
    rewrapped: int
    active: str
    usage: dict[str, int]
    """Keys per KEK when the run ended: only the active one should remain."""
    seconds: float

    @property
    def complete(self) -> bool:
        return set(self.usage) <= {self.active}


def rewrap_all(
    store: Store,
    ring: KekRing,
    *,
    clock: Callable[[], datetime],
    batch_size: int | None = None,
    pause: float = DEFAULT_PAUSE,
    progress: Callable[[RewrapProgress], None] | None = None,
) -> RewrapResult:
    """Re-wrap every stored key under the ring's active KEK, one transaction per batch.

    Resumable: after a crash, run it again; rows done stay done. Several processes may run it
    at once on PostgreSQL (rows are taken with SKIP LOCKED).
    """
    batch = batch_size or MAX_REWRAP_BATCH
    started = time.monotonic()
    with store.read() as conn:
        usage = kek_usage(conn)
    active = ring.active.key_id
    total = sum(n for kek_id, n in usage.items() if kek_id != active)
    done = 0
    if progress is not None:
        progress(RewrapProgress(0, total, active))
    while True:
        with store.transaction() as conn:
            n = rewrap_batch(conn, ring, clock(), batch)
            if n:
                crash_point("rewrap.batch")
        if n == 0:
            break
        crash_point("rewrap.committed")
        done += n
        if progress is not None:
            progress(RewrapProgress(done, max(total, done), ring.active.key_id))
        if pause > 0:
            time.sleep(pause)
    with store.read() as conn:
        usage = kek_usage(conn)
    return RewrapResult(done, ring.active.key_id, usage, time.monotonic() - started)


def _secret(name: str) -> sa.Select[tuple[str, bytes]]:
    return sa.select(secret_keys.c.kek_id, secret_keys.c.wrapped_key).where(
        secret_keys.c.name == name
    )


def stored_secret(conn: Connection, name: str) -> WrappedKey | None:
    """One of the store's own secrets (``secret_keys``) as stored, wrapped by the KEK; None
    before its first use."""
    row = conn.execute(_secret(name)).first()
    return WrappedKey(row.kek_id, row.wrapped_key) if row is not None else None


def secret(conn: Connection, name: str, keys: KekRing, now: datetime) -> bytes:
    """One of the store's own secrets (``secret_keys``), kept wrapped by the KEK; made on first
    use (that first call must be in a write transaction)."""
    row = conn.execute(_secret(name)).first()
    if row is None:
        wrapped = at_rest.wrap_data_key(at_rest.new_data_key(), keys)
        # Two processes may make it at once: one insert wins, both read the winner's key.
        insert_if_absent(
            conn,
            secret_keys,
            ["name"],
            {
                "name": name,
                "kek_id": wrapped.kek_id,
                "wrapped_key": wrapped.blob,
                "created_at": now,
            },
        )
        row = conn.execute(_secret(name)).one()
    return at_rest.unwrap_data_key(WrappedKey(row.kek_id, row.wrapped_key), keys)


def stored_search_secret(conn: Connection) -> WrappedKey | None:
    """The search index's secret as stored (wrapped by the KEK); None before its first use."""
    return stored_secret(conn, SEARCH_INDEX_KEY_NAME)


def search_secret(conn: Connection, keys: KekRing, now: datetime) -> bytes:
    """The node's secret behind the search index (debtor and case tags, the list's sealed
    display), kept wrapped by the KEK; made on first use (that first call must be in a write
    transaction)."""
    return secret(conn, SEARCH_INDEX_KEY_NAME, keys, now)

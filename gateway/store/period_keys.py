"""Retention period keys: the key a purge destroys so that no copy of the store can be read.

Theory of operation
-------------------
Each message's data key (``gateway.crypto.at_rest``) is wrapped under the **period key** of
the ISO week in which the message was stored (``2026-W49``), and the period key — a random
AES-256 key — is wrapped under the node's KEK ring (on the token when the KEK is a PKCS#11
key). Deleting a period key's row therefore makes every data key wrapped under it unusable,
in the live store *and* in every copy (WAL, dead tuples, replicas, dumps, backups) where the
wrapped data keys survive: the KEK alone no longer opens them.

The week of storage, not of expiry: a message's expiry is decided by the retention policies at
each purge (it can count from the conversation's or the proceeding's closing, not known when
the message is stored). Messages of one week expire at different times, so a period key may be
*dirty*: some of its week's messages were purged after it was made (it records how many
tombstones its week had when it was made). After its batches, each purge run
calls :func:`shred_dirty_periods`: the survivors of a dirty period (kept, held, undelivered)
are re-wrapped under a fresh *generation* of the same week's key, and the dirty generations,
now empty, are deleted (``retention.period_key_destroyed`` audit event each). A period whose
messages were all purged simply loses its key. Memory of the re-wrap is bounded by
:data:`CARRY_BATCH` per transaction, and the step is resumable: a generation stays dirty until
it is gone.

Rows written before migration 0012 keep their data key wrapped by the KEK
(``message_keys.period_key_id`` NULL) until ``gateway keys rewrap`` moves them under their
week's key (``gateway.store.keys.rewrap_batch``): until then a copy of such a row is readable
with the KEK, as before.
"""

from __future__ import annotations

import secrets
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Transaction

from gateway.crypto import at_rest
from gateway.crypto.at_rest import WrappedKey
from gateway.crypto.keys.kek import FileKek, KekRing
from gateway.store import audit
from gateway.store.dialect import insert_if_absent
from gateway.store.tables import message_keys, period_keys, tombstones

if TYPE_CHECKING:
    from gateway.store.engine import Store

CARRY_BATCH = 1000
"""Surviving data keys re-wrapped per transaction (as ``keys.MAX_REWRAP_BATCH``)."""
CACHE_SIZE = 16
"""Unwrapped period keys kept per process: the current week's and a few being read. A row
is always read first, so a destroyed key is never used again from here."""
DESTROYED_EVENT = "retention.period_key_destroyed"


class PeriodKeyDestroyed(LookupError):
    """A data key is wrapped under a period key that no longer exists: shredded."""


def period_of(at: datetime) -> str:
    """The ISO week (UTC) ``at`` falls in, as ``2026-W49``."""
    year, week, _ = at.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """``[start, end)`` of an ISO week written as by :func:`period_of` (Monday 00:00 UTC)."""
    start = datetime.strptime(f"{period}-1", "%G-W%V-%u").replace(tzinfo=UTC)
    return start, start + timedelta(days=7)


@dataclass(frozen=True, slots=True)
class PeriodKeyRow:
    key_id: str
    period: str
    generation: int
    kek_id: str
    wrapped_key: bytes
    created_at: datetime
    purged_before: int
    """Tombstones of its week when it was made: more now means a message of the week was purged
    since, perhaps one under this key (a count, not a time: ``purge --now`` may be any instant,
    and tombstones are never deleted)."""


_cache: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
_cache_lock = threading.Lock()


def _open(key_id: str, kek_id: str, wrapped_key: bytes, keys: KekRing) -> FileKek:
    """The period key as a wrapping key, unwrapped under the KEK that wrapped it."""
    cache_key = (key_id, wrapped_key)
    with _cache_lock:
        key = _cache.get(cache_key)
        if key is not None:
            _cache.move_to_end(cache_key)
    if key is None:
        key = at_rest.unwrap_data_key(WrappedKey(kek_id, wrapped_key), keys)
        with _cache_lock:
            _cache[cache_key] = key
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return FileKek(key_id, key)


def _forget(key_ids: Sequence[str]) -> None:
    with _cache_lock:
        for cache_key in [k for k in _cache if k[0] in key_ids]:
            del _cache[cache_key]


def _row(r: Any) -> PeriodKeyRow:
    return PeriodKeyRow(
        r.key_id, r.period, r.generation, r.kek_id, r.wrapped_key, r.created_at, r.purged_before
    )


_GENERATIONS = (
    sa.select(period_keys)
    .where(period_keys.c.period == sa.bindparam("period"))
    .order_by(period_keys.c.generation)
)
# Built once (building and keying the statement per call cost several times its execution).
_GENERATIONS_LOCKED = {
    None: _GENERATIONS,
    # FOR KEY SHARE: the purge's shredding (FOR UPDATE) waits for this transaction, and then
    # sees the data key wrapped here as a survivor to carry.
    "share": _GENERATIONS.with_for_update(read=True, key_share=True),
    "update": _GENERATIONS.with_for_update(),
}


def _generations(conn: Connection, period: str, *, lock: str | None = None) -> list[PeriodKeyRow]:
    return [_row(r) for r in conn.execute(_GENERATIONS_LOCKED[lock], {"period": period})]


def _new_generation(
    conn: Connection, period: str, generation: int, keys: KekRing, now: datetime
) -> None:
    wrapped = at_rest.wrap_data_key(at_rest.new_data_key(), keys)
    # Two processes may make the week's first key at once: one insert wins, both use it.
    insert_if_absent(
        conn,
        period_keys,
        ["period", "generation"],
        {
            "key_id": f"pk-{period}-{secrets.token_hex(6)}",
            "period": period,
            "generation": generation,
            "kek_id": wrapped.kek_id,
            "wrapped_key": wrapped.blob,
            "created_at": now,
            "purged_before": _purged_in(conn, period),
        },
    )


# The intake key read in the connection's current innermost transaction (or savepoint), so a
# second message stored in it (a receive stores the document and its Receipt) reads no row
# again: the first read's share lock holds the row until commit, so the key cannot be shredded
# meanwhile. Valid only while the same transaction object is the innermost one.
_INTAKE: weakref.WeakKeyDictionary[Connection, tuple[weakref.ref[Transaction], str, FileKek]] = (
    weakref.WeakKeyDictionary()
)


def _innermost(conn: Connection) -> Transaction | None:
    return conn.get_nested_transaction() or conn.get_transaction()


def intake_key(conn: Connection, keys: KekRing, now: datetime) -> FileKek:
    """The key new data keys of ``now``'s week are wrapped under: the week's newest generation,
    made on first use (call it in a write transaction)."""
    period = period_of(now)
    trans = _innermost(conn)
    known = _INTAKE.get(conn)
    if known is not None and trans is not None and known[0]() is trans and known[1] == period:
        return known[2]
    for _ in range(3):
        gens = _generations(conn, period, lock="share")
        if gens:
            g = gens[-1]
            key = _open(g.key_id, g.kek_id, g.wrapped_key, keys)
            if trans is not None:
                _INTAKE[conn] = (weakref.ref(trans), period, key)
            return key
        newest = conn.execute(
            sa.select(sa.func.max(period_keys.c.generation)).where(period_keys.c.period == period)
        ).scalar()
        _new_generation(conn, period, (newest or 0) + 1, keys, now)
    raise RuntimeError(f"period {period}: no key could be made or read; is the store writable?")


def wrap_message_key(conn: Connection, dek: bytes, keys: KekRing, now: datetime) -> dict[str, Any]:
    """The ``message_keys`` columns for a data key stored at ``now``: wrapped under the
    week's period key."""
    key = intake_key(conn, keys, now)
    return {
        "kek_id": key.key_id,
        "period_key_id": key.key_id,
        "wrapped_dek": key.wrap(dek),
        "wrapped_at": now,
    }


def data_key_of(row: Any, keys: KekRing) -> bytes:
    """Unwrap a data key read with :func:`data_key_columns` (joined to its period key).
    Raises :class:`PeriodKeyDestroyed` when its period key is gone."""
    if row.period_key_id is None:
        return at_rest.unwrap_data_key(WrappedKey(row.kek_id, row.wrapped_dek), keys)
    if row.pk_wrapped_key is None:
        raise PeriodKeyDestroyed(f"period key {row.period_key_id} was destroyed")
    key = _open(row.period_key_id, row.pk_kek_id, row.pk_wrapped_key, keys)
    return at_rest.unwrap_data_key(WrappedKey(key.key_id, row.wrapped_dek), key)


def data_key_columns() -> sa.Select[Any]:
    """``message_keys`` joined to its period key: what :func:`data_key_of` reads."""
    return sa.select(
        message_keys.c.message_id,
        message_keys.c.kek_id,
        message_keys.c.wrapped_dek,
        message_keys.c.period_key_id,
        period_keys.c.kek_id.label("pk_kek_id"),
        period_keys.c.wrapped_key.label("pk_wrapped_key"),
    ).select_from(
        message_keys.outerjoin(period_keys, period_keys.c.key_id == message_keys.c.period_key_id)
    )


def kek_usage(conn: Connection) -> dict[str, int]:
    """Period keys per KEK."""
    rows = conn.execute(
        sa.select(period_keys.c.kek_id, sa.func.count()).group_by(period_keys.c.kek_id)
    )
    return {kek_id: n for kek_id, n in rows}


def rewrap_under_active(conn: Connection, keys: KekRing, table: sa.Table = period_keys) -> int:
    """Re-wrap the period keys not under the ring's active KEK (a KEK rotation: a few rows,
    not every message); return how many. ``table``: also the store's own secrets
    (``secret_keys``), wrapped the same way (``kek_id``, ``wrapped_key``, one-column key)."""
    active = keys.active.key_id
    (row_key,) = table.primary_key.columns
    rows = conn.execute(sa.select(table).where(table.c.kek_id != active).with_for_update()).all()
    for r in rows:
        key = at_rest.unwrap_data_key(WrappedKey(r.kek_id, r.wrapped_key), keys)
        wrapped = at_rest.wrap_data_key(key, keys)
        conn.execute(
            table.update()
            .where(row_key == r._mapping[row_key])
            .values(kek_id=wrapped.kek_id, wrapped_key=wrapped.blob)
        )
    return len(rows)


def move_into_period(
    conn: Connection,
    message_id: str,
    dek: bytes,
    stored_at: datetime,
    keys: KekRing,
    now: datetime,
) -> None:
    """Wrap a data key that was under the KEK (a row from before 0012) under the period key of
    the week it was stored in."""
    period = period_of(stored_at)
    gens = _generations(conn, period, lock="share")
    if not gens:
        _new_generation(conn, period, 1, keys, now)
        gens = _generations(conn, period, lock="share")
    g = gens[-1]
    key = _open(g.key_id, g.kek_id, g.wrapped_key, keys)
    conn.execute(
        message_keys.update()
        .where(message_keys.c.message_id == message_id)
        .values(kek_id=key.key_id, period_key_id=key.key_id, wrapped_dek=key.wrap(dek))
    )


# --- shredding after a purge run ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShredResult:
    destroyed: tuple[str, ...]
    """Period key ids deleted by this run."""
    carried: int
    """Surviving data keys re-wrapped out of a destroyed key into a newer generation."""


def _purged_in(conn: Connection, period: str) -> int:
    """Tombstones of messages stored in the week (an index-only count on PostgreSQL)."""
    start, end = period_bounds(period)
    count: int = conn.execute(
        sa.select(sa.func.count())
        .select_from(tombstones)
        .where(tombstones.c.stored_at >= start, tombstones.c.stored_at < end)
    ).scalar_one()
    return count


def dirty_periods(conn: Connection) -> list[str]:
    """Weeks with a key generation made before a message of the week was purged."""
    lowest = conn.execute(
        sa.select(period_keys.c.period, sa.func.min(period_keys.c.purged_before))
        .group_by(period_keys.c.period)
        .order_by(period_keys.c.period)
    ).all()
    return [period for period, seen in lowest if _purged_in(conn, period) > seen]


def _shred_step(
    conn: Connection, period: str, keys: KekRing, actor: str, now: datetime
) -> tuple[int, list[PeriodKeyRow]]:
    """One transaction's worth for one period: carry up to :data:`CARRY_BATCH` survivors out of
    its dirty generations, or, when none is left, delete them. ``(carried, destroyed)``."""
    gens = _generations(conn, period, lock="update")
    purged = _purged_in(conn, period)
    dirty = [g for g in gens if purged > g.purged_before]
    if not dirty:
        return 0, []
    dirty_ids = [g.key_id for g in dirty]
    survivors = conn.execute(
        sa.select(
            message_keys.c.message_id, message_keys.c.period_key_id, message_keys.c.wrapped_dek
        )
        .where(message_keys.c.period_key_id.in_(dirty_ids))
        .order_by(message_keys.c.message_id)
        .limit(CARRY_BATCH)
    ).all()
    if survivors:
        clean = [g for g in gens if g not in dirty]
        if not clean:
            _new_generation(conn, period, gens[-1].generation + 1, keys, now)
            clean = [g for g in _generations(conn, period) if g.key_id not in dirty_ids]
        target = _open(clean[-1].key_id, clean[-1].kek_id, clean[-1].wrapped_key, keys)
        by_id = {g.key_id: g for g in dirty}
        for s in survivors:
            g = by_id[s.period_key_id]
            old = _open(g.key_id, g.kek_id, g.wrapped_key, keys)
            conn.execute(
                message_keys.update()
                .where(message_keys.c.message_id == s.message_id)
                .values(
                    kek_id=target.key_id,
                    period_key_id=target.key_id,
                    wrapped_dek=target.wrap(old.unwrap(s.wrapped_dek)),
                    wrapped_at=now,
                )
            )
        return len(survivors), []
    conn.execute(period_keys.delete().where(period_keys.c.key_id.in_(dirty_ids)))
    _forget(dirty_ids)
    _INTAKE.pop(conn, None)
    audit.append_many(
        conn,
        now=now,
        actor=actor,
        entries=[
            (
                DESTROYED_EVENT,
                {"period_key_id": g.key_id},
                {"period": g.period, "generation": g.generation},
            )
            for g in dirty
        ],
    )
    return 0, dirty


def shred_dirty_periods(store: Store, keys: KekRing, *, actor: str, now: datetime) -> ShredResult:
    """After a purge run's batches: for every week some of whose messages were purged since its
    key was made, carry the survivors into a fresh generation and destroy the old key(s).
    ``now``: the run's retention instant (the tombstones' ``purged_at``)."""
    with store.read() as conn:
        periods = dirty_periods(conn)
    destroyed: list[str] = []
    carried = 0
    for period in periods:
        while True:
            with store.transaction() as conn:
                moved, gone = _shred_step(conn, period, keys, actor, now)
            carried += moved
            destroyed += [g.key_id for g in gone]
            if not moved:
                break
    if destroyed and store.dialect == "postgresql":
        _rewrite_table(store)
    return ShredResult(tuple(destroyed), carried)


def _rewrite_table(store: Store) -> None:
    """PostgreSQL: rewrite ``period_keys`` into a new file (``VACUUM FULL``), so that the
    destroyed keys' dead tuples are not left in the heap for a copy of the data directory to
    find. The table holds a row per week: the rewrite takes milliseconds, under a lock that
    briefly holds back the storing of messages. The old file's blocks are left to the file
    system, and WAL archives keep what they kept (docs/purge-and-audit.md)."""
    with store.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "VACUUM FULL period_keys"
        )

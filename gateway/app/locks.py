"""Job locks: a job runs on one node at a time, even when several nodes share one database.

Usage (the same on both dialects)::

    with job_lock(engine, "purge", owner="RU-FSSP@gw1:4711") as acquired:
        if not acquired:
            return            # another node runs it; the lock says who (JobLock.held_by)
        purge(...)

PostgreSQL: a session-level ``pg_try_advisory_lock`` on a dedicated connection (autocommit, so
no transaction stays open while the job runs) held for the job's duration. The lock key is
derived from the schema and the job name, so two deployments in different schemas of one
database do not block each other. The server drops the lock when the connection dies: a
crashed node never leaves it behind.

SQLite: a row in ``jobs_locks`` with an owner, a random token and an expiry (a lease). A
heartbeat thread renews the lease while the job runs; a crashed process's row expires after
:data:`DEFAULT_LEASE`. Only the holder of the token can release or renew, so a node whose lease
ran out cannot delete the lock of the node that took over.

Lock acquisition is synchronous (SQLAlchemy Core); the scheduler calls it in a thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine

from gateway.model.problems import ConfigurationError
from gateway.store.tables import UtcDateTime

log = logging.getLogger(__name__)

LOCK_TABLE = "jobs_locks"
"""Prefixed ``jobs_`` so that it never collides with the store's tables."""
DEFAULT_LEASE = timedelta(minutes=5)
"""SQLite lease: how long a crashed process's lock blocks the job. Long enough that a heartbeat
delayed by SQLite's 30 s busy timeout still renews in time, short enough for a restart."""
RENEW_EVERY = timedelta(minutes=1)
"""Heartbeat period: a fifth of the lease, so four renewals may fail before the lease ends."""
JOB_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
"""Job names are short codes: they key locks and appear in logs."""
OWNER_MAX_LENGTH = 128
PG_APPLICATION_NAME_MAX = 63
"""PostgreSQL truncates application_name to 63 bytes (NAMEDATALEN - 1)."""
_KEY_DOMAIN = b"gateway-job-lock\x00"

_metadata = sa.MetaData()
job_locks = sa.Table(
    LOCK_TABLE,
    _metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(OWNER_MAX_LENGTH), nullable=False),
    sa.Column("token", sa.String(32), nullable=False),
    sa.Column("acquired_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def default_owner(body_id: str) -> str:
    """``RU-FSSP@host:pid``: names this process in locks and in the skip log of other nodes."""
    return f"{body_id}@{socket.gethostname()}:{os.getpid()}"[:128]


def advisory_key(schema: str, name: str) -> int:
    """The signed 64-bit PostgreSQL advisory-lock key of job ``name`` in ``schema``."""
    digest = hashlib.sha256(_KEY_DOMAIN + schema.encode() + b"\x00" + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class JobLock:
    """One job's lock, acquired at most once. Prefer :func:`job_lock`."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        owner: str,
        *,
        lease: timedelta = DEFAULT_LEASE,
        renew_every: timedelta | None = RENEW_EVERY,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if not JOB_NAME_PATTERN.fullmatch(name):
            raise ValueError(f"job name {name!r} must be a short code of a-z, 0-9 and '-'")
        if not owner or len(owner) > OWNER_MAX_LENGTH:
            raise ValueError(f"lock owner must be 1-{OWNER_MAX_LENGTH} characters")
        dialect = engine.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            raise ConfigurationError(
                f"job locks support sqlite and postgresql, not {dialect!r}; fix [database] url"
            )
        self.engine = engine
        self.name = name
        self.owner = owner
        self.lease = lease
        self.renew_every = renew_every
        self.clock = clock
        self.held_by: str | None = None
        """After a failed :meth:`acquire`: who holds the lock, as far as the database says."""
        self._conn: Connection | None = None
        self._key: int | None = None
        self._token: str | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._token is not None

    def acquire(self) -> bool:
        """Try once, without waiting. True: this object holds the lock until :meth:`release`."""
        if self.held:
            raise RuntimeError(f"job lock {self.name!r} is already held by this object")
        if self.engine.dialect.name == "postgresql":
            return self._acquire_advisory()
        return self._acquire_row()

    def release(self) -> None:
        """Give the lock up. Safe to call when not held."""
        if self.engine.dialect.name == "postgresql":
            self._release_advisory()
        else:
            self._release_row()

    # --- PostgreSQL -------------------------------------------------------------------------

    def _acquire_advisory(self) -> bool:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one() or ""
            key = advisory_key(schema, self.name)
            conn.execute(
                sa.text("SELECT set_config('application_name', :v, false)"),
                {"v": f"gateway job {self.name} {self.owner}"[:PG_APPLICATION_NAME_MAX]},
            )
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            if got:
                self._conn, self._key = conn, key
                return True
            try:
                self.held_by = self._advisory_holder(conn, key)
            except sa.exc.DBAPIError:
                self.held_by = None  # only for the log line; not worth failing the skip over
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        conn.close()
        return False

    @staticmethod
    def _advisory_holder(conn: Connection, key: int) -> str | None:
        # A bigint advisory key shows in pg_locks as classid (high 32 bits), objid (low 32
        # bits), objsubid 1. Best effort: only for the log line of a skipped run.
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        row = conn.execute(
            sa.text(
                "SELECT a.application_name, a.client_addr::text AS addr, a.pid "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.classid = CAST(CAST(:hi AS bigint) AS oid) "
                "AND l.objid = CAST(CAST(:lo AS bigint) AS oid) "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF},
        ).first()
        if row is None:
            return None
        return f"{row.application_name} (pid {row.pid}, {row.addr or 'local'})"

    def _release_advisory(self) -> None:
        conn, key = self._conn, self._key
        if conn is None:
            return
        self._conn = self._key = None
        try:
            released = conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key}).scalar()
            if not released:
                log.error(
                    "job lock %r was no longer held at release (connection reset?); another "
                    "node may have run the job at the same time",
                    self.name,
                )
        except BaseException:
            # Closing the session is what frees a session-level lock; never pool it back.
            conn.invalidate()
            raise
        finally:
            conn.close()

    # --- SQLite -----------------------------------------------------------------------------

    def _acquire_row(self) -> bool:
        with self.engine.begin() as conn:
            # IF NOT EXISTS: two threads may both find the table missing on a fresh node.
            conn.execute(sa.schema.CreateTable(job_locks, if_not_exists=True))
        now = self.clock()
        token = secrets.token_hex(16)
        stmt = sqlite.insert(job_locks).values(
            name=self.name,
            owner=self.owner,
            token=token,
            acquired_at=now,
            expires_at=now + self.lease,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "owner": stmt.excluded.owner,
                "token": stmt.excluded.token,
                "acquired_at": stmt.excluded.acquired_at,
                "expires_at": stmt.excluded.expires_at,
            },
            where=job_locks.c.expires_at <= now,
        )
        with self.engine.begin() as conn:
            row = conn.execute(stmt.returning(job_locks.c.token)).first()
            if row is None or row.token != token:
                holder = conn.execute(
                    sa.select(job_locks.c.owner, job_locks.c.expires_at).where(
                        job_locks.c.name == self.name
                    )
                ).first()
                self.held_by = (
                    f"{holder.owner} (lease until {holder.expires_at.isoformat()})"
                    if holder
                    else None
                )
                return False
        self._token = token
        if self.renew_every is not None:
            self._stop.clear()
            self._heartbeat = threading.Thread(
                target=self._renew_loop, name=f"job-lock-{self.name}", daemon=True
            )
            self._heartbeat.start()
        return True

    def _renew_loop(self) -> None:
        assert self.renew_every is not None
        while not self._stop.wait(self.renew_every.total_seconds()):
            try:
                if not self.renew():
                    log.error(
                        "job lock %r: lease lost (taken over after expiry); stop the job", self.name
                    )
                    return
            except Exception:
                log.exception("job lock %r: renewing the lease failed; retrying", self.name)

    def renew(self) -> bool:
        """Extend the SQLite lease from now; False when this object no longer holds it."""
        if self._token is None:
            return False
        with self.engine.begin() as conn:
            result = conn.execute(
                job_locks.update()
                .where(job_locks.c.name == self.name, job_locks.c.token == self._token)
                .values(expires_at=self.clock() + self.lease)
            )
            return result.rowcount == 1

    def _release_row(self) -> None:
        token = self._token
        if token is None:
            return
        self._token = None
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self._heartbeat = None
        with self.engine.begin() as conn:
            result = conn.execute(
                job_locks.delete().where(job_locks.c.name == self.name, job_locks.c.token == token)
            )
        if result.rowcount != 1:
            log.error(
                "job lock %r had expired and was taken over before release; another node may "
                "have run the job at the same time (lease %s)",
                self.name,
                self.lease,
            )


@contextmanager
def job_lock(
    engine: Engine,
    name: str,
    owner: str,
    *,
    lease: timedelta = DEFAULT_LEASE,
    renew_every: timedelta | None = RENEW_EVERY,
    clock: Callable[[], datetime] = _utcnow,
) -> Iterator[bool]:
    """Try to take job ``name``'s lock for the ``with`` block; yields whether it was taken.

    Never waits: a job that finds its lock taken is skipped (another node is running it).
    ``lease``, ``renew_every`` and ``clock`` apply to SQLite only.
    """
    lock = JobLock(engine, name, owner, lease=lease, renew_every=renew_every, clock=clock)
    acquired = lock.acquire()
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()

"""Opening the store: one engine per process, SQLite or PostgreSQL, the same code above it.

SQLite (the embedded default) is set up on every connection for a gateway: write-ahead log
(readers never block the writer), foreign keys enforced, a busy timeout instead of instant
"database is locked", ``synchronous=NORMAL`` and ``secure_delete`` (purged rows are
overwritten, not left in free pages). With WAL, ``NORMAL`` syncs the log at checkpoints, not at
every commit: a committed transaction survives the process crashing (the log is in the OS's
hands), and after a power cut or kernel crash the database is consistent but may lack the last
transactions before it. Every write transaction starts with ``BEGIN IMMEDIATE``: SQLite then
has exactly one writer at a time, which is what makes outbox claims and audit appends safe
there without row locks.

PostgreSQL (``postgresql+psycopg://…``) serves several gateway processes on one database;
there the repositories use row locks (``FOR UPDATE [SKIP LOCKED]``) in the same statements.
Connections are not pinged on every checkout (that was one round trip per transaction): a
connection that sat idle in the pool for :data:`POSTGRES_IDLE_PING_SECONDS` is pinged, one that
fails the ping is replaced (the pool retries the checkout), and connections older than
:data:`POSTGRES_POOL_RECYCLE_SECONDS` are replaced. A connection that dies while in use (the
server restarted under load) fails its transaction with a disconnect error; SQLAlchemy then
invalidates the whole pool, so the next transaction opens fresh connections. That failure is
not retried here: a transaction's body cannot be replayed safely in general, and the exchange
retries by message id (``Store.run`` retries work that is safe to replay).

Several units of work (several received documents) can share one transaction and one commit,
each under its own savepoint: :meth:`Store.batch`.

The engine is synchronous; aiohttp handlers run store calls in an executor.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from gateway.model.problems import ConfigurationError
from gateway.store import audit, counts

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for the single write lock: longer than any store
transaction (a purge batch, a re-wrap batch), short enough to surface a stuck process."""
POSTGRES_POOL_SIZE = 10
"""Connections kept per process: the executor that runs store calls is about this size."""
POSTGRES_IDLE_PING_SECONDS = 30.0
"""A pooled connection idle longer than this is pinged before use: under load connections go
back and forth within milliseconds and are never pinged; after a quiet spell (a server restart,
a firewall dropping idle flows) the ping finds the dead ones."""
POSTGRES_POOL_RECYCLE_SECONDS = 1800
"""Connections are replaced after half an hour, below the idle cut-offs of common firewalls
and poolers, so a silently dropped connection is rare even without a ping."""
POSTGRES_LOCK_TIMEOUT_MS = 30_000
"""Like the SQLite busy timeout: a row lock held longer than this means something is stuck."""
MIGRATION_LOCK_KEY = 0x67617465776179
"""PostgreSQL advisory lock taken while migrating, so that two nodes starting at once do not
both run the same migration ('gateway' in hex)."""

_SQLITE_BEGIN_OPTION = "gateway_sqlite_begin"
_IDLE_SINCE = "gateway_idle_since"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UnitOutcome:
    """What became of one unit of a :meth:`Store.batch`."""

    key: Any
    """What the caller named the unit (a message id, say); its position if unnamed."""
    error: Exception | None
    """The exception that rolled the unit back (an ``IntegrityError`` on a duplicate id, a
    domain rejection); None when the unit's work stands. It is committed only if the batch is."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class Batch:
    """The open transaction of :meth:`Store.batch`; make a savepoint per unit with :meth:`unit`."""

    conn: Connection
    outcomes: list[UnitOutcome] = field(default_factory=list)
    """One per unit, in the order they ran."""

    @contextmanager
    def unit(self, key: Any = None) -> Iterator[Connection]:
        """A savepoint: an ``Exception`` raised inside rolls back this unit's statements and
        audit events, is recorded in :attr:`outcomes` and does not propagate. A dead connection
        propagates (the whole batch is lost, not just this unit)."""
        outcome_key = len(self.outcomes) if key is None else key
        savepoint = self.conn.begin_nested()
        try:
            yield self.conn
        except Exception as exc:
            if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
                raise
            savepoint.rollback()
            self.outcomes.append(UnitOutcome(outcome_key, exc))
            return
        savepoint.commit()
        self.outcomes.append(UnitOutcome(outcome_key, None))


@dataclass(frozen=True, slots=True)
class Store:
    """The opened store: an engine and the two kinds of transaction the gateway uses."""

    engine: Engine
    writer: threading.RLock | None = field(default=None, compare=False, repr=False)
    """SQLite: this process's writers take turns here before ``BEGIN IMMEDIATE``. SQLite's own
    busy handler sleeps in growing steps (1, 2, 5, 10 ms…) while the lock is taken, so threads
    of one process contending through it lose milliseconds per write; a Python lock wakes the
    next writer the moment the last one commits. Other processes still meet SQLite's lock."""

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A read-write transaction: committed on success, rolled back on any exception.
        On SQLite it holds the single write lock from its first statement."""
        with self._writing(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _writing(self) -> Iterator[None]:
        if self.writer is None:
            yield
            return
        with self.writer:
            yield

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction on one consistent snapshot (several queries, e.g. verifying
        the audit chain in batches, see the same data). SQLite: a deferred transaction that
        takes no write lock. PostgreSQL: ``REPEATABLE READ, READ ONLY``."""
        with self.engine.connect() as conn:
            conn.execution_options(**{audit.READ_ONLY_OPTION: True})
            if self.dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            else:
                conn.execution_options(**{_SQLITE_BEGIN_OPTION: "DEFERRED"})
            conn.begin()
            try:
                yield conn
            finally:
                conn.rollback()

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """One transaction for several units of work, each under its own savepoint::

            with store.batch() as batch:
                for doc in documents:
                    with batch.unit(doc.message_id) as conn:
                        ...  # an exception here undoes this unit only
            failed = [o for o in batch.outcomes if not o.ok]

        One commit (one fsync, one audit head update) for the lot. An exception raised
        outside a unit, a dead connection, or a failed commit rolls back every unit."""
        with self._writing(), self.engine.connect() as conn, conn.begin():
            yield Batch(conn)

    def run(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` in :meth:`transaction`, retried once on a fresh connection if the
        connection was found dead *before* commit (the server restarted): nothing of the
        first attempt was committed, so only work whose non-database effects are safe to
        repeat belongs here. A failure during commit is never retried (it may have landed)."""
        for attempt in range(2):
            finished = False
            try:
                with self.transaction() as conn:
                    result = work(conn)
                    finished = True
                return result
            except sa.exc.DBAPIError as exc:
                if finished or attempt or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def checkpoint_wal(self) -> bool:
        """SQLite: copy the write-ahead log into the database file and truncate it, so that
        rows just deleted (a purge) do not linger in ``gateway.db-wal`` until SQLite's own next
        checkpoint, which can take days on a quiet node. True when the log was emptied (a
        reader still inside a transaction can hold it back); PostgreSQL: nothing to do."""
        if self.dialect != "sqlite":
            return True
        # Outside any transaction (a checkpoint cannot run inside one): the driver's own
        # connection, which runs in autocommit here (see _sqlite_setup).
        with self._writing():
            raw = self.engine.raw_connection()
            try:
                busy, _log_frames, _copied = (
                    raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                )
            finally:
                raw.close()
        return busy == 0

    def dispose(self) -> None:
        """Close every pooled connection (on shutdown)."""
        self.engine.dispose()


class StorageFault(StrEnum):
    """Why the store could not do its work, when it is the store's state and not the request:
    the answer is 503 (try again later), never 500."""

    FULL = "full"
    """SQLite could not write: the disk (or the process's file-size limit) is full, or the write
    failed with an I/O error. The transaction was rolled back; nothing was half-written."""
    UNAVAILABLE = "unavailable"
    """The database server is unreachable, restarting or shutting down (PostgreSQL), or the
    connection died under the transaction. Nothing of the transaction was committed."""


def storage_fault(exc: BaseException) -> StorageFault | None:
    """The :class:`StorageFault` behind ``exc``, or None when ``exc`` is not one (a constraint
    violation, a programming error: those stay errors of their own)."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    name = getattr(exc.orig, "sqlite_errorname", None)
    if name is not None:
        # SQLITE_FULL on ENOSPC; SQLITE_IOERR_WRITE (and its kin) on EFBIG, EIO.
        full = name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR")
        return StorageFault.FULL if full else None
    if exc.connection_invalidated or isinstance(
        exc, sa.exc.OperationalError | sa.exc.InterfaceError
    ):
        return StorageFault.UNAVAILABLE
    return None


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA secure_delete=ON",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _postgres_setup(engine: Engine, idle_ping_seconds: float) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < idle_ping_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool invalidates this connection and checks out another (up to 3 times).
            raise sa.exc.DisconnectionError(f"idle connection is dead: {exc}") from exc


STORE_FILE_MODE = 0o600
"""The SQLite file holds every message: the node's account alone reads it (SQLite gives its
``-wal`` and ``-shm`` files the same mode)."""

DATA_DIR_MODE = 0o700
"""A data directory the gateway creates: keys, store and exports are nobody else's to list."""


def prepare_sqlite_file(path: Path) -> None:
    """Create ``path``'s folder (0700) and the empty store file (0600) if they are missing.

    SQLite would create the file itself, with the process's umask (usually 0644); a missing
    folder would be its "unable to open database file". An existing file or folder keeps the
    mode its operator gave it."""
    path.parent.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, STORE_FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def open_store(
    url: str, *, echo: bool = False, idle_ping_seconds: float = POSTGRES_IDLE_PING_SECONDS
) -> Store:
    """Create the engine for ``url`` (``sqlite:///path.db`` or ``postgresql+psycopg://…``).

    Does not migrate: call :func:`migrate` once at start-up (``gateway`` CLI does).
    ``idle_ping_seconds``: PostgreSQL only, see :data:`POSTGRES_IDLE_PING_SECONDS`.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigurationError(
            "[database] url is not a database URL; use sqlite:///path/gateway.db or "
            "postgresql+psycopg://user@host:5432/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigurationError(
                "[database] url: an in-memory SQLite database loses every message on exit; "
                "give a file path (sqlite:///node-data/gateway.db)"
            )
        prepare_sqlite_file(Path(parsed.database))
        engine = sa.create_engine(parsed, echo=echo)
        _sqlite_setup(engine)
    elif backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise ConfigurationError(
                "[database] url: use the psycopg 3 driver, postgresql+psycopg://…"
            )
        engine = sa.create_engine(
            parsed,
            echo=echo,
            pool_size=POSTGRES_POOL_SIZE,
            pool_pre_ping=False,
            pool_recycle=POSTGRES_POOL_RECYCLE_SECONDS,
            # Keep any options the URL carries (a search_path, say) and add the lock timeout.
            connect_args={
                "options": " ".join(
                    filter(
                        None,
                        (
                            str(parsed.query.get("options", "")),
                            f"-c lock_timeout={POSTGRES_LOCK_TIMEOUT_MS}",
                        ),
                    )
                )
            },
        )
        _postgres_setup(engine, idle_ping_seconds)
    else:
        raise ConfigurationError(
            f"[database] url: {backend!r} is not supported; use sqlite or postgresql+psycopg"
        )
    audit.install(engine)
    counts.install(engine)
    return Store(engine, threading.RLock() if backend == "sqlite" else None)


def _alembic_config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("gateway.store") / "migrations"))
    cfg.attributes["connection"] = conn
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest) with Alembic, no alembic.ini."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            conn.commit()
        try:
            with conn.begin():
                command.upgrade(_alembic_config(conn), revision)
        finally:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
                conn.commit()


def open_current_store(database_url: str) -> Store:
    """Open the node's store for use (:func:`open_current`: a new store gets the schema, one at
    another revision is refused until ``gateway db upgrade``): how every command and the node
    open it, in one place. Nothing is left open when it fails."""
    store = open_store(database_url)
    try:
        open_current(store.engine)
    except BaseException:
        store.dispose()
        raise
    return store


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


class SchemaState(StrEnum):
    """Where a store's schema stands against this code's newest revision."""

    CURRENT = "current"
    EMPTY = "empty"
    """No schema yet: a new store."""
    BEHIND = "behind"
    """An older revision of this code's chain: ``gateway db upgrade`` brings it to head."""
    UNKNOWN = "unknown"
    """A revision this code does not know: written by a newer gateway."""


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: str | None
    head: str
    state: SchemaState
    pending: tuple[str, ...] = ()
    """Revisions ``gateway db upgrade`` would apply, oldest first."""


class StoreNotCurrent(Exception):
    """The store's schema is not the one this code reads; ``code`` is the stable error code."""

    def __init__(self, status: SchemaStatus) -> None:
        self.status = status
        if status.state is SchemaState.UNKNOWN:
            self.code = "STORE_NEWER_THAN_GATEWAY"
            message = (
                f"схема хранилища {status.current} неизвестна этой версии шлюза (последняя "
                f"{status.head}): её обновил более новый шлюз; установите его"
            )
        else:
            self.code = "STORE_UPGRADE_NEEDED"
            message = (
                f"схема хранилища {status.current} старше кода ({status.head}); выполните "
                "gateway db upgrade --config NODE.toml (или запустите gateway serve)"
            )
        super().__init__(message)


def head_revision() -> str:
    """This code's newest schema revision."""
    head = _scripts().get_current_head()
    assert head is not None  # the package ships its migrations
    return head


def _scripts() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(files("gateway.store") / "migrations"))


def schema_status(engine: Engine) -> SchemaStatus:
    """The store's revision against this code's head, without changing anything."""
    from alembic.script.revision import ResolutionError

    scripts = _scripts()
    head = scripts.get_current_head()
    current = current_revision(engine)
    if current == head:
        return SchemaStatus(current, head, SchemaState.CURRENT)
    try:
        pending = [r.revision for r in scripts.iterate_revisions(head, current)]
    except ResolutionError:  # "No such revision": one a newer gateway wrote
        return SchemaStatus(current, head, SchemaState.UNKNOWN)
    state = SchemaState.EMPTY if current is None else SchemaState.BEHIND
    return SchemaStatus(current, head, state, tuple(reversed(pending)))


def open_current(engine: Engine) -> None:
    """Make sure the store is at this code's schema before a command uses it: a new (empty)
    store gets the schema; an older or newer one raises :class:`StoreNotCurrent`, because
    changing a schema that holds data is left to ``gateway db upgrade`` and ``gateway serve``
    (an operator decides when, after a backup)."""
    status = schema_status(engine)
    if status.state is SchemaState.EMPTY:
        migrate(engine)
    elif status.state is not SchemaState.CURRENT:
        raise StoreNotCurrent(status)

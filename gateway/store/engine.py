"""Opening the store: one engine per process, SQLite or PostgreSQL, the same code above it.

SQLite (the embedded default) is set up on every connection for a gateway: write-ahead log
(readers never block the writer), foreign keys enforced, a busy timeout instead of instant
"database is locked", ``synchronous=FULL`` (a committed message survives a power cut) and
``secure_delete`` (purged rows are overwritten, not left in free pages). Every write
transaction starts with ``BEGIN IMMEDIATE``: SQLite then has exactly one writer at a time,
which is what makes outbox claims and audit appends safe there without row locks.

PostgreSQL (``postgresql+psycopg://…``) serves several gateway processes on one database;
there the repositories use row locks (``FOR UPDATE [SKIP LOCKED]``) in the same statements.

The engine is synchronous; aiohttp handlers run store calls in an executor.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from gateway.model.problems import ConfigurationError

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for the single write lock: longer than any store
transaction (a purge batch, a re-wrap batch), short enough to surface a stuck process."""
POSTGRES_POOL_SIZE = 10
"""Connections kept per process: the executor that runs store calls is about this size."""
POSTGRES_LOCK_TIMEOUT_MS = 30_000
"""Like the SQLite busy timeout: a row lock held longer than this means something is stuck."""
MIGRATION_LOCK_KEY = 0x67617465776179
"""PostgreSQL advisory lock taken while migrating, so that two nodes starting at once do not
both run the same migration ('gateway' in hex)."""

_SQLITE_BEGIN_OPTION = "gateway_sqlite_begin"


@dataclass(frozen=True, slots=True)
class Store:
    """The opened store: an engine and the two kinds of transaction the gateway uses."""

    engine: Engine

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A read-write transaction: committed on success, rolled back on any exception.
        On SQLite it holds the single write lock from its first statement."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction on one consistent snapshot (several queries, e.g. verifying
        the audit chain in batches, see the same data). SQLite: a deferred transaction that
        takes no write lock. PostgreSQL: ``REPEATABLE READ, READ ONLY``."""
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            else:
                conn.execution_options(**{_SQLITE_BEGIN_OPTION: "DEFERRED"})
            conn.begin()
            try:
                yield conn
            finally:
                conn.rollback()

    def dispose(self) -> None:
        """Close every pooled connection (on shutdown)."""
        self.engine.dispose()


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
            "PRAGMA synchronous=FULL",
            "PRAGMA secure_delete=ON",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


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


def open_store(url: str, *, echo: bool = False) -> Store:
    """Create the engine for ``url`` (``sqlite:///path.db`` or ``postgresql+psycopg://…``).

    Does not migrate: call :func:`migrate` once at start-up (``gateway`` CLI does).
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
            pool_pre_ping=True,
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
    else:
        raise ConfigurationError(
            f"[database] url: {backend!r} is not supported; use sqlite or postgresql+psycopg"
        )
    return Store(engine)


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


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()

"""The node's database as the operations commands see it, without changing it: which schema
revision it is at and where that stands against the code's (``gateway check-config``, ``gateway
db status``, ``gateway backup|restore``), the explicit upgrade (``gateway db upgrade``), and the
SQLite file's preparation for a restore. Every other command opens it with
:meth:`gateway.app.context.AppContext.open`, which refuses a store at another revision."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from gateway.store import (
    SchemaState,
    SchemaStatus,
    StoreNotCurrent,
    current_revision,
    migrate,
    open_store,
    schema_status,
)
from gateway.store.engine import prepare_sqlite_file

__all__ = [
    "SchemaState",
    "SchemaStatus",
    "StoreNotCurrent",
    "StoreRevision",
    "head_revision",
    "prepare_sqlite_file",
    "schema_state",
    "schema_status_of",
    "server_clock",
    "upgrade_store",
]


def schema_status_of(database_url: str) -> tuple[str, SchemaStatus]:
    """The database's dialect and its schema's standing against this code's migrations
    (connects, reads, disconnects; raises when the database is down)."""
    store = open_store(database_url)
    try:
        return store.engine.dialect.name, schema_status(store.engine)
    finally:
        store.dispose()


def upgrade_store(database_url: str, say: Callable[[str], object]) -> None:
    """``gateway db upgrade`` (and ``serve``, which says so): bring the store to this code's
    newest revision, telling ``say`` what was done; a store written by a newer gateway is
    refused (:class:`StoreNotCurrent`)."""
    store = open_store(database_url)
    try:
        status = schema_status(store.engine)
        if status.state is SchemaState.UNKNOWN:
            raise StoreNotCurrent(status)
        if status.state is SchemaState.CURRENT:
            say(f"схема хранилища {status.current} — последняя, обновлять нечего")
            return
        say(f"схема хранилища {status.current or 'пуста'}: применяются {', '.join(status.pending)}")
        migrate(store.engine)
        say(f"схема хранилища обновлена до {status.head}")
    finally:
        store.dispose()


def server_clock(database_url: str) -> datetime:
    """The database server's time (``SELECT now()``): a second machine's clock for
    ``gateway check-config``'s clock check (PostgreSQL)."""
    store = open_store(database_url)
    try:
        with store.engine.connect() as conn:
            moment: datetime = conn.execute(sa.text("SELECT now()")).scalar_one()
    finally:
        store.dispose()
    return moment


@dataclass(frozen=True, slots=True)
class StoreRevision:
    dialect: str
    """``sqlite`` or ``postgresql``."""
    revision: str | None
    """The revision the database is at; None: never migrated (empty)."""


def schema_state(database_url: str) -> StoreRevision:
    """Connect, read the schema revision, disconnect (raises when the database is down)."""
    store = open_store(database_url)
    try:
        return StoreRevision(store.engine.dialect.name, current_revision(store.engine))
    finally:
        store.dispose()


def head_revision() -> str | None:
    """The revision the code's migrations end at."""
    head: str | None = ScriptDirectory(
        str(files("gateway.store") / "migrations")
    ).get_current_head()
    return head

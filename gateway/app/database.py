"""The node's database as the operations commands see it, without migrating it: which schema
revision it is at (``gateway check-config``, ``gateway backup|restore``), and the SQLite file's
preparation for a restore. Every other command opens it with
:meth:`gateway.app.context.AppContext.open`, which migrates it first."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from alembic.script import ScriptDirectory

from gateway.store import current_revision, open_store
from gateway.store.engine import prepare_sqlite_file

__all__ = ["SchemaState", "head_revision", "prepare_sqlite_file", "schema_state"]


@dataclass(frozen=True, slots=True)
class SchemaState:
    dialect: str
    """``sqlite`` or ``postgresql``."""
    revision: str | None
    """The revision the database is at; None: never migrated (empty)."""


def schema_state(database_url: str) -> SchemaState:
    """Connect, read the schema revision, disconnect (raises when the database is down)."""
    store = open_store(database_url)
    try:
        return SchemaState(store.engine.dialect.name, current_revision(store.engine))
    finally:
        store.dispose()


def head_revision() -> str | None:
    """The revision the code's migrations end at."""
    head: str | None = ScriptDirectory(
        str(files("gateway.store") / "migrations")
    ).get_current_head()
    return head

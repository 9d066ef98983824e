"""The few places where SQLite and PostgreSQL need different SQL, in one module.

Everything else in the store is the same statement on both. Here: ``INSERT … ON CONFLICT DO
NOTHING`` (both support it, through their own SQLAlchemy constructs). Row locks
(``FOR UPDATE [SKIP LOCKED]``) are written once with ``with_for_update``: SQLAlchemy leaves them
out on SQLite, where a ``BEGIN IMMEDIATE`` transaction already holds the only write lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from gateway.model.problems import ConfigurationError


def insert_if_absent(
    conn: Connection, table: sa.Table, index_columns: Sequence[str], values: Mapping[str, Any]
) -> bool:
    """``INSERT INTO table … ON CONFLICT (index_columns) DO NOTHING``; True if the row went in.

    On PostgreSQL a concurrent insert of the same key waits for the other transaction and then
    does nothing (or goes in, if the other rolled back): exactly one wins.
    """
    name = conn.dialect.name
    if name == "postgresql":
        stmt: Any = postgresql.insert(table)
    elif name == "sqlite":
        stmt = sqlite.insert(table)
    else:
        # open_store refuses other URLs already; this guards a hand-made engine.
        raise ConfigurationError(
            f"database dialect {name!r} is not supported: use sqlite:///… or "
            "postgresql+psycopg://… in [database] url"
        )
    stmt = stmt.values(dict(values)).on_conflict_do_nothing(index_elements=list(index_columns))
    # RETURNING, not rowcount: drivers disagree on rowcount when RETURNING is implicit.
    returned = conn.execute(stmt.returning(table.c[index_columns[0]])).first()
    return returned is not None

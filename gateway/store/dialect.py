"""The few places where SQLite and PostgreSQL need different SQL, in one module.

Everything else in the store is the same statement on both. Here: a set of ids as one
parameter (:func:`in_text_set`), ``INSERT … ON CONFLICT DO
NOTHING`` and ``INSERT … ON CONFLICT DO UPDATE`` (both support them, through their own
SQLAlchemy constructs). Row locks (``FOR UPDATE [SKIP LOCKED]``) are written once with
``with_for_update``: SQLAlchemy leaves them out on SQLite, where a ``BEGIN IMMEDIATE``
transaction already holds the only write lock.

Statements on the exchange's hot path are built once and executed with parameters: building
a statement (``.values(…)``, ``.where(…)``) costs several times what executing it does (see
docs/store.md, "Hot path"). The dialect-specific ones here are built lazily, once per
dialect and table, and kept in :data:`_BUILT`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from gateway.model.problems import ConfigurationError

_BUILT: dict[tuple[Any, ...], Any] = {}
"""Prebuilt dialect-specific statements, keyed by (purpose, dialect, table, columns)."""


def insert_construct(conn: Connection, table: sa.Table) -> Any:
    """The connection's dialect's ``INSERT`` for ``table``: the one with ``ON CONFLICT``
    (``on_conflict_do_nothing`` / ``on_conflict_do_update``), which plain ``sa.insert`` lacks."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    # open_store refuses other URLs already; this guards a hand-made engine.
    raise ConfigurationError(
        f"database dialect {name!r} is not supported: use sqlite:///… or "
        "postgresql+psycopg://… in [database] url"
    )


def insert_if_absent(
    conn: Connection, table: sa.Table, index_columns: Sequence[str], values: Mapping[str, Any]
) -> bool:
    """``INSERT INTO table … ON CONFLICT (index_columns) DO NOTHING``; True if the row went in.

    On PostgreSQL a concurrent insert of the same key waits for the other transaction and then
    does nothing (or goes in, if the other rolled back): exactly one wins.
    """
    key = ("absent", conn.dialect.name, table, tuple(index_columns))
    stmt = _BUILT.get(key)
    if stmt is None:
        # No .values(): the columns come from the parameters at execution (compiled once per
        # set of column names and cached by SQLAlchemy).
        stmt = (
            insert_construct(conn, table)
            .on_conflict_do_nothing(index_elements=list(index_columns))
            # RETURNING, not rowcount: drivers disagree on rowcount when RETURNING is implicit.
            .returning(table.c[index_columns[0]])
        )
        _BUILT[key] = stmt
    return conn.execute(stmt, dict(values)).first() is not None


def insert_all_if_absent(
    conn: Connection,
    table: sa.Table,
    index_columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """:func:`insert_if_absent` for several rows in ONE statement (``INSERT … VALUES (…), (…)
    ON CONFLICT (index_columns) DO NOTHING``), where one statement a row cost a round trip
    each; which rows went in is not reported. Both stores take the same SQL; it is a text
    statement because SQLAlchemy compiles a multi-row ``insert().values([…])`` again on every
    execution (it is not cached), which cost more than the statements it saves."""
    if not rows:
        return
    names = list(rows[0])
    key = ("absent-all", conn.dialect.name, table, tuple(names), tuple(index_columns), len(rows))
    stmt = _BUILT.get(key)
    if stmt is None:
        # Identifiers from the table's own metadata (table.c[...] refuses any other name),
        # quoted by the dialect; the values are bound parameters.
        quote = conn.dialect.identifier_preparer.quote
        columns = ", ".join(quote(table.c[name].name) for name in names)
        conflict = ", ".join(quote(table.c[name].name) for name in index_columns)
        values = ", ".join(
            "(" + ", ".join(f":{name}_{i}" for name in names) + ")" for i in range(len(rows))
        )
        sql = f"INSERT INTO {quote(table.name)} ({columns}) VALUES {values} "  # noqa: S608
        stmt = sa.text(f"{sql}ON CONFLICT ({conflict}) DO NOTHING").bindparams(
            *(
                sa.bindparam(f"{name}_{i}", type_=table.c[name].type)
                for i in range(len(rows))
                for name in names
            )
        )
        _BUILT[key] = stmt
    conn.execute(stmt, {f"{name}_{i}": row[name] for i, row in enumerate(rows) for name in names})


def upsert(
    conn: Connection,
    table: sa.Table,
    index_columns: Sequence[str],
    update_columns: Sequence[str],
    values: Mapping[str, Any],
) -> None:
    """``INSERT INTO table … ON CONFLICT (index_columns) DO UPDATE SET update_columns = the new
    row's``: one statement where an update-then-insert took two (SQLite ≥ 3.24, PostgreSQL)."""
    key = ("upsert", conn.dialect.name, table, tuple(index_columns), tuple(update_columns))
    stmt = _BUILT.get(key)
    if stmt is None:
        insert = insert_construct(conn, table)
        stmt = insert.on_conflict_do_update(
            index_elements=list(index_columns),
            set_={name: insert.excluded[name] for name in update_columns},
        )
        _BUILT[key] = stmt
    conn.execute(stmt, dict(values))


_SET_SEPARATOR = "\x1f"
"""Joins a set's values into one text parameter (ASCII unit separator: no id contains it)."""


def in_text_set(conn: Connection, column: sa.ColumnElement[Any], values: Sequence[str]) -> Any:
    """``column`` is one of ``values``, sent as ONE text parameter whatever their number:
    ``= ANY(string_to_array(:joined, US))`` on PostgreSQL, ``IN (SELECT value FROM
    json_each(:json))`` on SQLite.

    A plain ``IN (…)`` of thousands of values costs a bound parameter each (SQLAlchemy and
    the driver process every one, and SQLite caps their number), and even a text array is
    quoted element by element by the driver; set-based statements over a purge batch send
    the set as one string instead.
    """
    items = list(values)
    if conn.dialect.name == "postgresql":
        joined = _SET_SEPARATOR.join(items)
        if joined.count(_SET_SEPARATOR) != max(len(items) - 1, 0):
            raise ValueError("an id in the set contains the unit separator (0x1F)")
        return column == sa.any_(
            sa.func.string_to_array(
                sa.bindparam(None, joined, type_=sa.Text(), unique=True),
                sa.literal_column("chr(31)"),
            )
        )
    listed = sa.func.json_each(
        sa.bindparam(None, json.dumps(items), type_=sa.Text(), unique=True)
    ).table_valued("value")
    return column.in_(sa.select(listed.c.value))


def keyed_batch_settings(conn: Connection) -> None:
    """Settings for the rest of this transaction, a purge batch: at most a thousand rows read
    and deleted by key out of millions, short, and redone by the next run if lost.

    * Plan as key lookups: given a set of a thousand ids, PostgreSQL's planner estimated a
      sequential scan of ``messages`` cheaper than the index at 100,000 rows (1 %) and chose
      it for every batch; and a plan that looks that costly is JIT-compiled on each run, which
      takes longer than the batch's work.
    * Commit without waiting for the WAL flush (``synchronous_commit = off``): a server crash
      may undo the last few batches' commits — never half of one, they stay atomic — and the
      next run purges those messages again; the run's report commits synchronously, which
      flushes every batch before it. SQLite's ``synchronous=NORMAL`` (engine.py) already
      commits so.

    ``SET LOCAL`` ends with the transaction. On SQLite (which probes the index for ``IN (SELECT
    …)`` by itself): a page cache of :data:`SQLITE_PURGE_CACHE_KIB` instead of the default 2 MiB
    for this connection, so that a transaction's deletions spread over every index of a large
    store are not read again, or spilled to the log, while it runs (a 100,000-message purge:
    18.4 s of CPU instead of 23.2, benchmarks/purge_bench.py). It stays with the pooled
    connection: a bounded 64 MiB more, once."""
    if conn.dialect.name == "postgresql":
        for setting in ("enable_seqscan = off", "jit = off", "synchronous_commit = off"):
            conn.exec_driver_sql(f"SET LOCAL {setting}")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_PURGE_CACHE_KIB}")


SQLITE_PURGE_CACHE_KIB = 65_536
"""SQLite page cache of a connection that ran a purge transaction (:func:`keyed_batch_settings`)."""

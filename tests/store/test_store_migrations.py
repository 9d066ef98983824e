"""Migrations: from an empty database to head on both dialects; the result is the metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from gateway.model.problems import ConfigurationError
from gateway.store import current_revision, migrate, open_store
from gateway.store.engine import _alembic_config
from gateway.store.tables import audit_head, metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("pg_schema")("migrations")


def test_migrate_from_empty_to_head(empty_url: str) -> None:
    store = open_store(empty_url)
    try:
        assert current_revision(store.engine) is None
        migrate(store.engine)
        with store.engine.connect() as conn:
            head = ScriptDirectory.from_config(_alembic_config(conn)).get_current_head()
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), metadata
            )
            assert conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).one() == (
                0,
                bytes(32),
            )
        assert current_revision(store.engine) == head
        assert diff == []  # the migrations build exactly what tables.py declares
        migrate(store.engine)  # a second start changes nothing
        assert current_revision(store.engine) == head
    finally:
        store.dispose()


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with store.read() as conn:
            pragmas = {
                p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                for p in (
                    "journal_mode",
                    "foreign_keys",
                    "busy_timeout",
                    "secure_delete",
                    "synchronous",
                )
            }
        assert pragmas == {
            "journal_mode": "wal",
            "foreign_keys": 1,
            "busy_timeout": 30000,
            "secure_delete": 1,
            "synchronous": 1,  # NORMAL: see docs/store.md on durability
        }
    finally:
        store.dispose()


@pytest.mark.parametrize(
    "url, message",
    [
        ("sqlite://", "in-memory"),
        ("mysql://x@y/z", "not supported"),
        ("postgresql+psycopg2://x@y/z", "psycopg 3"),
        ("not a url", "not a database URL"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_store(url)


def test_postgres_keeps_url_options_and_sets_lock_timeout(pg_session_store) -> None:
    with pg_session_store.read() as conn:
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "30s"
        assert conn.exec_driver_sql("SHOW search_path").scalar().startswith("gw_test_")


def test_attachment_segments_are_stored_out_of_line_uncompressed_and_the_change_reverses(
    empty_url: str,
) -> None:
    """0018: PostgreSQL stores segment ciphertext EXTERNAL (no pglz attempt on bytes that never
    compress); down before it and up again on both stores."""
    store = open_store(empty_url)
    storage = sa.text(
        "SELECT attstorage FROM pg_attribute WHERE attrelid = 'attachment_segments'::regclass "
        "AND attname = 'ciphertext'"
    )

    def stored_as() -> str | None:
        if store.dialect != "postgresql":
            return None
        with store.read() as conn:
            return str(conn.execute(storage).scalar_one())

    try:
        migrate(store.engine)
        assert stored_as() in (None, "e")
        with store.engine.connect() as conn, conn.begin():
            config = _alembic_config(conn)
            (revision,) = [
                r
                for r in ScriptDirectory.from_config(config).walk_revisions()
                if r.module.__file__ and "segments_stored_uncompressed" in r.module.__file__
            ]
            command.downgrade(config, str(revision.down_revision))
        assert stored_as() in (None, "x")
        migrate(store.engine)
        assert stored_as() in (None, "e")
    finally:
        store.dispose()


def test_the_tombstones_run_key_is_dropped_and_the_change_reverses(empty_url: str) -> None:
    """0022: no per-row check of a tombstone's run (the reports' key stays); down to 0021 it
    comes back; up again, on both stores."""
    store = open_store(empty_url)

    def referencing_runs() -> set[str]:
        inspector = sa.inspect(store.engine)
        return {
            name
            for name in inspector.get_table_names()
            for fk in inspector.get_foreign_keys(name)
            if fk["referred_table"] == "purge_runs"
        }

    try:
        migrate(store.engine)
        assert referencing_runs() == {"purge_reports"}
        with store.engine.connect() as conn, conn.begin():
            command.downgrade(_alembic_config(conn), "0021")
        assert referencing_runs() == {"purge_reports", "tombstones"}
        migrate(store.engine)
        assert referencing_runs() == {"purge_reports"}
    finally:
        store.dispose()


def test_the_purged_rows_foreign_keys_are_dropped_and_the_change_reverses(
    empty_url: str,
) -> None:
    """0020: no foreign key points at the rows the purge deletes itself (their per-row
    triggers); down to 0019 they come back; up again on both
    stores."""
    store = open_store(empty_url)

    def referencing(parent: str) -> set[str]:
        inspector = sa.inspect(store.engine)
        return {
            name
            for name in inspector.get_table_names()
            for fk in inspector.get_foreign_keys(name)
            if fk["referred_table"] == parent
        }

    try:
        migrate(store.engine)
        assert referencing("messages") == set()
        assert referencing("conversations") == {"messages"}
        with store.engine.connect() as conn, conn.begin():
            config = _alembic_config(conn)
            command.downgrade(config, "0019")
        assert referencing("messages") == {
            "message_keys",
            "verification_reports",
            "attachments",
            "outbox",
        }
        assert referencing("attachments") == {"attachment_segments"}
        assert referencing("conversations") == {
            "messages",
            "conversation_machines",
            "search_tags",
            "late_answers",
            "resends",
            "originals",
        }
        migrate(store.engine)
        assert referencing("messages") == set()
        assert referencing("outbox") == set()
    finally:
        store.dispose()


HELD_COLUMNS = {"held_for", "claimed_sha256", "held_since"}


def test_held_parts_columns_come_and_go(empty_url: str) -> None:
    """0023: the attachments' ``held_for``, ``claimed_sha256``, ``held_since`` and their index;
    down to 0022 they go (a held part's row stays a staged attachment); up again, on both
    stores."""
    store = open_store(empty_url)

    def held_columns() -> tuple[set[str], set[str]]:
        inspector = sa.inspect(store.engine)
        columns = {c["name"] for c in inspector.get_columns("attachments")}
        indexes = {i["name"] or "" for i in inspector.get_indexes("attachments")}
        return columns & HELD_COLUMNS, indexes & {"ix_attachments_held"}

    try:
        migrate(store.engine)
        assert held_columns() == (HELD_COLUMNS, {"ix_attachments_held"})
        with store.engine.connect() as conn, conn.begin():
            command.downgrade(_alembic_config(conn), "0022")
        assert held_columns() == (set(), set())
        migrate(store.engine)
        assert held_columns() == (HELD_COLUMNS, {"ix_attachments_held"})
    finally:
        store.dispose()

"""Fixtures: every store test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``GATEWAY_TEST_PG_URL`` (default: the local trust-auth server,
database ``test``). Each test run gets its own schema, migrated once and dropped at the end;
each test starts from empty tables (truncated). Without a reachable server the PostgreSQL half
is skipped locally and fails in CI (``CI=true``): a green CI means both halves ran.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.crypto.keys.kek import FileKek, KekRing
from gateway.store import Store, migrate, open_store
from gateway.store.tables import audit_head, metadata
from tests.tooling import IN_CI

PG_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _pg_unavailable(reason: str) -> None:
    message = (
        f"PostgreSQL at {PG_URL} is not reachable ({reason}); start it or set GATEWAY_TEST_PG_URL"
    )
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(PG_URL, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        _pg_unavailable(type(exc.orig).__name__)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pg_schema_factory(pg_admin: sa.Engine) -> Iterator:
    """Makes fresh schemas (URLs with that search_path); drops them all at the end."""
    made: list[str] = []

    def make() -> str:
        schema = f"gw_test_{os.getpid()}_{secrets.token_hex(4)}"
        with pg_admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        made.append(schema)
        return f"{PG_URL}?options=-csearch_path%3D{schema}"

    yield make
    with pg_admin.begin() as conn:
        for schema in made:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(scope="session")
def pg_session_store(pg_schema_factory) -> Iterator[Store]:
    store = open_store(pg_schema_factory())
    migrate(store.engine)
    yield store
    store.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "gateway.db"
    store = open_store(f"sqlite:///{path}")
    migrate(store.engine)
    store.dispose()  # the last connection closing checkpoints the WAL into the file
    return path


def _reset_postgres(store: Store) -> None:
    # DELETE, not TRUNCATE: on a handful of rows it is ten times quicker.
    with store.transaction() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
        conn.execute(audit_head.insert().values(id=1, seq=0, hash=bytes(32)))
        # The scheduler's own tables (created on first use, outside the store's schema).
        conn.execute(sa.text("DROP TABLE IF EXISTS jobs_slots, jobs_apscheduler"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store on each dialect."""
    if request.param == "sqlite":
        path = tmp_path / "gateway.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        opened = open_store(f"sqlite:///{path}")
        yield opened
        opened.dispose()
    else:
        opened = request.getfixturevalue("pg_session_store")
        _reset_postgres(opened)
        yield opened


@pytest.fixture
def ring() -> KekRing:
    return KekRing.single(FileKek("kek-test-1", secrets.token_bytes(32)))

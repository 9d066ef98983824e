"""Suite-wide settings and the fixtures shared across packages.

In CI (CI=true) a skipped test fails the run: green means all ran.

PostgreSQL comes from ``GATEWAY_TEST_PG_URL`` (default: the local trust-auth server, database
``test``). ``pg_schema`` makes fresh schemas (each dropped at the end of the run); ``store`` is a
migrated, empty store on SQLite and on PostgreSQL (one schema per run, emptied before each
test). Without a reachable server the PostgreSQL tests are skipped locally and fail in CI.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.crypto.keys.kek import FileKek, KekRing
from gateway.store import Store, migrate, open_store
from gateway.store.tables import audit_head, metadata
from tests.tooling import IN_CI, prepare_softhsm

PG_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

_softhsm_dir: tempfile.TemporaryDirectory[str] | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _softhsm_dir
    _softhsm_dir = tempfile.TemporaryDirectory(prefix="gw-softhsm-")
    prepare_softhsm(_softhsm_dir.name)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _softhsm_dir is not None:
        _softhsm_dir.cleanup()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; in CI every test must run.")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(PG_URL, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        message = (
            f"PostgreSQL at {PG_URL} is not reachable ({type(exc.orig).__name__}); "
            "start it or set GATEWAY_TEST_PG_URL"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pg_schema(pg_admin: sa.Engine) -> Iterator[Callable[..., str]]:
    """Make fresh schemas: ``pg_schema("sender")`` → a database URL working in it. Every schema
    made is dropped at the end of the run."""
    made: list[str] = []

    def make(label: str = "test") -> str:
        schema = f"gw_{label}_{os.getpid()}_{secrets.token_hex(4)}"
        with pg_admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        made.append(schema)
        return f"{PG_URL}?options=-csearch_path%3D{schema}"

    yield make
    # One transaction per schema: dropping a schema locks each of its tables, indexes and
    # sequences until commit, and a run's few hundred schemas in one transaction exceeded
    # PostgreSQL's shared lock table ("out of shared memory", max_locks_per_transaction).
    for schema in made:
        with pg_admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(scope="session")
def pg_session_store(pg_schema: Callable[..., str]) -> Iterator[Store]:
    store = open_store(pg_schema("test"))
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

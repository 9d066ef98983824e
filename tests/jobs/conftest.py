"""Fixtures: database URLs for SQLite and PostgreSQL.

PostgreSQL comes from ``GATEWAY_TEST_PG_URL`` (default: the local trust-auth server, database
``test``). Each test that needs it gets its own schema (the URL sets ``search_path``), dropped
afterwards; the advisory-lock keys include the schema, so parallel runs do not collide. Without
a reachable server the PostgreSQL half is skipped locally and fails in CI (``CI=true``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.tooling import IN_CI

PG_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


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


@pytest.fixture
def pg_url(pg_admin: sa.Engine) -> Iterator[str]:
    """A URL whose connections work in a fresh schema of their own."""
    schema = f"gw_jobs_test_{os.getpid()}_{secrets.token_hex(4)}"
    with pg_admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with pg_admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The node's database URL, on each dialect."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    return request.getfixturevalue("pg_url")

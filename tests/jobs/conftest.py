"""Fixtures: database URLs for SQLite and PostgreSQL.

Each test on PostgreSQL gets a schema of its own (``pg_schema``, tests/conftest.py: the URL sets
``search_path``); the advisory-lock keys include the schema, so parallel runs do not collide.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def pg_url(pg_schema: Callable[..., str]) -> str:
    """A URL whose connections work in a fresh schema of their own."""
    return pg_schema("jobs")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The node's database URL, on each dialect."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    return request.getfixturevalue("pg_url")

"""Every store test runs on SQLite and on PostgreSQL: the ``store`` fixture (tests/conftest.py)
is parametrised over both."""

from __future__ import annotations

from datetime import UTC, datetime

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

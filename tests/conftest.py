"""Suite-wide settings. In CI (CI=true) a skipped test fails the run: green means all ran."""

from __future__ import annotations

import tempfile

import pytest

from tests.tooling import IN_CI, prepare_softhsm

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

"""The store's schema changes only on purpose: ``gateway db status`` shows where it stands,
``gateway db upgrade`` (or ``gateway serve``, which logs it) moves it, and every other command
refuses a store at another revision with one line and exit code 3. A new node's store gets the
schema from whichever command opens it first (the README's setup keeps working)."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from gateway.cli.errors import ExitCode
from gateway.demo.setup import DemoWorld
from gateway.store import head_revision, migrate, open_store
from tests.cli.conftest import gateway, variant
from tests.cli.test_errors import assert_error
from tests.integration.exchange_world import serving

OLDER = "0009"


def _store_at(config: Path, revision: str) -> None:
    store = open_store(f"sqlite:///{config.parent / 'data' / 'gateway.db'}")
    try:
        migrate(store.engine, revision)
    finally:
        store.dispose()


def _status(config: Path) -> dict[str, object]:
    run = gateway("db", "status", "--json", "--config", str(config))
    assert run.code == 0, run
    return json.loads(run.out)


def test_status_and_upgrade_of_a_new_store(world: DemoWorld, tmp_path: Path) -> None:
    config = variant(world, tmp_path)
    assert _status(config) == {
        "current": None,
        "head": head_revision(),
        "state": "empty",
        "pending": _status(config)["pending"],
    }
    upgrade = gateway("db", "upgrade", "--config", str(config))
    assert upgrade.code == 0 and f"обновлена до {head_revision()}" in upgrade.out, upgrade
    assert _status(config) == {
        "current": head_revision(),
        "head": head_revision(),
        "state": "current",
        "pending": [],
    }
    again = gateway("db", "upgrade", "--config", str(config))
    assert again.code == 0 and "обновлять нечего" in again.out, again


def test_an_older_store_is_refused_until_db_upgrade(world: DemoWorld, tmp_path: Path) -> None:
    config = variant(world, tmp_path)
    _store_at(config, OLDER)
    status = _status(config)
    assert status["state"] == "behind" and status["current"] == OLDER
    assert status["pending"] and status["pending"][-1] == head_revision()
    for command in (("tokens", "list"), ("users", "list"), ("audit", "verify")):
        run = gateway(*command, "--config", str(config))
        assert_error(run, ExitCode.UNAVAILABLE, "STORE_UPGRADE_NEEDED")
        assert "gateway db upgrade" in run.err
    assert _status(config)["current"] == OLDER  # nothing was changed on the side
    check = gateway("check-config", "--config", str(config))
    assert "warn  database:" in check.out and "gateway db upgrade" in check.out
    assert gateway("db", "upgrade", "--config", str(config)).code == 0
    assert gateway("tokens", "list", "--config", str(config)).code == 0


def test_serve_upgrades_an_older_store_and_logs_it(world: DemoWorld, tmp_path: Path) -> None:
    config = variant(world, tmp_path)
    _store_at(config, OLDER)
    with serving(config) as serve:
        assert _status(config)["state"] == "current"
    log = serve.output()
    assert f"схема хранилища {OLDER}: применяются" in log
    assert f"схема хранилища обновлена до {head_revision()}" in log


def test_a_store_of_a_newer_gateway_is_refused_everywhere(world: DemoWorld, tmp_path: Path) -> None:
    config = variant(world, tmp_path)
    _store_at(config, head_revision())
    engine = sa.create_engine(f"sqlite:///{config.parent / 'data' / 'gateway.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    for command in (("tokens", "list"), ("db", "upgrade"), ("serve",)):
        run = gateway(*command, "--config", str(config))
        assert_error(run, ExitCode.UNAVAILABLE, "STORE_NEWER_THAN_GATEWAY")
        assert "9999" in run.err
    assert _status(config)["state"] == "unknown"

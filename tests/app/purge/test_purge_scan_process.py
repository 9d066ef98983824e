"""A large SQLite store is walked by a child process (gateway.app.purge.SCAN_PROCESS_FROM;
``scan_process_from=0`` takes that path on a small store): it purges, keeps and counts exactly
what the walk in a thread does, and the child is gone when the run ends. PostgreSQL keeps the
thread whatever the size: its server works on the other core."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.app import purge as purge_module
from gateway.app.audit_checkpoints import verify_trail
from gateway.app.purge import verify_report
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import SigningKey
from gateway.store import Store, open_store
from gateway.store import purge as purge_store
from gateway.store.tables import tombstones
from tests.app.purge.world import (
    T0,
    bulk_messages,
    enqueue_pending,
    purge_received_after_a_year,
    states_of,
)

MESSAGES = 30


def _scanners() -> list[str]:
    return [child.name for child in multiprocessing.active_children()]


def test_the_walk_in_a_child_purges_and_keeps_what_the_thread_does(
    store: Store, ring: KekRing, seal: SigningKey
) -> None:
    ids = bulk_messages(store, ring, MESSAGES, T0)
    held, undelivered = ids[:2], ids[2]
    with store.transaction() as conn:
        conversation = conn.execute(
            sa.text("SELECT conversation_id FROM messages WHERE message_id = :m"), {"m": held[0]}
        ).scalar_one()
        purge_store.place_hold(conn, conversation, "order 7/2026", "admin", T0)
        enqueue_pending(conn, undelivered, T0)
    seen: list[list[str]] = []

    report = purge_received_after_a_year(
        store,
        seal,
        batch_size=4,
        scan_process_from=0,
        on_batch=lambda _purged: seen.append(_scanners()),
    )

    # The child may end before the last transactions settle: it has sent every page.
    assert seen and any("purge-scan" in names for names in seen) == (store.dialect == "sqlite")
    assert "purge-scan" not in _scanners(), "the child ends with the run"
    assert report.state == "finished"
    assert report.purged == MESSAGES - 3
    assert sum(report.held_by_policy.values()) == 2 and report.undelivered == 1
    states = states_of(store, ring, ids)
    assert {states[m] for m in (*held, undelivered)} == {"whole"}
    assert {s for m, s in states.items() if m not in (*held, undelivered)} == {"tombstoned"}
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tombstones)).scalar() == (
            MESSAGES - 3
        )
    assert verify_report(store, report.run_id).ok
    assert verify_trail(store).broken_at is None


def _only_run(store: Store) -> purge_store.PurgeRun:
    with store.read() as conn:
        (run,) = purge_store.list_runs(conn)
    return run


def test_a_run_stopped_early_ends_its_child(store: Store, ring: KekRing, seal: SigningKey) -> None:
    """The caller's callback fails after the first transaction: the run raises, the child
    walking ahead is stopped, not left behind, and the run is closed as failed with a signed
    report of the transaction that committed (not left ``running`` until the next run)."""
    bulk_messages(store, ring, MESSAGES, T0)

    def fail(_purged: int) -> None:
        raise RuntimeError("the caller's callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        purge_received_after_a_year(store, seal, batch_size=4, scan_process_from=0, on_batch=fail)
    assert "purge-scan" not in _scanners()
    run = _only_run(store)
    assert (run.state, run.error_code) == ("failed", "stopped: RuntimeError")
    check = verify_report(store, run.run_id)
    assert check.ok, check.reason
    assert check.report["purged"] == run.purged >= 4
    assert verify_trail(store).broken_at is None


@pytest.fixture
def sqlite_store(sqlite_template: Path, tmp_path: Path) -> Iterator[Store]:
    """Only SQLite walks a store in a child process (PostgreSQL: a thread)."""
    path = tmp_path / "gateway.db"
    shutil.copyfile(sqlite_template, path)
    opened = open_store(f"sqlite:///{path}")
    yield opened
    opened.dispose()


def test_a_scan_child_killed_fails_the_run_and_the_next_run_purges_everything(
    sqlite_store: Store, ring: KekRing, seal: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child walking the store dies (the kernel's OOM killer, an operator's kill -9)
    before it sends a page: the run raises a clear error instead of hanging or purging part
    of a page, closes itself as failed (signed, nothing purged), and the next run does the
    whole job."""
    store = sqlite_store
    ids = bulk_messages(store, ring, MESSAGES, T0)
    started = purge_module._ScanProcess.__init__

    def start_then_kill(self: purge_module._ScanProcess, *args: Any) -> None:
        started(self, *args)
        os.kill(self._process.pid, signal.SIGKILL)

    monkeypatch.setattr(purge_module._ScanProcess, "__init__", start_then_kill)
    with pytest.raises(RuntimeError, match=r"scan process ended early \(exit code -9\)"):
        purge_received_after_a_year(store, seal, scan_process_from=0)
    assert "purge-scan" not in _scanners()
    failed = _only_run(store)
    assert (failed.state, failed.purged) == ("failed", 0)
    assert failed.error_code == "stopped: RuntimeError"
    assert verify_report(store, failed.run_id).ok
    assert set(states_of(store, ring, ids).values()) == {"whole"}

    monkeypatch.undo()
    report = purge_received_after_a_year(store, seal, scan_process_from=0)
    assert (report.state, report.purged) == ("finished", MESSAGES)
    assert set(states_of(store, ring, ids).values()) == {"tombstoned"}
    assert verify_trail(store).broken_at is None

"""SIGKILL in the middle of a purge: every message is whole or tombstoned, never half; the
next run closes the killed run as interrupted and finishes the work."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from gateway.app.purge import run_purge
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import SigningKey
from gateway.store import Store, audit, purge
from gateway.store.tables import tombstones
from tests.app.purge.world import bulk_messages, long_ago, one_policy, states_of

MESSAGES = 2000
KILL_AFTER_TOMBSTONES = 200
"""Kill once this many are purged: well inside the run (batches of 10: ~180 to go)."""
CHILD_TIMEOUT_S = 60


def _tombstone_count(store: Store) -> int:
    with store.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(tombstones)).scalar_one()


def test_sigkill_mid_purge_leaves_nothing_half_deleted(
    store: Store, ring: KekRing, seal: SigningKey, node_toml: Path
) -> None:
    stored = long_ago(365 * 3)
    ids = bulk_messages(store, ring, MESSAGES, stored)
    now = datetime.now(UTC)
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.app.purge.purge_child",
            "purge",
            "--config",
            str(node_toml),
            "--now",
            now.isoformat(),
            "--batch-size",
            "10",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while _tombstone_count(store) < KILL_AFTER_TOMBSTONES:
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
            assert time.monotonic() < deadline, "the purge never got going"
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    states = collections.Counter(states_of(store, ring, ids).values())
    assert set(states) <= {"whole", "tombstoned"}, states
    assert 0 < states["tombstoned"] < MESSAGES, states  # really killed mid-way
    with store.read() as conn:
        assert audit.verify(conn).intact
        assert len(purge.running_runs(conn)) == 1  # the killed run

    report = run_purge(store, one_policy("received", "1 year"), now, seal=seal, actor="job:purge")
    assert report.purged == states["whole"]
    assert set(states_of(store, ring, ids).values()) == {"tombstoned"}
    with store.read() as conn:
        assert purge.running_runs(conn) == []
        assert audit.verify(conn).intact

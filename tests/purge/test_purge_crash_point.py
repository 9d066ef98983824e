"""SIGKILL at the named crash point ``purge.batch`` (gateway/crashpoints.py): a batch tombstoned
and deleted but not committed. Every message stays whole (none half-purged), the audit chain is
intact, and the next run closes the killed run and purges everything. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from gateway.app.purge import run_purge
from gateway.crashpoints import ENV_VAR
from gateway.crypto.at_rest import KekRing
from gateway.crypto.keystore import SigningKey
from gateway.store import Store, audit, purge
from tests.purge.world import T0, after, bulk_messages, one_policy, states_of

MESSAGES = 30
"""Three batches of ten: the kill comes inside the first."""


def test_purge_killed_inside_a_batch_keeps_every_message_whole(
    store: Store, ring: KekRing, seal: SigningKey, node_toml: Path
) -> None:
    ids = bulk_messages(store, ring, MESSAGES, T0)
    now = after(T0, days=365 * 3)
    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.purge.purge_child",
            "purge",
            "--config",
            str(node_toml),
            "--now",
            now.isoformat(),
            "--batch-size",
            "10",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, ENV_VAR: "purge.batch"},
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    assert set(states_of(store, ring, ids).values()) == {"whole"}, "the open batch is undone"
    with store.read() as conn:
        assert audit.verify(conn).intact
        assert len(purge.running_runs(conn)) == 1  # the killed run, closed by the next

    report = run_purge(store, one_policy("received", "1 year"), now, seal=seal, actor="job:purge")
    assert report.purged == MESSAGES
    assert set(states_of(store, ring, ids).values()) == {"tombstoned"}
    with store.read() as conn:
        assert purge.running_runs(conn) == []
        assert audit.verify(conn).intact

"""SIGKILL at the purge's named crash points (gateway/crashpoints.py): ``purge.batch``, a batch
tombstoned and deleted but not committed (every message stays whole, none half-purged), and
``purge.committed``, just after the first batch's commit (that batch stays purged, the rest
whole). Either way the audit chain is intact, and the next run closes the killed run and purges
everything, each message once. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.crashpoints import ENV_VAR
from gateway.crypto.at_rest import KekRing
from gateway.crypto.keystore import SigningKey
from gateway.jobs.purge import run_purge
from gateway.store import Store, audit, purge
from gateway.store.tables import tombstones
from tests.purge.world import T0, after, bulk_messages, one_policy, states_of

MESSAGES = 30
BATCH = 10
"""Three batches of ten: the kill comes inside the first or just after its commit."""


@pytest.mark.parametrize(
    ("point", "purged_first"), [("purge.batch", 0), ("purge.committed", BATCH)]
)
def test_purge_killed_at_a_crash_point_purges_each_message_once(
    store: Store, ring: KekRing, seal: SigningKey, node_toml: Path, point: str, purged_first: int
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
            str(BATCH),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, ENV_VAR: point},
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    states = Counter(states_of(store, ring, ids).values())
    assert states == Counter(
        {"tombstoned": purged_first, "whole": MESSAGES - purged_first}
        if purged_first
        else {"whole": MESSAGES}
    ), "an open batch is undone, a committed one stays done, none is half-purged"
    with store.read() as conn:
        assert audit.verify(conn).intact
        assert len(purge.running_runs(conn)) == 1  # the killed run, closed by the next

    report = run_purge(store, one_policy("received", "1 year"), now, seal=seal, actor="job:purge")
    assert report.purged == MESSAGES - purged_first
    assert set(states_of(store, ring, ids).values()) == {"tombstoned"}
    with store.read() as conn:
        assert purge.running_runs(conn) == []
        assert audit.verify(conn).intact
        once = Counter(conn.execute(sa.select(tombstones.c.message_id)).scalars())
    assert once == Counter(ids), "one tombstone per message: none purged twice"

"""SIGKILL at the re-wrap's named crash points (gateway/crashpoints.py): inside a batch's
transaction (``rewrap.batch``: the batch is undone) and just after its commit
(``rewrap.committed``: the batch stays done). Every message opens with the ring at each step, the
audit chain is intact, and running ``gateway keys rewrap`` again finishes the work. SQLite and
PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.crashpoints import ENV_VAR
from gateway.crypto.keys.kek_ring import load_kek_ring, rotate_kek
from gateway.store import Store, audit
from gateway.store.keys import count_by_kek, kek_usage
from tests.crypto.rotation.conftest import NodeDir
from tests.crypto.rotation.test_kek_rotation import (
    FAST_SCRYPT,
    VIA_INSERT_SENT,
    assert_all_readable,
    fill,
    rewrap_command,
    run_to_end,
)

MESSAGES = 120
BATCH = 50


@pytest.mark.parametrize(("point", "moved"), [("rewrap.batch", 0), ("rewrap.committed", BATCH)])
def test_rewrap_killed_at_a_crash_point_resumes(
    node_on_each_store: tuple[NodeDir, Store],
    point: str,
    moved: int,
) -> None:
    node, store = node_on_each_store
    now = datetime.now(UTC)
    keys = node.keystore()
    old = load_kek_ring(keys).active.key_id
    ids = fill(store, load_kek_ring(keys), MESSAGES, now)
    rotated = rotate_kek(keys, now=now, scrypt_log2_n=FAST_SCRYPT)
    legacy = MESSAGES - VIA_INSERT_SENT  # data keys of the old shape, wrapped by the KEK

    killed = subprocess.run(
        rewrap_command(node, BATCH, 0.0),
        capture_output=True,
        text=True,
        env={**os.environ, ENV_VAR: point},
        cwd=Path(__file__).resolve().parents[3],
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    with store.read() as conn:
        usage = {kek: n for kek, n in kek_usage(conn).items() if n}
        assert audit.verify(conn).intact
        assert count_by_kek(conn).get(old, 0) == legacy - moved, "no key lost, none twice"
    # The batch re-wraps the period key first, then moves old rows under it.
    assert usage.get(rotated.key_id, 0) == (1 if moved else 0), usage
    assert set(usage) <= {old, rotated.key_id}, usage
    assert_all_readable(store, load_kek_ring(node.keystore()), ids)

    run_to_end(node, BATCH)
    with store.read() as conn:
        assert set(kek_usage(conn)) == {rotated.key_id}
        assert audit.verify(conn).intact
    assert_all_readable(store, load_kek_ring(node.keystore()), ids)

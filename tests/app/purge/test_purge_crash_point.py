"""SIGKILL at the named crash points ``purge.batch`` (gateway/crashpoints.py: a batch tombstoned
and deleted but not committed) and ``purge.committed`` (between two batches). No message is
half-purged, the audit chain and the tombstones' bindings verify, and the next run closes the
killed run and purges the rest, none twice. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from gateway.app.audit_checkpoints import verify_trail
from gateway.app.purge import run_purge, verify_report
from gateway.app.tombstone_check import check_tombstones
from gateway.crashpoints import ENV_VAR
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import SigningKey
from gateway.store import Store, audit, purge
from gateway.store.tables import messages, tombstones
from tests.app.purge.world import bulk_messages, long_ago, one_policy, states_of

MESSAGES = 30
"""Three batches of ten: the kill comes inside the first."""


def test_purge_killed_inside_a_batch_keeps_every_message_whole(
    store: Store, ring: KekRing, seal: SigningKey, node_toml: Path
) -> None:
    stored = long_ago(365 * 3)
    ids = bulk_messages(store, ring, MESSAGES, stored)
    now = datetime.now(UTC)
    killed = _purge_killed_at("purge.batch", node_toml, now)
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


def _purge_killed_at(point: str, node_toml: Path, now: datetime) -> subprocess.CompletedProcess:
    """``gateway purge`` in batches of ten, in a child armed to SIGKILL itself at ``point``."""
    return subprocess.run(
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
        capture_output=True,
        text=True,
        env={**os.environ, ENV_VAR: point},
        cwd=Path(__file__).resolve().parents[3],
        timeout=120,
        check=False,
    )


def test_purge_killed_between_batches_resumes_without_loss_or_duplication(
    store: Store, ring: KekRing, seal: SigningKey, node_toml: Path
) -> None:
    """SIGKILL at ``purge.committed``: the first batch committed. On SQLite the second has not
    begun; on PostgreSQL, with two purge transactions in flight, the second may have committed
    too or be rolled back by the kill. The committed batches' messages stay tombstoned and
    bound, the others whole; the next run closes the killed run (its signed report counts
    them) and purges exactly the rest; a held conversation's messages are kept by both; every
    tombstone once, chain and reports verify."""
    stored = long_ago(365 * 3)
    ids = bulk_messages(store, ring, MESSAGES, stored)
    held = ids[-2:]  # the last conversation (two messages per conversation)
    with store.transaction() as conn:
        conversation = conn.execute(
            sa.select(messages.c.conversation_id).where(messages.c.message_id == held[0])
        ).scalar_one()
        purge.place_hold(conn, conversation, "court order 17/2026", "operator1", stored)
    now = datetime.now(UTC)
    killed = _purge_killed_at("purge.committed", node_toml, now)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    states = states_of(store, ring, ids)
    committed = Counter(states.values())["tombstoned"]
    in_flight = 2 if store.engine.dialect.name == "postgresql" else 1
    assert committed in range(10, 10 * in_flight + 1, 10), states
    assert Counter(states.values()) == {"tombstoned": committed, "whole": MESSAGES - committed}
    with store.read() as conn:
        (killed_run,) = purge.running_runs(conn)
    assert check_tombstones(store) is None  # the committed batch is bound

    report = run_purge(store, one_policy("received", "1 year"), now, seal=seal, actor="job:purge")
    assert report.purged == MESSAGES - committed - len(held)
    states = states_of(store, ring, ids)
    assert {states[m] for m in held} == {"whole"}
    assert {m for m, s in states.items() if s == "tombstoned"} == set(ids) - set(held)
    with store.read() as conn:
        runs = Counter(conn.execute(sa.select(tombstones.c.purge_run_id)).scalars())
        assert runs == {killed_run: committed, report.run_id: MESSAGES - committed - len(held)}
        assert purge.running_runs(conn) == []
    trail = verify_trail(store)
    assert trail.broken_at is None, trail.reason
    for run_id in (killed_run, report.run_id):
        check = verify_report(store, run_id)
        assert check.ok, check.reason
    assert verify_report(store, killed_run).report["tombstones"] == committed

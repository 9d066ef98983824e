"""A large SQLite store is walked by a child process (gateway.app.purge.SCAN_PROCESS_FROM;
``scan_process_from=0`` takes that path on a small store): it purges, keeps and counts exactly
what the walk in a thread does, and the child is gone when the run ends. PostgreSQL keeps the
thread whatever the size: its server works on the other core."""

from __future__ import annotations

import multiprocessing

import pytest
import sqlalchemy as sa

from gateway.app.audit_checkpoints import verify_trail
from gateway.app.purge import verify_report
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import SigningKey
from gateway.store import Store
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


def test_a_run_stopped_early_ends_its_child(store: Store, ring: KekRing, seal: SigningKey) -> None:
    """The caller's callback fails after the first transaction: the run raises, and the
    child walking ahead is stopped, not left behind."""
    bulk_messages(store, ring, MESSAGES, T0)

    def fail(_purged: int) -> None:
        raise RuntimeError("the caller's callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        purge_received_after_a_year(store, seal, batch_size=4, scan_process_from=0, on_batch=fail)
    assert "purge-scan" not in _scanners()

"""Two purge transactions in flight (PostgreSQL's default; asked for explicitly here on both
stores): the two messages of each conversation fall into different transactions, which may
run at once and commit in either order. Every message is tombstoned once, each conversation
goes with its last message, the batch numbers are unique, and the chain, the tombstone
bindings and the signed report all verify. The same run with one writer purges the same."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import sqlalchemy as sa

from gateway.app.audit_checkpoints import verify_trail
from gateway.app.purge import PURGE_WRITERS, verify_report
from gateway.app.tombstone_check import check_tombstones
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import SigningKey
from gateway.store import Store
from gateway.store.tables import audit_events, conversations, tombstones
from tests.app.purge.world import (
    T0,
    bulk_messages,
    purge_received_after_a_year,
    states_of,
)

MESSAGES = 24
"""Twelve conversations of two messages; transactions of one or three messages."""


@pytest.mark.parametrize(
    ("writers", "batch_size"), [(PURGE_WRITERS, 1), (PURGE_WRITERS, 3), (1, 3)]
)
def test_purge_transactions_in_flight_together_purge_each_message_once(
    store: Store, ring: KekRing, seal: SigningKey, writers: int, batch_size: int
) -> None:
    ids = bulk_messages(store, ring, MESSAGES, T0)
    report = purge_received_after_a_year(
        store,
        seal,
        batch_size=batch_size,
        writers=writers,
    )

    assert report.state == "finished" and report.purged == MESSAGES
    assert set(states_of(store, ring, ids).values()) == {"tombstoned"}
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(conversations)).scalar() == 0
        per_message = Counter(conn.execute(sa.select(tombstones.c.message_id)).scalars())
        batches = conn.execute(
            sa.select(tombstones.c.purge_batch, sa.func.count())
            .where(tombstones.c.purge_run_id == report.run_id)
            .group_by(tombstones.c.purge_batch)
        ).all()
        events = conn.execute(
            sa.select(audit_events.c.details).where(audit_events.c.kind == "purge.batch")
        ).scalars()
        numbers = Counter(int(json.loads(d)["batch"]) for d in events)
    assert set(per_message) == set(ids) and set(per_message.values()) == {1}
    assert sorted(count for _batch, count in batches) == sorted(
        [batch_size] * (MESSAGES // batch_size)
    )
    assert set(numbers.values()) == {1}, "one event per batch number"
    assert set(numbers) == {batch for batch, _count in batches}
    assert check_tombstones(store) is None
    check = verify_report(store, report.run_id)
    assert check.ok, check.reason
    assert check.report["tombstones"] == MESSAGES
    trail = verify_trail(store)
    assert trail.broken_at is None, trail.reason

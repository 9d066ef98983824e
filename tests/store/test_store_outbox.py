"""The outbox: claims, leases, fencing of lost claims, and concurrent workers."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from gateway.crypto.keys.kek import KekRing
from gateway.store import Store, messages, outbox
from gateway.store.outbox import OutboxState
from gateway.store.tables import delivery_attempts
from tests.store import factory
from tests.store.conftest import NOW

LEASE = timedelta(minutes=2)


def _queue(store: Store, ring: KekRing, count: int, now=NOW) -> list[int]:
    cid = factory.new_id()
    ids = []
    with store.transaction() as conn:
        factory.open_conversation(conn, now, cid)
        for i in range(count):
            h = factory.header(cid, now, sender="RU-FSSP", recipient="KZ-MJ")
            messages.insert_sent(conn, h, f"<doc n='{i}'/>".encode(), ring, now)
            ids.append(outbox.enqueue(conn, h.message_id, "KZ-MJ", now + timedelta(seconds=i)))
    return ids


def test_claim_deliver_and_fail(store: Store, ring: KekRing) -> None:
    ids = _queue(store, ring, 3)
    later = NOW + timedelta(seconds=10)
    with store.transaction() as conn:
        assert outbox.claim_due(conn, "w1", NOW - timedelta(seconds=1), 10, LEASE) == []
        claims = outbox.claim_due(conn, "w1", later, 2, LEASE)
    assert [c.outbox_id for c in claims] == ids[:2]  # oldest due first, limit respected
    assert all(c.attempt == 1 and c.lease_expires_at == later + LEASE for c in claims)
    with store.transaction() as conn:
        # Claimed rows are not handed out again while the lease lasts.
        (third,) = outbox.claim_due(conn, "w2", later, 10, LEASE)
        assert third.outbox_id == ids[2]
        assert outbox.mark_delivered(conn, third, later)
        assert outbox.mark_delivered(conn, claims[0], later, http_status=200)
        retry_at = later + timedelta(minutes=5)
        assert outbox.mark_failed(conn, claims[1], later, "PEER_UNREACHABLE", retry_at)
    with store.read() as conn:
        delivered, failed = outbox.get(conn, ids[0]), outbox.get(conn, ids[1])
        attempts = conn.execute(
            sa.select(delivery_attempts.c.outcome, delivery_attempts.c.error_code)
            .where(delivery_attempts.c.outbox_id.in_(ids[:2]))
            .order_by(delivery_attempts.c.outbox_id)
        ).all()
    assert delivered.state is OutboxState.DELIVERED and delivered.finished_at == later
    assert failed.state is OutboxState.PENDING and failed.next_attempt_at == retry_at
    assert failed.last_error == "PEER_UNREACHABLE" and failed.claimed_by is None
    assert [tuple(a) for a in attempts] == [("delivered", None), ("failed", "PEER_UNREACHABLE")]
    with store.transaction() as conn:
        assert outbox.claim_due(conn, "w1", retry_at - timedelta(seconds=1), 10, LEASE) == []
        (again,) = outbox.claim_due(conn, "w1", retry_at, 10, LEASE)
        assert again.outbox_id == ids[1] and again.attempt == 2
        assert outbox.mark_failed(conn, again, retry_at, "PEER_REFUSED", None)  # give up
        assert outbox.get(conn, ids[1]).state is OutboxState.FAILED
        assert outbox.count_by_state(conn) == {"delivered": 2, "failed": 1}


def test_expired_lease_is_taken_over_and_the_old_claim_is_fenced(
    store: Store, ring: KekRing
) -> None:
    (oid,) = _queue(store, ring, 1)
    with store.transaction() as conn:
        (slow,) = outbox.claim_due(conn, "slow", NOW, 1, LEASE)
    after_lease = NOW + LEASE
    with store.transaction() as conn:
        (fast,) = outbox.claim_due(conn, "fast", after_lease, 1, LEASE)
        assert fast.attempt == 2
        # The slow worker comes back after its lease: its outcome is refused.
        assert not outbox.mark_delivered(conn, slow, after_lease)
        assert not outbox.mark_failed(conn, slow, after_lease, "TIMEOUT", None)
        assert outbox.get(conn, oid).claimed_by == "fast"
        assert outbox.mark_delivered(conn, fast, after_lease)
        assert not outbox.mark_delivered(conn, fast, after_lease)  # only once


def test_limits_are_enforced(store: Store) -> None:
    with store.transaction() as conn:
        with pytest.raises(ValueError, match="limit"):
            outbox.claim_due(conn, "w", NOW, 0, LEASE)
        with pytest.raises(ValueError, match="lease"):
            outbox.claim_due(conn, "w", NOW, 1, timedelta(0))


def test_concurrent_workers_never_share_a_row(store: Store, ring: KekRing) -> None:
    total = 120
    ids = _queue(store, ring, total)
    workers = 4
    claimed: dict[str, list[int]] = {f"w{i}": [] for i in range(workers)}
    errors: list[BaseException] = []
    barrier = threading.Barrier(workers)
    now = NOW + timedelta(seconds=total)

    def work(worker_id: str) -> None:
        try:
            barrier.wait()
            while True:
                with store.transaction() as conn:
                    batch = outbox.claim_due(conn, worker_id, now, 7, LEASE)
                if not batch:
                    return
                claimed[worker_id].extend(c.outbox_id for c in batch)
                with store.transaction() as conn:
                    for claim in batch:
                        assert outbox.mark_delivered(conn, claim, now)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    every = [oid for got in claimed.values() for oid in got]
    assert len(every) == len(set(every)) == total
    assert set(every) == set(ids)
    with store.read() as conn:
        assert outbox.count_by_state(conn) == {"delivered": total}
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(delivery_attempts)).scalar_one()
            == total
        )


def test_what_the_exchange_reads_of_the_outbox(store: Store, ring: KekRing) -> None:
    """created_at, states_of and attempts_of: the reads the exchange layer makes through the
    store instead of the outbox's tables."""
    ids = _queue(store, ring, 2)
    with store.read() as conn:
        queued = [outbox.get(conn, i).message_id for i in ids]
        assert outbox.created_at(conn, ids[1]) == NOW + timedelta(seconds=1)
        assert outbox.created_at(conn, 10**9) is None
        assert outbox.states_of(conn, []) == {}
        assert outbox.states_of(conn, [*queued, "not-queued"]) == dict.fromkeys(queued, "pending")
    later = NOW + timedelta(seconds=10)
    with store.transaction() as conn:
        first, second = outbox.claim_due(conn, "w1", later, 10, LEASE)
        assert outbox.mark_failed(conn, first, later, "PEER_UNREACHABLE", later + LEASE)
        assert outbox.mark_delivered(conn, second, later, http_status=200)
    with store.transaction() as conn:
        (again,) = outbox.claim_due(conn, "w1", later + LEASE, 10, LEASE)
        assert outbox.mark_delivered(conn, again, later + LEASE, http_status=200)
    with store.read() as conn:
        assert outbox.states_of(conn, queued) == dict.fromkeys(queued, "delivered")
        attempts = outbox.attempts_of(conn, queued[0])
        assert outbox.attempts_of(conn, "not-queued") == []
    assert [(a.attempt, a.outcome, a.error_code) for a in attempts] == [
        (1, "failed", "PEER_UNREACHABLE"),
        (2, "delivered", None),
    ]

"""Group commit: several units of work in one transaction, a savepoint each; and how the
PostgreSQL pool copes with dead connections without pinging on every checkout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from gateway.crypto.keys.kek import KekRing
from gateway.store import Store, audit, messages, open_store
from gateway.store.tables import conversations, message_keys, receipts
from tests.store import factory
from tests.store.conftest import NOW


class Rejected(Exception):
    """Stands for a domain rejection raised by the exchange inside a unit."""


def _receive(conn: sa.Connection, ring: KekRing, message_id: str) -> None:
    cid = factory.open_conversation(conn, NOW)
    head = factory.header(cid, NOW - timedelta(minutes=1), message_id=message_id)
    outcome = messages.insert_received(conn, head, factory.signed_document(message_id), ring, NOW)
    assert outcome is messages.ReceiveOutcome.INSERTED
    audit.append(
        conn, now=NOW, actor="peer:KZ-MJ", kind="message.received", subjects={"message": message_id}
    )


def _stored_ids(store: Store) -> set[str]:
    with store.read() as conn:
        return set(conn.execute(sa.select(message_keys.c.message_id)).scalars())


def test_one_failed_unit_leaves_the_others_committed(store: Store, ring: KekRing) -> None:
    ids = [factory.new_id() for _ in range(6)]
    commits: list[object] = []

    def count(conn: sa.Connection) -> None:
        commits.append(conn)

    sa.event.listen(store.engine, "commit", count)
    try:
        with store.batch() as batch:
            for n, message_id in enumerate(ids):
                with batch.unit(message_id) as conn:
                    _receive(conn, ring, message_id)
                    if n == 2:  # a duplicate key: the database refuses the statement
                        row = {
                            "message_id": message_id,
                            "receipt_message_id": factory.new_id(),
                            "direction": "out",
                            "outcome": "accepted",
                            "at": NOW,
                        }
                        conn.execute(receipts.insert(), [row])
                        conn.execute(receipts.insert(), [row])
                    if n == 4:
                        raise Rejected("the inbound judge refused it")
    finally:
        sa.event.remove(store.engine, "commit", count)
    assert len(commits) == 1
    outcomes = batch.outcomes
    assert [o.key for o in outcomes] == ids
    assert [o.ok for o in outcomes] == [True, True, False, True, False, True]
    assert isinstance(outcomes[2].error, sa.exc.IntegrityError)
    assert isinstance(outcomes[4].error, Rejected)
    kept = {ids[n] for n in (0, 1, 3, 5)}
    assert _stored_ids(store) == kept
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(conversations)).scalar() == 4
        assert conn.execute(sa.select(sa.func.count()).select_from(receipts)).scalar() == 0
        events = audit.events(conn)
        assert {e.subjects["message"] for e in events} == kept
        assert audit.verify(conn).intact
        for message_id in kept:
            assert messages.read_document(conn, message_id, ring) == factory.signed_document(
                message_id
            )


def test_duplicate_message_id_within_a_batch(store: Store, ring: KekRing) -> None:
    """The second copy of an id in the same batch fails alone (the first stays)."""
    message_id = factory.new_id()
    with store.batch() as batch:
        for _ in range(2):
            with batch.unit() as conn:
                _receive(conn, ring, message_id)
    assert [o.key for o in batch.outcomes] == [0, 1]
    assert batch.outcomes[0].ok and isinstance(batch.outcomes[1].error, AssertionError)
    assert _stored_ids(store) == {message_id}


def test_error_outside_a_unit_rolls_back_every_unit(store: Store, ring: KekRing) -> None:
    with pytest.raises(RuntimeError), store.batch() as batch:
        with batch.unit() as conn:
            _receive(conn, ring, factory.new_id())
        raise RuntimeError("the batch itself failed")
    assert _stored_ids(store) == set()
    with store.read() as conn:
        assert audit.events(conn) == []


# --- PostgreSQL connections: no ping on every checkout ---------------------------------------


@pytest.fixture
def pg_url(pg_session_store: Store) -> str:
    return pg_session_store.engine.url.render_as_string(hide_password=False)


def _kill_pooled_connection(store: Store, pg_admin: sa.Engine) -> None:
    with store.read() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    _terminate(pg_admin, pid)


def _terminate(pg_admin: sa.Engine, pid: int) -> None:
    with pg_admin.connect() as admin:
        admin.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        for _ in range(500):  # 10 s: a loaded machine takes a while to reap a backend
            alive = admin.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
            ).scalar()
            admin.rollback()  # pg_stat_activity is a snapshot per transaction: take a new one
            if not alive:
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} did not exit")


@pytest.fixture
def counted_pings(pg_url: str) -> Iterator[tuple[Store, list[int]]]:
    store = open_store(pg_url, idle_ping_seconds=0.3)
    pings: list[int] = []
    real = store.engine.dialect.do_ping

    def do_ping(dbapi_connection) -> bool:
        pings.append(1)
        return real(dbapi_connection)

    store.engine.dialect.do_ping = do_ping  # count the real pings
    yield store, pings
    store.dispose()


def test_no_ping_while_busy_one_after_idle(counted_pings) -> None:
    store, pings = counted_pings
    for _ in range(5):
        with store.transaction() as conn:
            conn.execute(sa.select(1))
    assert pings == []
    time.sleep(0.4)
    with store.transaction() as conn:
        conn.execute(sa.select(1))
    assert pings == [1]


def test_dead_idle_connection_is_replaced_by_the_ping(counted_pings, pg_admin) -> None:
    store, pings = counted_pings
    _kill_pooled_connection(store, pg_admin)
    time.sleep(0.4)
    with store.transaction() as conn:
        assert conn.execute(sa.select(1)).scalar() == 1
    assert pings == [1]


def test_dead_busy_connection_fails_once_then_run_retries(pg_url: str, pg_admin) -> None:
    store = open_store(pg_url)  # idle ping after 30 s: not in this test
    try:
        _kill_pooled_connection(store, pg_admin)
        with pytest.raises(sa.exc.OperationalError) as caught, store.transaction() as conn:
            conn.execute(sa.select(1))
        assert caught.value.connection_invalidated
        with store.transaction() as conn:  # the pool was invalidated: a fresh connection
            assert conn.execute(sa.select(1)).scalar() == 1
        _kill_pooled_connection(store, pg_admin)
        attempts: list[int] = []

        def work(conn: sa.Connection) -> int:
            attempts.append(1)
            return conn.execute(sa.select(2)).scalar_one()

        assert store.run(work) == 2
        assert len(attempts) == 2
    finally:
        store.dispose()


def test_dead_connection_aborts_the_whole_batch(pg_url: str, pg_admin, ring: KekRing) -> None:
    store = open_store(pg_url)
    try:
        first = factory.new_id()
        with pytest.raises(sa.exc.OperationalError), store.batch() as batch:
            with batch.unit() as conn:
                _receive(conn, ring, first)
            with batch.unit() as conn:
                _terminate(pg_admin, conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
                conn.execute(sa.select(1))
        assert _stored_ids(store) == set()
    finally:
        store.dispose()

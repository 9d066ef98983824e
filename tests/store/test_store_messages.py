"""Messages: byte-exact storage, idempotent receive (also under concurrency), reading back."""

from __future__ import annotations

import multiprocessing
import secrets
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from gateway.crypto.keys.kek import FileKek, KekRing
from gateway.store import Store, messages, open_store
from gateway.store.messages import Direction, ReceiveOutcome
from gateway.store.tables import message_keys
from tests.store import factory
from tests.store.conftest import NOW


def test_round_trip_is_byte_exact(store: Store, ring: KekRing) -> None:
    cid = factory.new_id()
    head = factory.header(cid, NOW - timedelta(minutes=5))
    document = factory.signed_document(head.message_id)
    files = [b"%PDF-1.7\n\x00\xff" * 50, b""]
    with store.transaction() as conn:
        factory.open_conversation(conn, NOW, cid)
        outcome = messages.insert_received(conn, head, document, ring, NOW)
        ids = [factory.add_attachment(conn, head.message_id, f, ring, NOW) for f in files]
    assert outcome is ReceiveOutcome.INSERTED
    with store.read() as conn:
        assert messages.read_document(conn, head.message_id, ring) == document
        assert [factory.read_attachment(conn, i, ring) for i in ids] == files
        stored = messages.get(conn, head.message_id)
    assert stored is not None
    assert stored.header == head
    assert stored.direction is Direction.IN
    assert stored.stored_at == NOW
    assert stored.document_size == len(document)


def test_receive_twice_is_duplicate_and_other_bytes_conflict(store: Store, ring: KekRing) -> None:
    cid = factory.new_id()
    head = factory.header(cid, NOW)
    document = factory.signed_document(head.message_id)
    with store.transaction() as conn:
        factory.open_conversation(conn, NOW, cid)
        assert messages.insert_received(conn, head, document, ring, NOW) is ReceiveOutcome.INSERTED
    with store.transaction() as conn:
        assert (
            messages.insert_received(conn, head, document, ring, NOW + timedelta(hours=1))
            is ReceiveOutcome.DUPLICATE
        )
        forged = factory.signed_document(head.message_id, debtor="Другой Человек")
        assert messages.insert_received(conn, head, forged, ring, NOW) is ReceiveOutcome.CONFLICT
    with store.read() as conn:
        assert messages.read_document(conn, head.message_id, ring) == document
        assert messages.get(conn, head.message_id).stored_at == NOW
        assert conn.execute(sa.select(sa.func.count()).select_from(message_keys)).scalar_one() == 1


def test_insert_sent_refuses_reused_id(store: Store, ring: KekRing) -> None:
    cid = factory.new_id()
    head = factory.header(cid, NOW, sender="RU-FSSP", recipient="KZ-MJ")
    with store.transaction() as conn:
        factory.open_conversation(conn, NOW, cid)
        messages.insert_sent(conn, head, b"<signed/>", ring, NOW)
    with pytest.raises(ValueError, match="already stored"), store.transaction() as conn:
        messages.insert_sent(conn, head, b"<other/>", ring, NOW)
    with store.read() as conn:
        assert messages.get(conn, head.message_id).direction is Direction.OUT
        assert messages.read_document(conn, head.message_id, ring) == b"<signed/>"


def test_receive_same_message_concurrently_stores_once(store: Store, ring: KekRing) -> None:
    """Several threads (each its own connection, as several processes would) receive the same
    message at the same instant: exactly one stores it, the others see a duplicate."""
    cid = factory.new_id()
    rounds = 5
    threads_per_round = 4
    outcomes: list[ReceiveOutcome] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    heads = [factory.header(cid, NOW) for _ in range(rounds)]
    with store.transaction() as conn:
        factory.open_conversation(conn, NOW, cid)
    for head in heads:
        document = factory.signed_document(head.message_id)
        barrier = threading.Barrier(threads_per_round)

        def receive(head=head, document=document, barrier=barrier) -> None:
            try:
                barrier.wait()
                with store.transaction() as conn:
                    result = messages.insert_received(conn, head, document, ring, NOW)
                with lock:
                    outcomes.append(result)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=receive) for _ in range(threads_per_round)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert outcomes.count(ReceiveOutcome.INSERTED) == rounds
    assert outcomes.count(ReceiveOutcome.DUPLICATE) == rounds * (threads_per_round - 1)
    with store.read() as conn:
        stored = messages.list_for_conversation(conn, cid)
        keys = conn.execute(sa.select(sa.func.count()).select_from(message_keys)).scalar_one()
    assert sorted(m.header.message_id for m in stored) == sorted(h.message_id for h in heads)
    assert keys == rounds


def test_missing_message_and_conversation_listing(store: Store, ring: KekRing) -> None:
    cid = factory.new_id()
    heads = [factory.header(cid, NOW + timedelta(minutes=i)) for i in (2, 0, 1)]
    with store.transaction() as conn:
        factory.open_conversation(conn, NOW, cid)
        for h in heads:
            messages.insert_received(conn, h, b"<d/>", ring, NOW)
    with store.read() as conn:
        listed = messages.list_for_conversation(conn, cid)
        assert [m.header.created for m in listed] == sorted(h.created for h in heads)
        assert messages.get(conn, factory.new_id()) is None
        with pytest.raises(messages.MessageGone):
            messages.read_document(conn, factory.new_id(), ring)


def test_unknown_conversation_is_refused(store: Store, ring: KekRing) -> None:
    head = factory.header(factory.new_id(), NOW)
    with pytest.raises(sa.exc.IntegrityError), store.transaction() as conn:
        messages.insert_received(conn, head, b"<d/>", ring, NOW)


def _receive_in_process(url: str, head, document: bytes, key: bytes, start, results) -> None:
    store = open_store(url)
    ring = KekRing.single(FileKek("kek-test-1", key))
    start.wait()
    with store.transaction() as conn:
        results.put(messages.insert_received(conn, head, document, ring, NOW).value)
    store.dispose()


def test_receive_same_message_from_several_processes(store: Store) -> None:
    key = secrets.token_bytes(32)
    cid = factory.new_id()
    head = factory.header(cid, NOW)
    document = factory.signed_document(head.message_id)
    with store.transaction() as conn:
        factory.open_conversation(conn, NOW, cid)
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    url = store.engine.url.render_as_string(hide_password=False)
    procs = [
        ctx.Process(target=_receive_in_process, args=(url, head, document, key, start, results))
        for _ in range(3)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == ["duplicate", "duplicate", "inserted"]
    ring = KekRing.single(FileKek("kek-test-1", key))
    with store.read() as conn:
        assert messages.read_document(conn, head.message_id, ring) == document
        assert len(messages.list_for_conversation(conn, cid)) == 1

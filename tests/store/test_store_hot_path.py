"""The hot path's statements: one round trip where there were two, no re-read of a data key
just written, and the remembered key never outliving what made it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from gateway.crypto.keys.kek import KekRing
from gateway.store import (
    Store,
    conversations,
    machines,
    messages,
    outbox,
    purge,
    receipts,
    reports,
)
from gateway.store.tables import conversation_machines
from tests.store import factory
from tests.store.conftest import NOW
from tests.store.test_store_reports import _record, _validation_report


@contextmanager
def _statements(store: Store) -> Iterator[list[str]]:
    """The SQL text of every statement the engine runs inside the block."""
    seen: list[str] = []

    def listen(_conn, _cursor, statement, _params, _context, _many) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", listen)


def test_machine_put_is_one_statement_and_replaces(store: Store) -> None:
    with store.transaction() as conn:
        cid = factory.open_conversation(conn, NOW)
        with _statements(store) as seen:
            machines.put(conn, cid, '{"v":1}', NOW)
        assert len(seen) == 1 and seen[0].startswith("INSERT")
        with _statements(store) as seen:
            machines.put(conn, cid, '{"v":2}', NOW + timedelta(seconds=1))
        assert len(seen) == 1
    with store.read() as conn:
        assert machines.get(conn, cid) == '{"v":2}'
        rows = conn.execute(sa.select(conversation_machines)).all()
        assert [(r.machine, r.updated_at) for r in rows] == [
            ('{"v":2}', NOW + timedelta(seconds=1))
        ]
        assert machines.get(conn, factory.new_id()) is None


def test_conversation_and_machine_are_read_in_one_statement(store: Store) -> None:
    with store.transaction() as conn:
        bare = factory.open_conversation(conn, NOW)
        with_machine = factory.open_conversation(conn, NOW)
        machines.put(conn, with_machine, '{"v":3}', NOW)
    for for_update in (False, True):
        with store.transaction() as conn, _statements(store) as seen:
            stored, text = conversations.get_with_machine(conn, with_machine, for_update=for_update)
            assert stored == conversations.get(conn, with_machine) and text == '{"v":3}'
            assert len(seen) == 2  # the joined read, then get's own for the comparison
            stored, text = conversations.get_with_machine(conn, bare, for_update=for_update)
            assert stored is not None and stored.conversation_id == bare and text is None
            assert conversations.get_with_machine(conn, factory.new_id()) == (None, None)


def test_the_receivers_snapshot_is_one_statement(store: Store, ring: KekRing) -> None:
    with store.transaction() as conn:
        cid = factory.open_conversation(conn, NOW)
        machines.put(conn, cid, '{"v":4}', NOW)
        mid = _receive(conn, ring, cid)
        answered = _receive(conn, ring, cid)
        receipt_id = factory.new_id()
        assert receipts.record(
            conn,
            message_id=answered,
            receipt_message_id=receipt_id,
            direction=messages.Direction.OUT,
            outcome=receipts.ReceiptOutcome.ACCEPTED,
            at=NOW,
        )
    with store.read() as conn, _statements(store) as seen:
        new = conversations.receive_snapshot(conn, factory.new_id(), factory.new_id())
        stored = conversations.receive_snapshot(conn, mid, cid)
        receipted = conversations.receive_snapshot(conn, answered, cid)
        expected_conversation = conversations.get(conn, cid)
        expected_sha = messages.get(conn, mid)
    assert len(seen) == 5  # one a snapshot, then the two reads it is compared with
    assert all("AS stored_sha256" in s for s in seen[:3])
    assert new == conversations.ReceiveSnapshot(None, None, None, None)
    assert expected_sha is not None
    assert stored == conversations.ReceiveSnapshot(
        expected_sha.document_sha256, None, expected_conversation, '{"v":4}'
    )
    assert receipted.receipt_message_id == receipt_id
    assert receipted.stored_sha256 is not None and receipted.conversation is not None


def _receive(conn, ring: KekRing, cid: str) -> str:
    head = factory.header(cid, NOW - timedelta(minutes=5))
    outcome = messages.insert_received(
        conn, head, factory.signed_document(head.message_id), ring, NOW
    )
    assert outcome is messages.ReceiveOutcome.INSERTED
    return head.message_id


def test_report_after_receive_reuses_the_data_key(store: Store, ring: KekRing) -> None:
    with store.transaction() as conn:
        cid = factory.open_conversation(conn, NOW)
        mid = _receive(conn, ring, cid)
        with _statements(store) as seen:
            _record(conn, ring, mid, _validation_report())
        assert [s.split()[:3] for s in seen] == [["INSERT", "INTO", "verification_reports"]]
        dek = messages.data_key(conn, mid, ring)
    with store.transaction() as conn:
        # A later transaction reads the key from the table: the same key.
        with _statements(store) as seen:
            assert messages.data_key(conn, mid, ring) == dek
        assert len(seen) == 1 and "message_keys" in seen[0]
        assert reports.latest_report(conn, mid, ring) is not None


def test_rolled_back_savepoint_takes_its_key_along(store: Store, ring: KekRing) -> None:
    with store.transaction() as conn:
        cid = factory.open_conversation(conn, NOW)
        savepoint = conn.begin_nested()
        mid = _receive(conn, ring, cid)
        savepoint.rollback()
        with pytest.raises(messages.KeyShredded):
            messages.data_key(conn, mid, ring)


def test_released_savepoint_reads_the_key_again(store: Store, ring: KekRing) -> None:
    with store.transaction() as conn:
        cid = factory.open_conversation(conn, NOW)
        with conn.begin_nested():
            mid = _receive(conn, ring, cid)
            dek = messages.data_key(conn, mid, ring)
        with _statements(store) as seen:
            assert messages.data_key(conn, mid, ring) == dek
        assert len(seen) == 1 and "message_keys" in seen[0]


def test_purge_in_the_same_transaction_shreds_the_remembered_key(
    store: Store, ring: KekRing
) -> None:
    with store.transaction() as conn:
        purge.start_run(conn, "run-h", "p", "job:purge", NOW)
    with store.transaction() as conn:
        cid = factory.open_conversation(conn, NOW)
        mid = _receive(conn, ring, cid)
        purge.purge_messages(conn, [mid], run_id="run-h", policy="p", now=NOW)
        with pytest.raises(messages.KeyShredded):
            messages.data_key(conn, mid, ring)


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"last_kind": "Response"},
        {"deadline": None, "closed_at": NOW},
        {"last_kind": "Response", "deadline": NOW.date(), "confidential": True, "closed_at": None},
    ],
    ids=["none", "kind", "deadline-closed", "all"],
)
def test_transition_changes_only_the_given_columns(store: Store, given: dict) -> None:
    with store.transaction() as conn:
        cid = factory.open_conversation(conn, NOW)
        before = conversations.get(conn, cid)
        later = NOW + timedelta(minutes=1)
        assert conversations.transition(
            conn, cid, expected_state="received", new_state="answered", now=later, **given
        )
        assert not conversations.transition(
            conn, cid, expected_state="received", new_state="closed", now=later
        )
        after = conversations.get(conn, cid, for_update=True)
    assert after.state == "answered" and after.version == before.version + 1
    assert after.updated_at == later
    for name in ("last_kind", "deadline", "confidential", "closed_at"):
        expected = given.get(name, getattr(before, name))
        assert getattr(after, name) == expected, name


def test_claim_limit_and_lease_are_parameters(store: Store, ring: KekRing) -> None:
    with store.transaction() as conn:
        cid = factory.open_conversation(conn, NOW)
        for _ in range(3):
            head = factory.header(cid, NOW, sender="RU-FSSP", recipient="KZ-MJ")
            messages.insert_sent(conn, head, factory.signed_document(head.message_id), ring, NOW)
            outbox.enqueue(conn, head.message_id, "KZ-MJ", NOW)
    with store.transaction() as conn:
        first = outbox.claim_due(conn, "w1", NOW, 2, timedelta(minutes=1))
        second = outbox.claim_due(conn, "w2", NOW, 2, timedelta(minutes=1))
        third = outbox.claim_due(conn, "w3", NOW + timedelta(minutes=2), 5, timedelta(minutes=1))
    assert [len(first), len(second), len(third)] == [2, 1, 3]
    assert {c.worker_id for c in third} == {"w3"}
    assert sorted(c.attempt for c in third) == [2, 2, 2]

"""Retention: tombstones, crypto-shredding, legal holds, purge runs, all-or-nothing batches."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from gateway.app.tombstone_check import check_tombstones
from gateway.crypto.keys.kek import KekRing
from gateway.store import Store, audit, conversations, messages, outbox, purge, receipts
from gateway.store.messages import Direction
from gateway.store.receipts import ReceiptOutcome
from gateway.store.tables import attachment_segments, attachments, audit_events, message_keys
from gateway.store.tables import conversations as conversations_table
from gateway.store.tables import messages as messages_table
from tests.store import factory
from tests.store.conftest import NOW

OLD = NOW - timedelta(days=400)
CUTOFF = NOW - timedelta(days=365)


def _conversation(store: Store, ring: KekRing, stored_at, count: int = 2) -> tuple[str, list[str]]:
    cid = factory.new_id()
    ids = []
    with store.transaction() as conn:
        factory.open_conversation(conn, stored_at, cid)
        conversations.set_listing(conn, cid, b"n" * 12, b"sealed", [b"t" * 32])
        for _ in range(count):
            h = factory.header(cid, stored_at)
            messages.insert_received(
                conn, h, factory.signed_document(h.message_id), ring, stored_at
            )
            factory.add_attachment(conn, h.message_id, b"x", ring, stored_at)
            ids.append(h.message_id)
    return cid, ids


def _count(store: Store, table: sa.Table) -> int:
    with store.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_purge_tombstones_and_shreds(store: Store, ring: KekRing) -> None:
    cid, old_ids = _conversation(store, ring, OLD)
    _, young_ids = _conversation(store, ring, NOW)
    with store.transaction() as conn:
        receipts.record(
            conn,
            message_id=old_ids[0],
            receipt_message_id=factory.new_id(),
            direction=Direction.OUT,
            outcome=ReceiptOutcome.ACCEPTED,
            at=OLD,
        )
        purge.start_run(conn, "run-1", "cis-default", "job:purge", NOW)
        found = purge.candidates(conn, CUTOFF, 100)
    assert sorted(found) == sorted(old_ids)
    with store.transaction() as conn:
        assert (
            purge.purge_messages(conn, found[:1], run_id="run-1", policy="cis-default", now=NOW)
            == 1
        )
    with store.read() as conn:
        # The conversation still has one message: it stays.
        assert conversations.get(conn, cid) is not None
    with store.transaction() as conn:
        assert purge.purge_messages(conn, found, run_id="run-1", policy="cis-default", now=NOW) == 1
        purge.finish_run(conn, "run-1", NOW, held=0)
    with store.read() as conn:
        for mid in old_ids:
            assert messages.get(conn, mid) is None
            with pytest.raises(messages.MessageGone):
                messages.read_document(conn, mid, ring)
            tomb = purge.get_tombstone(conn, mid)
            assert tomb.document_sha256 == hashlib.sha256(factory.signed_document(mid)).digest()
            assert (tomb.kind, tomb.sender, tomb.recipient) == ("Request", "KZ-MJ", "RU-FSSP")
            assert tomb.created == OLD and tomb.purged_at == NOW and tomb.purge_run_id == "run-1"
        assert conversations.get(conn, cid) is None  # last message gone: conversation gone
        tagged = conversations.list_page(conn, conversations.ConversationFilter(tags=(b"t" * 32,)))
        assert cid not in [c.conversation_id for c in tagged.items]
        assert receipts.get(conn, old_ids[0]) is None
        run = purge.get_run(conn, "run-1")
        assert (run.state, run.purged) == ("finished", 2)
        kinds = [e.kind for e in audit.events(conn)]
        # One binding event per purged batch (two batches here), not one per message.
        assert kinds == ["purge.started", "purge.batch", "purge.batch", "purge.finished"]
        assert audit.verify(conn).intact
        for mid in young_ids:
            assert messages.read_document(conn, mid, ring) == factory.signed_document(mid)
    assert _count(store, message_keys) == len(young_ids)
    assert _count(store, attachments) == len(young_ids)
    assert _count(store, attachment_segments) == len(young_ids)  # the purged ones' went too


def test_legal_hold_blocks_purge(store: Store, ring: KekRing) -> None:
    cid, ids = _conversation(store, ring, OLD)
    with store.transaction() as conn:
        hold = purge.place_hold(conn, cid, "order 12/2026", "admin1", NOW)
        purge.start_run(conn, "run-2", "cis-default", "job:purge", NOW)
        assert purge.candidates(conn, CUTOFF, 100) == []
        assert purge.count_held(conn, CUTOFF) == 2
    with pytest.raises(purge.LegalHoldActive, match="legal hold"), store.transaction() as conn:
        purge.purge_messages(conn, ids, run_id="run-2", policy="p", now=NOW)
    with store.read() as conn:  # the failed batch left everything whole
        assert all(messages.get(conn, m) is not None for m in ids)
        assert purge.get_tombstone(conn, ids[0]) is None
        assert purge.get_run(conn, "run-2").purged == 0
    with store.transaction() as conn:
        assert purge.release_hold(conn, hold, "admin1", NOW)
        assert not purge.release_hold(conn, hold, "admin1", NOW)
        assert purge.active_holds(conn, cid) == []
        assert sorted(purge.candidates(conn, CUTOFF, 100)) == sorted(ids)


def test_batch_is_all_or_nothing(store: Store, ring: KekRing) -> None:
    _, ids = _conversation(store, ring, OLD, count=3)
    with store.transaction() as conn:
        purge.start_run(conn, "run-3", "p", "job:purge", NOW)
    with pytest.raises(RuntimeError), store.transaction() as conn:
        purge.purge_messages(conn, ids, run_id="run-3", policy="p", now=NOW)
        raise RuntimeError("crash before commit")
    with store.read() as conn:
        for mid in ids:
            assert messages.read_document(conn, mid, ring) == factory.signed_document(mid)
            assert purge.get_tombstone(conn, mid) is None
        assert audit.verify(conn).last_seq == 1  # only purge.started


def _batch_events(store: Store) -> list[dict]:
    with store.read() as conn:
        rows = conn.execute(
            sa.select(audit_events.c.details)
            .where(audit_events.c.kind == purge.BATCH_EVENT)
            .order_by(audit_events.c.seq)
        ).scalars()
        return [json.loads(d) for d in rows]


def _purge_in_batches(
    conn: sa.Connection, ids: list[str], run_id: str, *, batch_size: int
) -> list[purge.PurgedBatch]:
    locked = purge.lock_batch(conn, ids)
    return purge.purge_batch(
        conn,
        [(m, "p") for m in locked],
        run_id=run_id,
        actor="job:purge",
        now=NOW,
        batch_size=batch_size,
    )


def test_one_transaction_binds_several_batches(store: Store, ring: KekRing) -> None:
    """A transaction of 5 messages in batches of 2: three ``purge.batch`` events (2, 2, 1),
    numbered on, each over its own rows in message-id order; ``audit verify``'s tombstone
    check and the run's digest recomputed from the rows agree with them."""
    ids = [m for _ in range(3) for m in _conversation(store, ring, OLD, count=2)[1]][:5]
    with store.transaction() as conn:
        purge.start_run(conn, "run-t", "p", "job:purge", NOW)
    with store.transaction() as conn:
        bound = _purge_in_batches(conn, ids, "run-t", batch_size=2)
    assert [(b.batch, b.count) for b in bound] == [(1, 2), (2, 2), (3, 1)]
    events = _batch_events(store)
    assert [(e["batch"], e["count"]) for e in events] == [(1, 2), (2, 2), (3, 1)]
    ordered = sorted(ids)
    assert [(e["first"], e["last"]) for e in events] == [
        (ordered[0], ordered[1]),
        (ordered[2], ordered[3]),
        (ordered[4], ordered[4]),
    ]
    with store.read() as conn:
        assert purge.batch_counts(conn, "run-t") == {
            ("run-t", 1): 2,
            ("run-t", 2): 2,
            ("run-t", 3): 1,
        }
        assert [bytes.fromhex(e["sha256"]) for e in events] == [b.sha256 for b in bound]
        assert purge.run_digest_from_rows(conn, "run-t") == (
            5,
            3,
            purge.runs_digest([b.sha256 for b in bound]),
        )
        assert all(messages.get(conn, m) is None for m in ids)
        audit.verify(conn)
    assert check_tombstones(store, "run-t") is None


def test_a_transaction_of_several_batches_is_all_or_nothing(store: Store, ring: KekRing) -> None:
    ids = [m for _ in range(2) for m in _conversation(store, ring, OLD, count=2)[1]]
    with store.transaction() as conn:
        purge.start_run(conn, "run-u", "p", "job:purge", NOW)
    with pytest.raises(RuntimeError), store.transaction() as conn:
        assert len(_purge_in_batches(conn, ids, "run-u", batch_size=1)) == 4
        raise RuntimeError("crash before commit")
    assert _batch_events(store) == []
    with store.read() as conn:
        for mid in ids:
            assert messages.read_document(conn, mid, ring) == factory.signed_document(mid)
            assert purge.get_tombstone(conn, mid) is None


def test_a_batch_binds_at_most_a_thousand(store: Store) -> None:
    with store.transaction() as conn, pytest.raises(ValueError, match="batch_size"):
        purge.purge_batch(conn, [], run_id="r", actor="a", now=NOW, batch_size=1001)
    with store.transaction() as conn, pytest.raises(ValueError, match="10000"):
        purge.lock_batch(conn, [str(i) for i in range(10_001)])


_AWKWARD = ["", "a", "ё Ёж №", '"\\', "\x00\x1f\x7f", "\u2028\u2029", "😀 \U0010ffff", "\ud7ff"]


@pytest.mark.parametrize("text", _AWKWARD)
def test_a_leaf_is_the_canonical_json_of_the_row(text: str) -> None:
    """The leaf is written through a template of the fixed keys: byte for byte the canonical
    JSON (``json.dumps`` sorted, compact, UTF-8) the verifier and earlier runs used."""
    at = NOW.astimezone(timezone(timedelta(hours=3))) + timedelta(microseconds=7)
    for policy_hash in (None, text):
        row = purge.Tombstone(
            text,
            text + "c",
            "in",
            text,
            "Request",
            text,
            "RU-FSSP",
            at,
            NOW,
            NOW,
            bytes(range(32)),
            text,
            "run-" + text,
            policy_hash,
        )
        fields = {
            name: (
                v.astimezone(UTC).isoformat(timespec="microseconds")
                if isinstance(v, datetime)
                else v.hex()
                if isinstance(v, bytes)
                else v
            )
            for name, v in zip(purge.Tombstone._fields, row, strict=True)
        }
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert purge.tombstone_leaf(row) == hashlib.sha256(canonical.encode("utf-8")).digest()


def test_pending_outbox_is_not_purged(store: Store, ring: KekRing) -> None:
    cid = factory.new_id()
    with store.transaction() as conn:
        factory.open_conversation(conn, OLD, cid)
        h = factory.header(cid, OLD, sender="RU-FSSP", recipient="KZ-MJ")
        messages.insert_sent(conn, h, b"<d/>", ring, OLD)
        oid = outbox.enqueue(conn, h.message_id, "KZ-MJ", OLD)
        assert purge.candidates(conn, CUTOFF, 10) == []
        (claim,) = outbox.claim_due(conn, "w", NOW, 1, timedelta(minutes=1))
        outbox.mark_delivered(conn, claim, NOW)
        assert purge.candidates(conn, CUTOFF, 10) == [h.message_id]
        purge.start_run(conn, "run-4", "p", "job:purge", NOW)
        assert purge.purge_messages(conn, [h.message_id], run_id="run-4", policy="p", now=NOW) == 1
        assert outbox.get(conn, oid) is None


def test_purge_needs_a_running_run(store: Store, ring: KekRing) -> None:
    _, ids = _conversation(store, ring, OLD, count=1)
    with store.transaction() as conn, pytest.raises(ValueError, match="not running"):
        purge.purge_messages(conn, ids, run_id="nope", policy="p", now=NOW)


def test_replay_after_purge_is_still_a_duplicate(store: Store, ring: KekRing) -> None:
    cid, (mid,) = _conversation(store, ring, OLD, count=1)
    with store.transaction() as conn:
        purge.start_run(conn, "run-5", "p", "job:purge", NOW)
        purge.purge_messages(conn, [mid], run_id="run-5", policy="p", now=NOW)
    head = factory.header(cid, OLD, message_id=mid)
    with store.transaction() as conn:
        factory.open_conversation(conn, NOW, cid)
        again = messages.insert_received(conn, head, factory.signed_document(mid), ring, NOW)
        other = messages.insert_received(conn, head, b"<forged/>", ring, NOW)
    assert (again, other) == (messages.ReceiveOutcome.DUPLICATE, messages.ReceiveOutcome.CONFLICT)
    with store.read() as conn:
        assert messages.get(conn, mid) is None
        assert purge.get_tombstone(conn, mid) is not None


def test_scan_gives_retention_facts(store: Store, ring: KekRing) -> None:
    cid, ids = _conversation(store, ring, OLD, count=3)
    closed, proceeding = OLD + timedelta(days=30), OLD + timedelta(days=60)
    with store.transaction() as conn:
        assert conversations.transition(
            conn, cid, expected_state="received", new_state="closed", now=closed, closed_at=closed
        )
        assert conversations.mark_proceeding_closed(conn, cid, proceeding, NOW)
        purge.place_hold(conn, cid, "order 1", "admin1", NOW)
        other = factory.new_id()
        factory.open_conversation(conn, NOW, other)
        h = factory.header(other, NOW, sender="RU-FSSP", recipient="KZ-MJ")
        messages.insert_sent(conn, h, b"<d/>", ring, NOW)
        outbox.enqueue(conn, h.message_id, "KZ-MJ", NOW)
    seen, after = [], 0
    while True:
        with store.read() as conn:
            batch = purge.scan(conn, after, limit=2)
        if not batch:
            break
        seen += batch
        after = batch[-1].position
    assert [f.message_id for f in seen] == [*ids, h.message_id]
    first, last = seen[0], seen[-1]
    assert (first.direction, first.sender, first.stored_at) == ("in", "KZ-MJ", OLD)
    assert (first.conversation_closed_at, first.proceeding_closed_at) == (closed, proceeding)
    assert first.held and not first.pending_delivery
    assert (last.direction, last.held, last.pending_delivery) == ("out", False, True)
    assert last.conversation_closed_at is None


@pytest.mark.parametrize("count", [0, 1, 3000])
def test_an_id_set_is_one_parameter_whatever_its_size(store: Store, count: int) -> None:
    """The purge's statements send a batch's ids as one parameter (``dialect.in_text_set``):
    any number of ids selects exactly those rows, with one bound value."""
    from gateway.store.dialect import in_text_set
    from gateway.store.tables import legal_holds

    wanted = [f"conv-{i:05d}" for i in range(count)]
    with store.transaction() as conn:
        conn.execute(
            legal_holds.insert(),
            [
                {"conversation_id": cid, "reference": "r", "placed_by": "t", "placed_at": NOW}
                for cid in [*wanted, "conv-other"]
            ],
        )
        condition = in_text_set(conn, legal_holds.c.conversation_id, wanted)
        stmt = sa.select(legal_holds.c.conversation_id).where(condition)
        assert len(stmt.compile(dialect=conn.dialect).params) == 1
        assert sorted(conn.execute(stmt).scalars()) == wanted


def test_an_id_with_the_set_separator_is_refused_or_kept_whole(store: Store) -> None:
    """PostgreSQL joins the set with 0x1F: an id holding it is refused, never split; SQLite
    sends JSON, where it is one element like any other."""
    from gateway.store.dialect import in_text_set
    from gateway.store.tables import legal_holds

    odd = "a\x1fb"
    with store.transaction() as conn:
        conn.execute(
            legal_holds.insert(),
            [
                {"conversation_id": cid, "reference": "r", "placed_by": "t", "placed_at": NOW}
                for cid in (odd, "a", "b")
            ],
        )
        if conn.dialect.name == "postgresql":
            with pytest.raises(ValueError, match="unit separator"):
                in_text_set(conn, legal_holds.c.conversation_id, [odd, "c"])
        else:
            condition = in_text_set(conn, legal_holds.c.conversation_id, [odd, "c"])
            found = conn.execute(sa.select(legal_holds.c.conversation_id).where(condition))
            assert list(found.scalars()) == [odd]


def test_a_purge_transaction_gets_a_larger_sqlite_page_cache(store: Store, ring: KekRing) -> None:
    """SQLite: 64 MiB of page cache for the connection purging (the default 2 MiB re-read and
    spilled index pages at a million messages); PostgreSQL settings are per transaction."""
    _, ids = _conversation(store, ring, OLD)
    with store.transaction() as conn:
        purge.lock_batch(conn, ids)
        if store.dialect == "sqlite":
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -65_536
        else:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"


def test_lock_batch_given_the_scan_reads_again_only_what_can_change(
    store: Store, ring: KekRing
) -> None:
    """Given the scan's facts, a batch's lock keeps each message's header facts (they never
    change once stored) and reads again what can: the conversation's closing times, a hold,
    the outbox, the document's hash. The result equals a full read; a message of which
    nothing changed keeps the scan's very tuple."""
    cid, ids = _conversation(store, ring, OLD, count=2)
    _, untouched = _conversation(store, ring, OLD, count=1)
    with store.read() as conn:
        scanned = {facts.message_id: facts for facts in purge.scan(conn)}
    signed_again = hashlib.sha256(b"signed again before it left").digest()
    with store.transaction() as conn:
        conn.execute(
            sa.update(conversations_table)
            .where(conversations_table.c.conversation_id == cid)
            .values(closed_at=NOW, proceeding_closed_at=NOW - timedelta(days=1))
        )
        purge.place_hold(conn, cid, "order 7/2026", "admin", NOW)
        outbox.enqueue(conn, ids[0], "KZ-MJ", NOW)
        conn.execute(
            sa.update(messages_table)
            .where(messages_table.c.message_id == ids[1])
            .values(document_sha256=signed_again)
        )

    with store.transaction() as conn:
        batch = [*ids, *untouched]
        merged = {m.facts.message_id: m for m in purge.lock_batch(conn, batch, scanned)}
        full = {m.facts.message_id: m for m in purge.lock_batch(conn, batch)}

    assert merged == full
    first = merged[ids[0]].facts
    assert (first.conversation_closed_at, first.proceeding_closed_at) == (
        NOW,
        NOW - timedelta(days=1),
    )
    assert first.held and first.pending_delivery
    assert merged[ids[1]].facts.held and not merged[ids[1]].facts.pending_delivery
    assert merged[ids[1]].document_sha256 == signed_again
    assert merged[untouched[0]].facts is scanned[untouched[0]]


def _subplan_loops(plan: dict) -> list[int]:
    """How many times each subquery of a PostgreSQL plan (EXPLAIN ANALYZE, JSON) ran."""
    loops = []
    for child in plan.get("Plans", []):
        if child.get("Parent Relationship") == "SubPlan":
            loops.append(child["Actual Loops"])
        loops.extend(_subplan_loops(child))
    return loops


def test_the_scan_reads_the_holds_and_the_outbox_once_per_statement(
    store: Store, ring: KekRing
) -> None:
    """Whether a message is held or undelivered is a lookup in a set read once per statement,
    not a subquery run again for each message: with a correlated subquery SQLite walked every
    pending outbox row for each message (2,000 pending: a scan of 50,000 took 16.9 s instead
    of 0.6)."""
    cid, ids = _conversation(store, ring, OLD, count=4)
    with store.transaction() as conn:
        for message_id in ids[:2]:
            outbox.enqueue(conn, message_id, "KZ-MJ", NOW)
        purge.place_hold(conn, cid, "order 7/2026", "admin", NOW)
    statements: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _executemany) -> None:
        statements.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        with store.read() as conn:
            facts = purge.scan(conn)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    assert [(f.held, f.pending_delivery) for f in facts] == [
        (True, True),
        (True, True),
        (True, False),
        (True, False),
    ]
    (statement, parameters) = next((s, p) for s, p in statements if "FROM messages" in s)
    with store.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        cursor = raw.cursor()
        if store.dialect == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            details = [row[3] for row in cursor.fetchall()]
            assert details and not [d for d in details if "CORRELATED" in d], details
        else:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
            (plan,) = cursor.fetchone()[0]
            loops = _subplan_loops(plan["Plan"])
            assert loops and max(loops) == 1, loops
        cursor.close()


@pytest.mark.parametrize("run", ["never started", "finished"])
def test_tombstones_are_written_only_under_a_running_run(
    store: Store, ring: KekRing, run: str
) -> None:
    """What stands for the tombstones' foreign key to their run (dropped in 0022): the purge
    refuses to tombstone under a run that does not exist or no longer runs, and nothing of the
    transaction is kept."""
    _, ids = _conversation(store, ring, OLD)
    if run == "finished":
        with store.transaction() as conn:
            purge.start_run(conn, "run-done", "cis-default", "job:purge", NOW)
            purge.finish_run(conn, "run-done", NOW, held=0, error_code=None, report_sha256=None)
    with pytest.raises(ValueError, match="is not running"), store.transaction() as conn:
        _purge_in_batches(conn, ids, "run-done", batch_size=2)
    assert _count(store, purge.tombstones) == 0
    assert _count(store, messages_table) == len(ids)

"""The purge leaves no row of a purged conversation or message behind, in any table.

No foreign key deletes a message's or a conversation's rows (migration 0020): the purge does,
table by table (``purge.MESSAGE_ROWS``, ``purge.CONVERSATION_ROWS``, attachments, outbox). A
table added later that names a message or a conversation fails here until the purge deletes
its rows (or it is listed in :data:`OUTLIVE_THE_PURGE` with its reason).
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from gateway.crypto.keys.kek import KekRing
from gateway.store import Store, conversations, messages, outbox, purge, receipts
from gateway.store.messages import Direction
from gateway.store.receipts import ReceiptOutcome
from gateway.store.tables import (
    conversation_machines,
    late_answers,
    metadata,
    originals,
    resends,
    verification_reports,
)
from tests.store import factory
from tests.store.conftest import NOW

OLD = NOW - timedelta(days=400)

OUTLIVE_THE_PURGE = {
    "tombstones": "the proof of the purge",
    "disclosures": "the record of a disclosure outlives the purge (docs/confidentiality.md)",
    "legal_holds": "a hold's record stays; a held conversation is not purged",
}
KEYS = ("message_id", "conversation_id", "attachment_id", "outbox_id")
"""Columns naming a message, a conversation, or a row of theirs."""


def _tables() -> list[sa.Table]:
    return [
        t
        for t in metadata.sorted_tables
        if t.name not in OUTLIVE_THE_PURGE and any(k in t.c for k in KEYS)
    ]


def _theirs(conn: sa.Connection, table: sa.Table, ids: dict[str, list]) -> int:
    """Rows of ``table`` naming one of ``ids`` (column → values)."""
    named = [table.c[k].in_(ids[k]) for k in KEYS if k in table.c and ids[k]]
    return conn.execute(
        sa.select(sa.func.count()).select_from(table).where(sa.or_(*named))
    ).scalar_one()


def test_a_purged_conversation_leaves_no_row_in_any_table(store: Store, ring: KekRing) -> None:
    cid = factory.new_id()
    ids: dict[str, list] = {"conversation_id": [cid], "message_id": [], "attachment_id": []}
    with store.transaction() as conn:
        factory.open_conversation(conn, OLD, cid)
        conversations.set_listing(conn, cid, b"n" * 12, b"sealed", [b"t" * 32])
        conn.execute(
            conversation_machines.insert().values(conversation_id=cid, machine="{}", updated_at=OLD)
        )
        for _ in range(2):
            h = factory.header(cid, OLD)
            messages.insert_received(conn, h, factory.signed_document(h.message_id), ring, OLD)
            ids["attachment_id"].append(factory.add_attachment(conn, h.message_id, b"x", ring, OLD))
            ids["message_id"].append(h.message_id)
        first, second = ids["message_id"]
        receipts.record(
            conn,
            message_id=first,
            receipt_message_id=factory.new_id(),
            direction=Direction.OUT,
            outcome=ReceiptOutcome.ACCEPTED,
            at=OLD,
        )
        conn.execute(
            verification_reports.insert().values(
                message_id=first,
                recorded_at=OLD,
                purpose="receipt",
                indication="TOTAL_PASSED",
                report_nonce=b"n" * 12,
                report=b"sealed",
            )
        )
        conn.execute(
            late_answers.insert().values(
                message_id=second,
                conversation_id=cid,
                kind="Response",
                due=OLD.date(),
                answered_on=OLD.date(),
                days_late=3,
                working_days=True,
                recorded_at=OLD,
            )
        )
        conn.execute(
            resends.insert().values(
                message_id=second, original_id=factory.new_id(), conversation_id=cid, resent_at=OLD
            )
        )
        conn.execute(
            originals.insert().values(message_id=first, conversation_id=cid, updated_at=OLD)
        )
        oid = outbox.enqueue(conn, second, "KZ-MJ", OLD)
        (claim,) = outbox.claim_due(conn, "w", OLD, 1, timedelta(minutes=1))  # an attempt row
        outbox.mark_delivered(conn, claim, OLD)
        ids["outbox_id"] = [oid]
    with store.read() as conn:
        # Every table naming them has a row of theirs: a new table must be seeded here.
        unseeded = [t.name for t in _tables() if _theirs(conn, t, ids) == 0]
    assert unseeded == []
    with store.transaction() as conn:
        purge.start_run(conn, "run-1", "cis-default", "job:purge", NOW)
        assert (
            purge.purge_messages(
                conn, ids["message_id"], run_id="run-1", policy="cis-default", now=NOW
            )
            == 2
        )
    with store.read() as conn:
        left = {t.name: n for t in _tables() if (n := _theirs(conn, t, ids))}
        assert purge.tombstone_counts(conn) == {"run-1": 2}
    assert left == {}

"""Test data for the purge: conversations and messages with chosen dates, policy sets."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.app.purge import PurgeReport, run_purge
from gateway.app.retention import PolicySet, parse_policies
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import KeyStore, SigningKey
from gateway.store import Store, conversations, messages, outbox
from gateway.store import attachments as attachment_store
from gateway.store.messages import MessageHeader
from gateway.store.tables import attachment_segments, attachments, message_keys, tombstones
from gateway.store.tables import conversations as conversations_table
from gateway.store.tables import messages as messages_table
from tests.store import factory

BODY = "RU-FSSP"
PEER = "KZ-MJ"
PASSPHRASE = "purge-test-passphrase"
T0 = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


def policies(text: str) -> PolicySet:
    return parse_policies(text, Path("test-policies.toml"))


def one_policy(counts_from: str, keep: str = "1 year", name: str = "p") -> PolicySet:
    """A single catch-all policy (it covers every message, so the set is complete)."""
    return policies(
        f'[[policy]]\nname = "{name}"\ncounts_from = "{counts_from}"\nkeep = "{keep}"\n'
    )


def document(message_id: str) -> bytes:
    return (
        f'<env:Envelope xmlns:env="urn:cis-exchange:envelope:1"><env:MessageId>{message_id}'
        "</env:MessageId><Debtor>Қасымов Ерлан</Debtor></env:Envelope>"
    ).encode()


@dataclass(frozen=True)
class Conv:
    conversation_id: str
    message_ids: tuple[str, ...]


def add_conversation(
    conn: Connection,
    ring: KekRing,
    stored_at: datetime,
    *,
    count: int = 2,
    kinds: tuple[str, ...] = ("Request", "Receipt"),
    closed_at: datetime | None = None,
    proceeding_closed_at: datetime | None = None,
    direction: str = "in",
    with_attachment: bool = True,
) -> Conv:
    cid = str(uuid.uuid4())
    conversations.open_conversation(
        conn,
        conversation_id=cid,
        agreement="cis-enforcement",
        requesting_party=PEER,
        requested_party=BODY,
        opening_kind="Request",
        state="received",
        confidential=False,
        deadline=None,
        now=stored_at,
    )
    ids = []
    for i in range(count):
        mid = str(uuid.uuid4())
        sender, recipient = (PEER, BODY) if direction == "in" else (BODY, PEER)
        header = MessageHeader(
            message_id=mid,
            conversation_id=cid,
            agreement="cis-enforcement",
            kind=kinds[i % len(kinds)],
            sender=sender,
            recipient=recipient,
            created=stored_at,
            confidential=False,
        )
        if direction == "in":
            messages.insert_received(conn, header, document(mid), ring, stored_at)
        else:
            messages.insert_sent(conn, header, document(mid), ring, stored_at)
        if with_attachment:
            factory.add_attachment(conn, mid, b"%PDF-" + mid.encode(), ring, stored_at)
        ids.append(mid)
    if closed_at or proceeding_closed_at:
        conn.execute(
            conversations_table.update()
            .where(conversations_table.c.conversation_id == cid)
            .values(closed_at=closed_at, proceeding_closed_at=proceeding_closed_at)
        )
    return Conv(cid, tuple(ids))


def enqueue_pending(conn: Connection, message_id: str, now: datetime) -> None:
    outbox.enqueue(conn, message_id, PEER, now)


def state_of(store: Store, ring: KekRing, message_id: str) -> str:
    """``whole`` (row, key, readable document and attachments), ``tombstoned`` (tombstone, no
    row, no key, no attachments), or ``HALF: …`` naming what is inconsistent."""
    with store.read() as conn:
        row = conn.execute(
            sa.select(messages_table.c.message_id).where(messages_table.c.message_id == message_id)
        ).first()
        key = conn.execute(
            sa.select(message_keys.c.message_id).where(message_keys.c.message_id == message_id)
        ).first()
        atts = conn.execute(
            sa.select(sa.func.count())
            .select_from(attachments)
            .where(attachments.c.message_id == message_id)
        ).scalar_one()
        stone = conn.execute(
            sa.select(tombstones.c.document_sha256).where(tombstones.c.message_id == message_id)
        ).first()
        if row and key and not stone:
            doc = messages.read_document(conn, message_id, ring)
            read_atts = attachment_store.for_message(conn, message_id, ring)
            if doc != document(message_id) or len(read_atts) != atts:
                return "HALF: content differs"
            return "whole"
        if stone and not row and not key and atts == 0:
            if stone.document_sha256 != hashlib.sha256(document(message_id)).digest():
                return "HALF: tombstone digest differs"
            return "tombstoned"
        return f"HALF: row={bool(row)} key={bool(key)} attachments={atts} tombstone={bool(stone)}"


def long_ago(days: int) -> datetime:
    """``days`` before the present. A real purge run evaluates at the present, never later
    (gateway.app.purge.run_purge_now): messages a run through the command line is to destroy
    are stored this long ago, not at ``T0``."""
    return datetime.now(UTC) - timedelta(days=days)


def after(t: datetime, **kw: int) -> datetime:
    return t + timedelta(**kw)


def purge_received_after_a_year(store: Store, seal: SigningKey, **options: Any) -> PurgeReport:
    """The job's run, 800 days after :data:`T0`, under one policy: keep received messages a
    year (``options``: :func:`run_purge`'s batch size, writers, callbacks)."""
    return run_purge(
        store,
        one_policy("received", "1 year"),
        after(T0, days=800),
        seal=seal,
        actor="job:purge",
        **options,
    )


def bulk_messages(
    store: Store, ring: KekRing, count: int, stored_at: datetime, *, per_conversation: int = 2
) -> list[str]:
    """``count`` received messages with real encryption and wrapped keys, inserted in bulk
    (the per-message insert path is exercised elsewhere; here speed matters)."""
    from gateway.crypto import at_rest
    from gateway.store.tables import conversations as conv_t
    from gateway.store.tables import messages as msg_t

    conv_rows, msg_rows, key_rows, att_rows, ids = [], [], [], [], []
    segment_rows: list[dict[str, object]] = []
    cid = ""
    for i in range(count):
        if i % per_conversation == 0:
            cid = str(uuid.uuid4())
            conv_rows.append(
                {
                    "conversation_id": cid,
                    "agreement": "cis-enforcement",
                    "requesting_party": PEER,
                    "requested_party": BODY,
                    "opening_kind": "Request",
                    "last_kind": "Request",
                    "state": "received",
                    "confidential": False,
                    "deadline": None,
                    "opened_at": stored_at,
                    "updated_at": stored_at,
                    "version": 1,
                }
            )
        mid = str(uuid.uuid4())
        ids.append(mid)
        dek = at_rest.new_data_key()
        doc = document(mid)
        nonce, ct = at_rest.encrypt_part(dek, doc, at_rest.payload_aad(mid))
        msg_rows.append(
            {
                "message_id": mid,
                "conversation_id": cid,
                "in_reply_to": None,
                "direction": "in",
                "agreement": "cis-enforcement",
                "kind": "Request",
                "sender": PEER,
                "recipient": BODY,
                "created": stored_at,
                "stored_at": stored_at,
                "confidential": False,
                "document_sha256": hashlib.sha256(doc).digest(),
                "document_size": len(doc),
                "payload_nonce": nonce,
                "payload": ct,
            }
        )
        wrapped = at_rest.wrap_data_key(dek, ring)
        key_rows.append(
            {
                "message_id": mid,
                "kek_id": wrapped.kek_id,
                "wrapped_dek": wrapped.blob,
                "wrapped_at": stored_at,
            }
        )
        att_row, att_segments = factory.attachment_rows(
            mid, dek, b"%PDF-" + mid.encode(), stored_at
        )
        att_rows.append(att_row)
        segment_rows.extend(att_segments)
    with store.transaction() as conn:
        conn.execute(conv_t.insert(), conv_rows)
        conn.execute(msg_t.insert(), msg_rows)
        conn.execute(message_keys.insert(), key_rows)
        conn.execute(attachments.insert(), att_rows)
        conn.execute(attachment_segments.insert(), segment_rows)
    return ids


def states_of(store: Store, ring: KekRing, ids: list[str]) -> dict[str, str]:
    """:func:`state_of` for many messages, in one read transaction and a few queries: every
    whole message's data key is unwrapped and its document and attachment decrypted (the
    primitives ``messages.read_document`` uses, in bulk)."""
    from gateway.crypto import at_rest

    wanted = set(ids)
    with store.read() as conn:
        rows = {
            r.message_id: r
            for r in conn.execute(
                sa.select(
                    messages_table.c.message_id,
                    messages_table.c.payload_nonce,
                    messages_table.c.payload,
                )
            )
            if r.message_id in wanted
        }
        keys = {
            r.message_id: at_rest.WrappedKey(r.kek_id, r.wrapped_dek)
            for r in conn.execute(sa.select(message_keys))
            if r.message_id in wanted
        }
        atts = {
            r.message_id: r for r in conn.execute(sa.select(attachments)) if r.message_id in wanted
        }
        segs: dict[str, list[sa.Row]] = {}
        for seg in conn.execute(sa.select(attachment_segments)):
            segs.setdefault(seg.attachment_id, []).append(seg)
        stones = dict(
            conn.execute(sa.select(tombstones.c.message_id, tombstones.c.document_sha256)).all()
        )
    result = {}
    for mid in ids:
        row, key, att, stone = rows.get(mid), keys.get(mid), atts.get(mid), stones.get(mid)
        if row and key and att and stone is None:
            dek = at_rest.unwrap_data_key(key, ring)
            doc = at_rest.decrypt_part(
                dek, row.payload_nonce, row.payload, at_rest.payload_aad(mid)
            )
            content = factory.open_attachment_row(att, segs.get(att.attachment_id, []), dek)
            ok = doc == document(mid) and content == b"%PDF-" + mid.encode()
            result[mid] = "whole" if ok else "HALF: content differs"
        elif stone is not None and not row and not key and not att:
            ok = stone == hashlib.sha256(document(mid)).digest()
            result[mid] = "tombstoned" if ok else "HALF: tombstone digest differs"
        else:
            result[mid] = (
                f"HALF: row={bool(row)} key={bool(key)} attachment={bool(att)} "
                f"tombstone={stone is not None}"
            )
    return result


@dataclass
class JobNode:
    """What the scheduled job bodies read of a node (gateway.app.scheduled.job_bodies), without
    starting one."""

    store: Store
    keys: KeyStore
    body_id: str
    kek_ring: KekRing
    calendars: Any = None

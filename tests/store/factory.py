"""Test data: headers, signed-looking documents with personal values, conversations."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from gateway.crypto import segments
from gateway.crypto.keys.kek import KekRing
from gateway.store import attachments, conversations, messages
from gateway.store.attachments import AttachmentMeta
from gateway.store.messages import MessageHeader

# Byte-exactness matters: CRLF, a tab, trailing spaces, Cyrillic, an odd attribute order.
DEBTOR_NAME = "Қасымов Ерлан Маратұлы"
DEBTOR_BIRTH = "1981-04-17"
DEBTOR_ACCOUNT = "KZ86125KZT5004100100"
PERSONAL_VALUES = (DEBTOR_NAME, DEBTOR_BIRTH, DEBTOR_ACCOUNT, "Маратұлы", "КАСЫМОВ")


def signed_document(message_id: str, debtor: str = DEBTOR_NAME) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<env:Envelope xmlns:env="urn:cis-exchange:envelope:1">'
        f'<env:Header Id="header"><env:MessageId>{message_id}</env:MessageId></env:Header>\r\n'
        '<env:Body Id="body">'
        '<cis:Request xmlns:cis="urn:cis-exchange:cis-enforcement:1" b="2" a="1">'
        f"<Debtor>\t{debtor}  </Debtor><BirthDate>{DEBTOR_BIRTH}</BirthDate>"
        f"<Account>{DEBTOR_ACCOUNT}</Account><Surname>КАСЫМОВ</Surname>"
        "</cis:Request></env:Body>"
        '<env:Signatures><env:Seal><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
        "<ds:SignatureValue>MEUCIQDx/+==</ds:SignatureValue></ds:Signature></env:Seal>"
        "</env:Signatures></env:Envelope>"
    ).encode()


def new_id() -> str:
    return str(uuid.uuid4())


def header(
    conversation_id: str,
    created: datetime,
    *,
    message_id: str | None = None,
    kind: str = "Request",
    sender: str = "KZ-MJ",
    recipient: str = "RU-FSSP",
    confidential: bool = False,
) -> MessageHeader:
    return MessageHeader(
        message_id=message_id or new_id(),
        conversation_id=conversation_id,
        agreement="cis-enforcement",
        kind=kind,
        sender=sender,
        recipient=recipient,
        created=created,
        confidential=confidential,
    )


def open_conversation(
    conn: Connection, now: datetime, conversation_id: str | None = None, **overrides
) -> str:
    cid = conversation_id or new_id()
    values = {
        "agreement": "cis-enforcement",
        "requesting_party": "KZ-MJ",
        "requested_party": "RU-FSSP",
        "opening_kind": "Request",
        "state": "received",
        "confidential": False,
        "deadline": (now + timedelta(days=42)).date(),
    }
    values.update(overrides)
    conversations.open_conversation(conn, conversation_id=cid, now=now, **values)
    return cid


def add_attachment(
    conn: Connection,
    message_id: str,
    content: bytes,
    ring: KekRing,
    now: datetime,
    meta: AttachmentMeta | None = None,
) -> str:
    """Stage ``content`` as an attachment and link it to the stored message; its id."""
    meta = meta or AttachmentMeta("file.pdf", "application/pdf")
    staging = attachments.begin(conn, meta, ring, now)
    attachments.write(conn, staging, content)
    attachments.finish(conn, staging)
    key = messages.data_key(conn, message_id, ring)
    attachments.link(conn, message_id, key, [staging.attachment_id], ring)
    return staging.attachment_id


def read_attachment(conn: Connection, attachment_id: str, ring: KekRing) -> bytes:
    opened = attachments.reader(conn, attachment_id, ring)
    return b"".join(
        b"".join(opened.batch(conn, first))
        for first in range(0, opened.segment_count, attachments.READ_BATCH_SEGMENTS)
    )


def attachment_rows(
    message_id: str, dek: bytes, content: bytes, now: datetime
) -> tuple[dict[str, object], list[dict[str, object]]]:
    """The rows of one linked attachment under the message's data key (bulk inserts)."""
    attachment_id = new_id()
    key, prefix = segments.new_part_key(), segments.new_prefix()
    writer = segments.SegmentWriter(key, prefix, attachment_id)
    sealed = writer.feed(content)
    last, digest = writer.finish()
    meta_nonce, meta = attachments._seal_meta(key, attachment_id, AttachmentMeta("a.pdf", "a/b"))
    row: dict[str, object] = {
        "attachment_id": attachment_id,
        "message_id": message_id,
        "ordinal": 0,
        "complete": True,
        "size": len(content),
        "sha256": digest,
        "segment_prefix": prefix,
        "kek_id": None,
        "wrapped_key": segments.wrap_part_key(dek, message_id, attachment_id, key),
        "meta_nonce": meta_nonce,
        "meta": meta,
        "created_at": now,
    }
    segs: list[dict[str, object]] = [
        {"attachment_id": attachment_id, "segment_no": n, "ciphertext": c}
        for n, c in [*sealed, last]
    ]
    return row, segs


def open_attachment_row(row: Any, segment_rows: list[Any], dek: bytes) -> bytes:
    """Decrypt an attachment from its rows with the message's data key (bulk checks)."""
    key = segments.unwrap_part_key(dek, row.message_id, row.attachment_id, row.wrapped_key)
    ordered = sorted((s.segment_no, s.ciphertext) for s in segment_rows)
    return b"".join(segments.open_stream(key, row.segment_prefix, row.attachment_id, ordered))

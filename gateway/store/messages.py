"""Messages received and sent, kept byte-exact as signed, encrypted at rest.

Each message gets its own data key (``gateway.crypto.at_rest``). The signed document is sealed
under it, and so are its attachments' part keys (``gateway.store.attachments``), with
associated data naming the message id and the part; the data key is stored in
``message_keys``, wrapped under the retention period key of the week it was stored in
(``gateway.store.period_keys``; itself wrapped by the KEK). Only header facts that are not
personal data (ids, agreement, kind, body ids, dates, the confidentiality flag, the SHA-256 of
the signed document for tombstones) stay in clear.

Receiving is idempotent by message id across processes: the insert is
``INSERT … ON CONFLICT (message_id) DO NOTHING``; a second copy of the same id reports
:attr:`ReceiveOutcome.DUPLICATE` (same bytes) or :attr:`ReceiveOutcome.CONFLICT` (other bytes
under a reused id: a replay or a forgery, never stored). A purged message's tombstone keeps
its id and digest, so a replay after the purge is still recognised.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Transaction

from gateway.crypto import at_rest
from gateway.crypto.keys.kek import KekRing
from gateway.store import period_keys
from gateway.store.dialect import insert_if_absent
from gateway.store.tables import conversations, message_keys, messages, tombstones
from gateway.store.tables import period_keys as period_key_rows


class Direction(StrEnum):
    IN = "in"
    """Received from a peer."""
    OUT = "out"
    """Sent by this node."""


class ReceiveOutcome(StrEnum):
    INSERTED = "inserted"
    DUPLICATE = "duplicate"
    """The same message id with the same signed bytes is already stored: acknowledge again."""
    CONFLICT = "conflict"
    """The message id is stored with *different* bytes: refuse the newcomer."""


class MessageGone(LookupError):
    """The message is not stored (never received, or purged; see the tombstones)."""


class KeyShredded(LookupError):
    """The message's data key was destroyed: its content can never be read again."""


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """The header facts of a signed envelope that the store keeps in clear (no personal data)."""

    message_id: str
    conversation_id: str
    agreement: str
    kind: str
    sender: str
    """Body id of the sender (``RU-FSSP``)."""
    recipient: str
    created: datetime
    """``<env:Created>``, aware."""
    confidential: bool
    in_reply_to: str | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    header: MessageHeader
    direction: Direction
    stored_at: datetime
    document_sha256: bytes
    """SHA-256 of the signed document as stored (and as it will appear in a tombstone)."""
    document_size: int


# Hot-path statements, built once (building one per call cost more than running it).
_INSERT_KEY = message_keys.insert()
_DELETE_MESSAGE = messages.delete().where(messages.c.message_id == sa.bindparam("message_id"))
_TOMBSTONED = sa.select(tombstones.c.message_id).where(
    tombstones.c.message_id == sa.bindparam("message_id")
)
_DIGESTS = tuple(
    sa.select(table.c.document_sha256).where(table.c.message_id == sa.bindparam("message_id"))
    for table in (messages, tombstones)
)
_DATA_KEY = period_keys.data_key_columns().where(
    message_keys.c.message_id == sa.bindparam("message_id")
)
# The payload and its data key (joined to its period key) in one statement: a message's row
# without a key row is a shredded one (``key_message_id`` NULL).
_PAYLOAD_COLUMNS = (
    messages.c.payload_nonce,
    messages.c.payload,
    message_keys.c.message_id.label("key_message_id"),
    message_keys.c.kek_id,
    message_keys.c.wrapped_dek,
    message_keys.c.period_key_id,
    period_key_rows.c.kek_id.label("pk_kek_id"),
    period_key_rows.c.wrapped_key.label("pk_wrapped_key"),
)
_WITH_KEY = messages.outerjoin(
    message_keys, message_keys.c.message_id == messages.c.message_id
).outerjoin(period_key_rows, period_key_rows.c.key_id == message_keys.c.period_key_id)
_BY_ID = messages.c.message_id == sa.bindparam("message_id")
_PAYLOAD_AND_KEY = sa.select(*_PAYLOAD_COLUMNS).select_from(_WITH_KEY).where(_BY_ID)
# The same and both confidentiality flags, the message's and its conversation's: what sending
# needs, in one statement.
_PAYLOAD_KEY_AND_FLAGS = (
    sa.select(
        *_PAYLOAD_COLUMNS,
        messages.c.confidential,
        conversations.c.confidential.label("of_conversation"),
    )
    .select_from(
        _WITH_KEY.outerjoin(
            conversations, conversations.c.conversation_id == messages.c.conversation_id
        )
    )
    .where(_BY_ID)
)

# The data keys of messages stored in the connection's current innermost transaction (or
# savepoint), so that sealing a message's verification report right after storing it needs
# neither a SELECT nor an unwrap. One entry per connection, valid only while the same
# transaction object is the innermost one: a key never outlives the transaction (or
# savepoint) that made it; once a savepoint ends, the key is read from the table again.
_KeysOfTransaction = tuple[weakref.ref[Transaction], dict[str, bytes]]
_NEW_KEYS: weakref.WeakKeyDictionary[Connection, _KeysOfTransaction] = weakref.WeakKeyDictionary()


def _innermost(conn: Connection) -> Transaction | None:
    return conn.get_nested_transaction() or conn.get_transaction()


def _remember_key(conn: Connection, message_id: str, dek: bytes) -> None:
    trans = _innermost(conn)
    if trans is None:
        return
    entry = _NEW_KEYS.get(conn)
    if entry is None or entry[0]() is not trans:
        entry = (weakref.ref(trans), {})
        _NEW_KEYS[conn] = entry
    entry[1][message_id] = dek


def _remembered_key(conn: Connection, message_id: str) -> bytes | None:
    entry = _NEW_KEYS.get(conn)
    if entry is None:
        return None
    trans = entry[0]()
    if trans is None or not trans.is_active:
        # Its transaction is over: drop the keys now rather than when the connection goes.
        del _NEW_KEYS[conn]
        return None
    if trans is not _innermost(conn):
        return None
    return entry[1].get(message_id)


def forget_data_keys(conn: Connection, message_ids: Iterable[str]) -> None:
    """Drop the remembered data keys of these messages: call it where their ``message_keys``
    rows are deleted, so that :func:`data_key` reports them shredded in this transaction too."""
    entry = _NEW_KEYS.get(conn)
    if entry is not None:
        for message_id in message_ids:
            entry[1].pop(message_id, None)


def _insert(
    conn: Connection,
    header: MessageHeader,
    direction: Direction,
    document: bytes,
    keys: KekRing,
    now: datetime,
) -> bool:
    dek = at_rest.new_data_key()
    nonce, ciphertext = at_rest.encrypt_part(dek, document, at_rest.payload_aad(header.message_id))
    row = {
        "message_id": header.message_id,
        "conversation_id": header.conversation_id,
        "in_reply_to": header.in_reply_to,
        "direction": direction.value,
        "agreement": header.agreement,
        "kind": header.kind,
        "sender": header.sender,
        "recipient": header.recipient,
        "created": header.created,
        "stored_at": now,
        "confidential": header.confidential,
        "document_sha256": hashlib.sha256(document).digest(),
        "document_size": len(document),
        "payload_nonce": nonce,
        "payload": ciphertext,
    }
    if not insert_if_absent(conn, messages, ["message_id"], row):
        return False
    if direction is Direction.IN and _tombstoned(conn, header.message_id):
        # Purged long ago and now replayed: it was processed once, it must not be again.
        # Checked after the insert so that a purge committing meanwhile is seen too.
        conn.execute(_DELETE_MESSAGE, {"message_id": header.message_id})
        return False
    conn.execute(
        _INSERT_KEY,
        {"message_id": header.message_id, **period_keys.wrap_message_key(conn, dek, keys, now)},
    )
    _remember_key(conn, header.message_id, dek)
    return True


def _tombstoned(conn: Connection, message_id: str) -> bool:
    return conn.execute(_TOMBSTONED, {"message_id": message_id}).first() is not None


def _stored_digest(conn: Connection, message_id: str) -> bytes:
    for stmt in _DIGESTS:
        digest = conn.execute(stmt, {"message_id": message_id}).scalar_one_or_none()
        if digest is not None:
            return digest
    raise MessageGone(f"message {message_id} is neither stored nor tombstoned")


def insert_received(
    conn: Connection,
    header: MessageHeader,
    document: bytes,
    keys: KekRing,
    now: datetime,
) -> ReceiveOutcome:
    """Store a verified, received signed document exactly as its bytes came, once per id.

    The conversation row must exist (``conversations.open_conversation`` in the same
    transaction). Safe to call from several processes at once for the same id. A message
    purged earlier (it has a tombstone) counts as stored: a replay is a duplicate, not new.
    """
    if _insert(conn, header, Direction.IN, document, keys, now):
        return ReceiveOutcome.INSERTED
    if _stored_digest(conn, header.message_id) == hashlib.sha256(document).digest():
        return ReceiveOutcome.DUPLICATE
    return ReceiveOutcome.CONFLICT


class MessageAlreadyStored(ValueError):
    """A document this node signed carries a message id already stored (a resubmission)."""


def insert_sent(
    conn: Connection,
    header: MessageHeader,
    document: bytes,
    keys: KekRing,
    now: datetime,
) -> None:
    """Store a document this node signed, before it is queued in the outbox (same transaction).

    Raises :class:`MessageAlreadyStored` if the message id is already stored (a case system
    submitting the same document again with its own MessageId).
    """
    if not _insert(conn, header, Direction.OUT, document, keys, now):
        raise MessageAlreadyStored(f"message id {header.message_id} is already stored")


def replace_sent_document(
    conn: Connection, message_id: str, document: bytes, keys: KekRing
) -> bytes:
    """Put ``document`` in place of the stored document of a message this node sent, under
    the message's own data key; return the SHA-256 of the document it replaces. Only for a
    document signed again before it left (its signer's generation was revoked): header and
    body are unchanged, so every clear fact of the row stays true."""
    previous = conn.execute(
        sa.select(messages.c.document_sha256).where(
            messages.c.message_id == message_id, messages.c.direction == Direction.OUT.value
        )
    ).scalar_one_or_none()
    if previous is None:
        raise MessageGone(f"message {message_id} is not stored as sent by this node")
    nonce, ciphertext = at_rest.encrypt_part(
        data_key(conn, message_id, keys), document, at_rest.payload_aad(message_id)
    )
    conn.execute(
        messages.update()
        .where(messages.c.message_id == message_id)
        .values(
            payload_nonce=nonce,
            payload=ciphertext,
            document_sha256=hashlib.sha256(document).digest(),
            document_size=len(document),
        )
    )
    return bytes(previous)


def _header(row: sa.Row) -> MessageHeader:
    return MessageHeader(
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        agreement=row.agreement,
        kind=row.kind,
        sender=row.sender,
        recipient=row.recipient,
        created=row.created,
        confidential=row.confidential,
        in_reply_to=row.in_reply_to,
    )


_META_COLUMNS = [c for c in messages.c if c.name not in {"payload", "payload_nonce", "id"}]
_GET = sa.select(*_META_COLUMNS).where(messages.c.message_id == sa.bindparam("message_id"))


def _stored(row: sa.Row) -> StoredMessage:
    return StoredMessage(
        header=_header(row),
        direction=Direction(row.direction),
        stored_at=row.stored_at,
        document_sha256=row.document_sha256,
        document_size=row.document_size,
    )


def get(conn: Connection, message_id: str) -> StoredMessage | None:
    """The message's clear facts (no decryption), or None."""
    row = conn.execute(_GET, {"message_id": message_id}).first()
    return _stored(row) if row else None


def list_for_conversation(conn: Connection, conversation_id: str) -> list[StoredMessage]:
    """All stored messages of a conversation, oldest first."""
    rows = conn.execute(
        sa.select(*_META_COLUMNS)
        .where(messages.c.conversation_id == conversation_id)
        .order_by(messages.c.created, messages.c.id)
    )
    return [_stored(r) for r in rows]


def data_key(conn: Connection, message_id: str, keys: KekRing) -> bytes:
    """The message's data key, unwrapped (hazardous: for sealing and opening its other parts,
    such as its verification reports; keep it no longer than that). Raises
    :class:`KeyShredded` once the message was purged. A message stored in the same
    transaction (or savepoint) reuses the key it was sealed with: no query, no unwrap."""
    remembered = _remembered_key(conn, message_id)
    if remembered is not None:
        return remembered
    return _unwrapped(conn.execute(_DATA_KEY, {"message_id": message_id}).first(), message_id, keys)


def _unwrapped(row: sa.Row | None, message_id: str, keys: KekRing) -> bytes:
    """The data key of a row read with the ``message_keys`` and period key columns."""
    if row is None:
        raise KeyShredded(f"message {message_id}: its data key was destroyed (purged)")
    try:
        return period_keys.data_key_of(row, keys)
    except period_keys.PeriodKeyDestroyed:
        raise KeyShredded(
            f"message {message_id}: its retention period key was destroyed (purged)"
        ) from None


def read_document(conn: Connection, message_id: str, keys: KekRing) -> bytes:
    """The signed document, byte for byte as stored. Raises :class:`MessageGone`,
    :class:`KeyShredded`, or ``at_rest.DecryptionFailed`` if a stored byte was altered."""
    return _decrypted(conn, _PAYLOAD_AND_KEY, message_id, keys)[0]


def read_for_sending(conn: Connection, message_id: str, keys: KekRing) -> tuple[bytes, bool]:
    """The signed document as :func:`read_document` reads it, and whether it is confidential:
    its own flag or its conversation's (CIS Art. 16; SC Art. 8.1)."""
    document, row = _decrypted(conn, _PAYLOAD_KEY_AND_FLAGS, message_id, keys)
    return document, bool(row.confidential or row.of_conversation)


def _decrypted(
    conn: Connection, statement: sa.Select[Any], message_id: str, keys: KekRing
) -> tuple[bytes, sa.Row[Any]]:
    row = conn.execute(statement, {"message_id": message_id}).first()
    if row is None:
        raise MessageGone(f"message {message_id} is not stored (never received, or purged)")
    dek = _remembered_key(conn, message_id) or _unwrapped(
        row if row.key_message_id is not None else None, message_id, keys
    )
    document = at_rest.decrypt_part(
        dek, row.payload_nonce, row.payload, at_rest.payload_aad(message_id)
    )
    return document, row

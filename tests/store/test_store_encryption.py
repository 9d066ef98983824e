"""Confidentiality at rest: nothing personal in any column or in the database file; altered or
swapped ciphertexts are refused and change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.crypto.at_rest import DecryptionFailed
from gateway.crypto.keys.kek import KekRing
from gateway.store import Store, keys, messages
from gateway.store import attachments as attachment_store
from gateway.store.attachments import AttachmentMeta
from gateway.store.tables import attachments, message_keys, metadata
from gateway.store.tables import messages as messages_table
from tests.store import factory
from tests.store.conftest import NOW


def _needles() -> list[bytes]:
    found = []
    for value in factory.PERSONAL_VALUES:
        found += [
            value.encode("utf-8"),
            value.encode("utf-16-le"),
            value.encode("cp1251", "ignore"),
        ]
    return [n for n in found if len(n) >= 6]


def _store_two(store: Store, ring: KekRing) -> tuple[str, str]:
    cid = factory.new_id()
    a, b = factory.header(cid, NOW), factory.header(cid, NOW)
    with store.transaction() as conn:
        factory.open_conversation(conn, NOW, cid)
        for h in (a, b):
            doc = factory.signed_document(h.message_id)
            messages.insert_received(conn, h, doc, ring, NOW)
            factory.add_attachment(
                conn,
                h.message_id,
                factory.DEBTOR_NAME.encode() * 5000,
                ring,
                NOW,
                AttachmentMeta(f"{factory.DEBTOR_NAME}.txt", "text/plain"),
            )
    return a.message_id, b.message_id


def test_no_personal_value_in_any_column(store: Store, ring: KekRing) -> None:
    _store_two(store, ring)
    dump = bytearray()
    with store.read() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for value in row:
                    dump += value if isinstance(value, bytes) else str(value).encode()
                    dump += b"\x00"
    assert len(dump) > 2000  # the dump really holds the rows
    for needle in _needles():
        assert needle not in dump, needle


def test_sqlite_file_holds_no_personal_value(
    tmp_path: Path, ring: KekRing, sqlite_template
) -> None:
    import shutil

    from gateway.store import open_store

    path = tmp_path / "gateway.db"
    shutil.copyfile(sqlite_template, path)
    store = open_store(f"sqlite:///{path}")
    _store_two(store, ring)
    # Read the files while the store is open (WAL in use) and again after it is closed.
    while_open = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    store.dispose()
    closed = path.read_bytes()
    assert len(closed) > 10_000
    for needle in _needles():
        assert needle not in while_open and needle not in closed, needle


def _column(store: Store, table: sa.Table, column: str, where) -> bytes:
    with store.read() as conn:
        return conn.execute(sa.select(table.c[column]).where(where)).scalar_one()


def _set(store: Store, table: sa.Table, where, **values) -> None:
    with store.transaction() as conn:
        conn.execute(table.update().where(where).values(**values))


def test_tampered_ciphertext_is_refused_and_nothing_changes(store: Store, ring: KekRing) -> None:
    m1, _ = _store_two(store, ring)
    where = messages_table.c.message_id == m1
    good = _column(store, messages_table, "payload", where)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x20
    _set(store, messages_table, where, payload=bytes(bad))
    with store.read() as conn, pytest.raises(DecryptionFailed, match="failed authentication"):
        messages.read_document(conn, m1, ring)
    # Refusing changed nothing: the row is as the attacker left it, the key is still there.
    assert _column(store, messages_table, "payload", where) == bytes(bad)
    assert _column(store, message_keys, "wrapped_dek", message_keys.c.message_id == m1)
    _set(store, messages_table, where, payload=good)
    with store.read() as conn:
        assert messages.read_document(conn, m1, ring) == factory.signed_document(m1)


def test_swapped_rows_are_refused(store: Store, ring: KekRing) -> None:
    """Moving one message's ciphertext (with its nonce and even its data key) onto another
    message's row fails: the associated data names the message id."""
    m1, m2 = _store_two(store, ring)
    w1, w2 = messages_table.c.message_id == m1, messages_table.c.message_id == m2
    k1, k2 = message_keys.c.message_id == m1, message_keys.c.message_id == m2
    payload1 = _column(store, messages_table, "payload", w1)
    nonce1 = _column(store, messages_table, "payload_nonce", w1)
    dek1 = _column(store, message_keys, "wrapped_dek", k1)
    _set(store, messages_table, w2, payload=payload1, payload_nonce=nonce1)
    with store.read() as conn, pytest.raises(DecryptionFailed):
        messages.read_document(conn, m2, ring)  # ciphertext of m1 under m2's key
    _set(store, message_keys, k2, wrapped_dek=dek1)
    with store.read() as conn, pytest.raises(DecryptionFailed):
        messages.read_document(conn, m2, ring)  # m1's ciphertext and key, presented as m2
    # Attachments are bound to their message too: m1's wrapped part key moved onto m2's
    # attachment does not open under m2's data key.
    a1, a2 = attachments.c.message_id == m1, attachments.c.message_id == m2
    with store.read() as conn:
        assert messages.read_document(conn, m1, ring) == factory.signed_document(m1)
    _set(store, attachments, a2, wrapped_key=_column(store, attachments, "wrapped_key", a1))
    with store.read() as conn, pytest.raises(DecryptionFailed):
        attachment_store.for_message(conn, m2, ring)


def test_shredded_key_makes_content_unreadable(store: Store, ring: KekRing) -> None:
    m1, m2 = _store_two(store, ring)
    with store.transaction() as conn:
        conn.execute(message_keys.delete().where(message_keys.c.message_id == m1))
    with store.read() as conn:
        with pytest.raises(messages.KeyShredded):
            messages.read_document(conn, m1, ring)
        assert messages.read_document(conn, m2, ring) == factory.signed_document(m2)


def test_search_secret_is_stable_and_wrapped(store: Store, ring: KekRing) -> None:
    with store.transaction() as conn:
        first = keys.search_secret(conn, ring, NOW)
    with store.transaction() as conn:
        again = keys.search_secret(conn, ring, NOW)
        stored = conn.execute(sa.text("SELECT wrapped_key FROM secret_keys")).scalar_one()
    assert first == again and len(first) == 32
    assert first not in bytes(stored)

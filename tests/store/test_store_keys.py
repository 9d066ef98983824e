"""KEK rotation: re-wrap in resumable batches; the old KEK is needed until it is done."""

from __future__ import annotations

import secrets

import pytest

from gateway.crypto.at_rest import UnknownKek
from gateway.crypto.keys.kek import FileKek, KekRing
from gateway.store import Store, audit, keys, messages
from gateway.store.tables import message_keys
from tests.store import factory
from tests.store.conftest import NOW


def _as_before_0012(conn, message_id: str, dek: bytes, kek: FileKek) -> None:
    """Give a message the shape of a row written before migration 0012: its data key wrapped
    directly by the KEK, no period key."""
    conn.execute(
        message_keys.update()
        .where(message_keys.c.message_id == message_id)
        .values(kek_id=kek.key_id, wrapped_dek=kek.wrap(dek), period_key_id=None)
    )


def test_rotation_rewraps_period_keys_and_moves_old_rows_in_resumable_batches(
    store: Store,
) -> None:
    old = FileKek("kek-old", secrets.token_bytes(32))
    new = FileKek("kek-new", secrets.token_bytes(32))
    cid = factory.new_id()
    ids = []
    with store.transaction() as conn:
        factory.open_conversation(conn, NOW, cid)
        for _ in range(25):
            h = factory.header(cid, NOW)
            messages.insert_received(
                conn, h, factory.signed_document(h.message_id), KekRing.single(old), NOW
            )
            ids.append(h.message_id)
        index_key = keys.search_secret(conn, KekRing.single(old), NOW)
        # The 25 data keys are under one period key (this week's), which the KEK wraps.
        assert keys.count_by_kek(conn) == {}
        assert keys.kek_usage(conn) == {"kek-old": 2}  # the period key, the debtor index key
    with store.transaction() as conn:
        for mid in ids[:10]:
            dek = messages.data_key(conn, mid, KekRing.single(old))
            _as_before_0012(conn, mid, dek, old)
        assert keys.count_by_kek(conn) == {"kek-old": 10}
    ring = KekRing([old, new], active_id="kek-new")
    # Only the new KEK loaded: re-wrapping cannot read the old rows.
    with pytest.raises(UnknownKek, match="kek-old"), store.transaction() as conn:
        keys.rewrap_batch(conn, KekRing.single(new), NOW, limit=4)
    done = []
    with store.transaction() as conn:
        done.append(keys.rewrap_batch(conn, ring, NOW, limit=4))
    # Interrupted here (a crash, a restart): the next run carries on where it stopped.
    with store.read() as conn:
        assert keys.count_by_kek(conn) == {"kek-old": 6}
        assert keys.kek_usage(conn) == {"kek-old": 6, "kek-new": 2}
    while True:
        with store.transaction() as conn:
            n = keys.rewrap_batch(conn, ring, NOW, limit=4)
        if n == 0:
            break
        done.append(n)
    assert sum(done) == 1 + 10 + 1  # the period key, the old rows, the debtor index key
    with store.read() as conn:
        assert keys.count_by_kek(conn) == {}
        assert keys.kek_usage(conn) == {"kek-new": 2}
        # Now the old KEK can go: everything opens with the new one alone.
        only_new = KekRing.single(new)
        for mid in ids:
            assert messages.read_document(conn, mid, only_new) == factory.signed_document(mid)
        assert keys.search_secret(conn, only_new, NOW) == index_key
        assert [e.kind for e in audit.events(conn)] == ["key.rewrapped"] * len(done)


def test_what_a_kek_still_wraps_or_sealed_is_counted_for_destroy_kek(store: Store) -> None:
    """``destroy-kek`` names what would die with the KEK: period keys and the like block it,
    audit purposes sealed under it are warned about (they become unreadable)."""
    from gateway.store.read_purposes import purpose_details

    old = FileKek("kek-old", secrets.token_bytes(32))
    new = FileKek("kek-new", secrets.token_bytes(32))
    cid = factory.new_id()
    with store.transaction() as conn:
        factory.open_conversation(conn, NOW, cid)
        h = factory.header(cid, NOW)
        messages.insert_received(
            conn, h, factory.signed_document(h.message_id), KekRing.single(old), NOW
        )
        subjects = {"message_id": h.message_id}
        audit.append(
            conn,
            now=NOW,
            actor="reader1",
            kind="document.read",
            subjects=subjects,
            details=purpose_details(
                "case 12/2026",
                KekRing.single(old),
                kind="document.read",
                actor="reader1",
                subjects=subjects,
            ),
        )
    with store.read() as conn:  # audit events are written when their transaction commits
        under = keys.under_kek(conn, "kek-old")
    assert (under.period_keys, under.data_keys, under.secrets) == (1, 0, 0)
    assert under.audit_purposes == 1 and under.wrapped == 1
    assert under.describe().startswith("1 retention period key(s), 0 message data key(s)")
    with store.transaction() as conn:
        keys.rewrap_batch(conn, KekRing([old, new], "kek-new"), NOW)
        after = keys.under_kek(conn, "kek-old")
    assert after.wrapped == 0 and after.audit_purposes == 1

"""KEK rotation: re-wrap in resumable batches; the old KEK is needed until it is done."""

from __future__ import annotations

import secrets

import pytest

from gateway.crypto.at_rest import FileKek, KekRing, UnknownKek
from gateway.store import Store, audit, keys, messages
from tests.store import factory
from tests.store.conftest import NOW


def test_rotation_rewraps_in_resumable_batches(store: Store) -> None:
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
        assert keys.count_by_kek(conn) == {"kek-old": 25}
    ring = KekRing([old, new], active_id="kek-new")
    # Only the new KEK loaded: re-wrapping cannot read the old rows.
    with pytest.raises(UnknownKek, match="kek-old"), store.transaction() as conn:
        keys.rewrap_batch(conn, KekRing.single(new), NOW, limit=10)
    done = []
    with store.transaction() as conn:
        done.append(keys.rewrap_batch(conn, ring, NOW, limit=10))
    # Interrupted here (a crash, a restart): the next run carries on where it stopped.
    with store.read() as conn:
        assert keys.count_by_kek(conn) == {"kek-old": 15, "kek-new": 10}
    while True:
        with store.transaction() as conn:
            n = keys.rewrap_batch(conn, ring, NOW, limit=10)
        if n == 0:
            break
        done.append(n)
    assert sum(done) == 25 + 1  # the data keys and the debtor index key
    with store.read() as conn:
        assert keys.count_by_kek(conn) == {"kek-new": 25}
        # Now the old KEK can go: everything opens with the new one alone.
        only_new = KekRing.single(new)
        for mid in ids:
            assert messages.read_document(conn, mid, only_new) == factory.signed_document(mid)
        assert keys.search_secret(conn, only_new, NOW) == index_key
        assert [e.kind for e in audit.events(conn)] == ["key.rewrapped"] * len(done)

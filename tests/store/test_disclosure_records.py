"""The record of disclosures (gateway.store.disclosures) on SQLite and PostgreSQL: recipient and
purpose sealed under the KEK-wrapped disclosure key, findable only by keyed tag."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from gateway.crypto.at_rest import UnknownKek
from gateway.crypto.keys.kek import FileKek, KekRing
from gateway.store import Store, disclosures, keys
from gateway.store.tables import disclosures as table
from gateway.store.tables import secret_keys

NOW = datetime(2026, 12, 22, 7, 0, tzinfo=UTC)
TRUSTEE = "Арбитражный управляющий Образцова Мария Сергеевна"
PURPOSE = "Включение сведений в конкурсную массу по делу № А40-000001/2026"


def _record(store: Store, ring: KekRing, recipient: str = TRUSTEE, **over: object) -> str:
    disclosure_id = str(uuid.uuid4())
    values: dict[str, object] = {
        "disclosure_id": disclosure_id,
        "message_id": "67cb4354-9eee-5402-a4c2-29c38fb53605",
        "conversation_id": "1edac772-394a-5b56-b942-42bd22845d32",
        "agreement": "cis-enforcement",
        "category": "third-party",
        "article": "CIS Art. 9.2",
        "consent_request_id": "5c27ac86-0f3f-5636-b097-d7f8e39b573d",
        "actor": "cli:operator",
        "recipient": recipient,
        "purpose": PURPOSE,
        "document_sha256": hashlib.sha256(b"signed").digest(),
        "now": NOW,
        **over,
    }
    with store.transaction() as conn:
        disclosures.record(conn, ring, **values)  # type: ignore[arg-type]
    return disclosure_id


def test_recorded_disclosure_keeps_no_personal_data_in_clear(store: Store, ring: KekRing) -> None:
    disclosure_id = _record(store, ring)
    with store.read() as conn:
        (listed,) = disclosures.list_for_message(conn, "67cb4354-9eee-5402-a4c2-29c38fb53605")
        row = conn.execute(sa.select(table)).one()
        opened = disclosures.open_sealed(conn, ring, disclosure_id, NOW)
    assert (listed.disclosure_id, listed.category, listed.article) == (
        disclosure_id,
        "third-party",
        "CIS Art. 9.2",
    )
    assert listed.disclosed_at == NOW
    clear = repr(tuple(row)).encode("utf-8") + b"".join(v for v in row if isinstance(v, bytes))
    for secret in (TRUSTEE, "Образцова", PURPOSE, "А40-000001"):
        assert secret.encode("utf-8") not in clear
        assert secret.encode("cp1251") not in clear
        assert secret not in repr(tuple(row))
    assert (opened.recipient, opened.purpose) == (TRUSTEE, PURPOSE)


def test_found_by_normalised_recipient_name_only(store: Store, ring: KekRing) -> None:
    first = _record(store, ring)
    _record(store, ring, recipient="ООО «Коллекторское агентство»", category="creditor")
    with store.transaction() as conn:
        found = disclosures.find_by_recipient(
            conn, ring, "арбитражный управляющий ОБРАЗЦОВА  Мария Сергеевна", NOW
        )
        none = disclosures.find_by_recipient(conn, ring, "Образцова Мария", NOW)
    assert [r.disclosure_id for r in found] == [first]
    assert none == []


def test_a_sealed_value_moved_to_another_row_fails_authentication(
    store: Store, ring: KekRing
) -> None:
    first = _record(store, ring)
    second = _record(store, ring, recipient="Другой получатель")
    with store.transaction() as conn:
        source = conn.execute(
            sa.select(table.c.sealed_nonce, table.c.sealed).where(table.c.disclosure_id == second)
        ).one()
        conn.execute(
            table.update()
            .where(table.c.disclosure_id == first)
            .values(sealed_nonce=source.sealed_nonce, sealed=source.sealed)
        )
    with store.read() as conn, pytest.raises(disclosures.DisclosureStoreError, match="altered"):
        disclosures.open_sealed(conn, ring, first, NOW)


def test_kek_rotation_rewraps_the_disclosure_key(store: Store, ring: KekRing) -> None:
    disclosure_id = _record(store, ring)
    new = FileKek("kek-test-2", secrets.token_bytes(32))
    both = KekRing([ring.active, new], new.key_id)
    with store.transaction() as conn:
        assert keys.rewrap_batch(conn, both, NOW) >= 1
        kek_id = conn.execute(
            sa.select(secret_keys.c.kek_id).where(secret_keys.c.name == disclosures.DISCLOSURE_KEY)
        ).scalar_one()
    assert kek_id == new.key_id
    with store.read() as conn:
        opened = disclosures.open_sealed(conn, KekRing.single(new), disclosure_id, NOW)
        assert opened.recipient == TRUSTEE
        with pytest.raises(UnknownKek):
            disclosures.open_sealed(conn, ring, disclosure_id, NOW)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("category", "journalist", "category"),
        ("recipient", "   ", "recipient"),
        ("purpose", "", "purpose"),
        ("purpose", "x" * 501, "purpose"),
    ],
)
def test_bad_records_are_refused(
    store: Store, ring: KekRing, field: str, value: str, message: str
) -> None:
    with pytest.raises(disclosures.DisclosureStoreError, match=message):
        _record(store, ring, **{field: value})
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0

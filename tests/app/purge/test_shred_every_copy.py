"""Destruction that reaches every copy (issue #20, item 2): a copy of the store taken right
after a purge — the SQLite file with its WAL, or a ``pg_dump`` of the PostgreSQL schema —
opens no purged message with every key the node still holds (its KEK ring and every period key
left in the copy), while the same procedure on a copy taken *before* the purge opens it."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.app.purge import run_purge
from gateway.crypto import at_rest, segments
from gateway.crypto.keys.kek import FileKek, KekRing, TokenKek, generate_token_kek
from gateway.crypto.keys.keystore import SigningKey
from gateway.crypto.keys.pkcs11 import TokenSession
from gateway.store import Store, messages, period_keys
from gateway.store import purge as purge_store
from gateway.store.tables import attachments, message_keys
from gateway.store.tables import messages as messages_table
from gateway.store.tables import period_keys as period_keys_table
from tests.app.purge.world import T0, add_conversation, after, document, one_policy
from tests.tooling import softhsm_token

RUN_AT = after(T0, days=370)
"""Week A (T0) is expired under "1 year after received"; week B (T0 + 30 days) is not."""


@dataclass(frozen=True)
class Captured:
    """What an attacker would want of a purged message: its ciphertexts, as stored."""

    message_id: str
    nonce: bytes
    ciphertext: bytes
    attachment_id: str
    wrapped_part_key: bytes
    """The attachment's part key, wrapped by the message's data key (its segments' key)."""
    wrapped_dek: bytes
    period_key_id: str
    wrapped_period_key: bytes


def _capture(store: Store, message_id: str) -> Captured:
    with store.read() as conn:
        m = conn.execute(
            sa.select(messages_table.c.payload_nonce, messages_table.c.payload).where(
                messages_table.c.message_id == message_id
            )
        ).one()
        a = conn.execute(
            sa.select(attachments.c.attachment_id, attachments.c.wrapped_key).where(
                attachments.c.message_id == message_id
            )
        ).one()
        k = conn.execute(
            sa.select(message_keys.c.wrapped_dek, message_keys.c.period_key_id).where(
                message_keys.c.message_id == message_id
            )
        ).one()
        period_key = conn.execute(
            sa.select(period_keys_table.c.wrapped_key).where(
                period_keys_table.c.key_id == k.period_key_id
            )
        ).scalar_one_or_none()  # none in the shape before 0012: the data key under the KEK
    return Captured(
        message_id,
        m.payload_nonce,
        m.payload,
        a.attachment_id,
        a.wrapped_key,
        k.wrapped_dek,
        k.period_key_id or "",
        period_key or b"",
    )


# --- reading a copy with every key the node holds ----------------------------------------------


def _wrapped_candidates(blobs: list[bytes]) -> list[bytes]:
    """Every value of a wrapped key's size: period keys, data keys, secrets alike."""
    return [b for b in blobs if len(b) == at_rest.WRAPPED_KEY_BYTES]


def _unwrap_all(wrapped: list[bytes], keys: list[FileKek] | KekRing) -> list[bytes]:
    found = []
    openers = list(keys) if isinstance(keys, list) else [keys.get(k) for k in keys.key_ids]
    for blob in wrapped:
        for opener in openers:
            try:
                found.append(opener.unwrap(blob))
            except at_rest.DecryptionFailed:
                continue
    return found


def _readable(blobs: list[bytes], ring: KekRing, victims: list[Captured]) -> set[str]:
    """The purged messages whose document or attachment opens with a data key recovered from
    ``blobs`` using the KEK ring, and every key the KEK ring opens among them (period keys)."""
    wrapped = _wrapped_candidates(blobs)
    under_kek = _unwrap_all(wrapped, ring)  # period keys (and any data key still under the KEK)
    period = [FileKek("pk-candidate", k) for k in under_kek]
    deks = under_kek + _unwrap_all(wrapped, period)
    opened = set()
    for victim in victims:
        for dek in deks:
            try:
                at_rest.decrypt_part(
                    dek, victim.nonce, victim.ciphertext, at_rest.payload_aad(victim.message_id)
                )
                opened.add(victim.message_id)
            except at_rest.DecryptionFailed:
                pass
            try:  # the attachment's segments open with its part key
                segments.unwrap_part_key(
                    dek, victim.message_id, victim.attachment_id, victim.wrapped_part_key
                )
                opened.add(victim.message_id)
            except at_rest.DecryptionFailed:
                pass
    return opened


def _sqlite_copy(store: Store, into: Path) -> tuple[list[bytes], bytes]:
    """Copy ``gateway.db`` with its ``-wal`` and ``-shm`` as they are (the node keeps running);
    return the blobs of every row of the copy and the raw bytes of the copied files."""
    source = Path(store.engine.url.database or "")
    into.mkdir()
    raw = b""
    for suffix in ("", "-wal", "-shm"):
        path = source.with_name(source.name + suffix)
        if path.exists():
            shutil.copyfile(path, into / path.name)
            raw += (into / path.name).read_bytes()
    copy = sqlite3.connect(into / source.name)
    blobs: list[bytes] = []
    for (table,) in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        for row in copy.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from the copy
            blobs += [v for v in row if isinstance(v, bytes)]
    copy.close()
    return blobs, raw


_BYTEA = re.compile(rb"\\\\x([0-9a-f]+)")


def _pg_dump(store: Store) -> tuple[list[bytes], bytes]:
    """``pg_dump`` (plain SQL) of the test schema; every bytea value in it, and the dump."""
    url = store.engine.url
    schema = re.search(r"search_path=(\w+)", str(url.query.get("options", ""))).group(1)
    dump = subprocess.run(
        [
            "pg_dump",
            "--no-owner",
            f"--host={url.host}",
            f"--port={url.port or 5432}",
            f"--username={url.username}",
            f"--schema={schema}",
            url.database or "test",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    # COPY data writes bytea as \\x<hex> (the backslash itself escaped).
    return [bytes.fromhex(h.decode()) for h in _BYTEA.findall(dump)], dump


def _copy(store: Store, tmp_path: Path, name: str) -> tuple[list[bytes], bytes]:
    if store.dialect == "sqlite":
        return _sqlite_copy(store, tmp_path / name)
    return _pg_dump(store)


# --- the test ----------------------------------------------------------------------------------


def test_a_copy_taken_right_after_a_purge_opens_no_purged_message(
    store: Store, ring: KekRing, seal: SigningKey, tmp_path: Path
) -> None:
    _purge_and_copy(store, ring, seal, tmp_path)


def test_with_the_kek_on_a_softhsm_token(store: Store, seal: SigningKey, tmp_path: Path) -> None:
    """The same with the KEK on a PKCS#11 token: the period keys are wrapped on the token, and
    the token's KEK opens nothing purged from a copy either."""
    module, label, pin = softhsm_token("gw-spare-1")
    token = TokenSession.open(Path(module), label, pin)
    kek = TokenKek(token, generate_token_kek(token, f"kek-shred-{secrets.token_hex(4)}"))
    _purge_and_copy(store, KekRing.single(kek), seal, tmp_path)


def _purge_and_copy(store: Store, ring: KekRing, seal: SigningKey, tmp_path: Path) -> None:
    with store.transaction() as conn:
        purged = add_conversation(conn, ring, T0, count=3)
        held = add_conversation(conn, ring, after(T0, hours=1), count=2)  # same week
        kept = add_conversation(conn, ring, after(T0, days=30), count=2)  # a later week
        purge_store.place_hold(conn, held.conversation_id, "order 7/2027", "admin1", T0)
    victims = [_capture(store, mid) for mid in purged.message_ids]
    week_a = {v.period_key_id for v in victims}
    assert len(week_a) == 1, "one storage week, one period key"
    held_before = {_capture(store, mid).period_key_id for mid in held.message_ids}
    assert held_before == week_a

    # Control: the procedure does open the purged messages from a copy taken before.
    blobs, _ = _copy(store, tmp_path, "before")
    assert _readable(blobs, ring, victims) == set(purged.message_ids)

    report = run_purge(
        store, one_policy("received"), RUN_AT, seal=seal, actor="job:purge", keys=ring
    )
    assert report.purged == 3
    assert store.checkpoint_wal()  # what the job and `gateway purge` do after the run
    blobs, raw = _copy(store, tmp_path, "after")

    assert _readable(blobs, ring, victims) == set()
    # Not in a freed page, a WAL frame or a dead row of the copy either: the destroyed period
    # key's wrapped bytes are nowhere, so the KEK has nothing left to open them with.
    destroyed = victims[0]
    assert destroyed.wrapped_period_key not in raw
    assert destroyed.wrapped_period_key.hex().encode() not in raw
    body = json.loads(report.report)
    assert body["period_keys_destroyed"] == [destroyed.period_key_id]
    assert body["data_keys_carried"] == 2

    with store.read() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count())
                .select_from(period_keys_table)
                .where(period_keys_table.c.key_id == destroyed.period_key_id)
            ).scalar_one()
            == 0
        )
        # The held messages were carried out of the week's key before it went: still readable.
        for mid in held.message_ids:
            assert messages.read_document(conn, mid, ring) == document(mid)
        for mid in kept.message_ids:
            assert messages.read_document(conn, mid, ring) == document(mid)
        kinds = [e.kind for e in purge_store.audit.events(conn)]
    assert kinds.count(period_keys.DESTROYED_EVENT) == 1
    carried_to = {_capture(store, mid).period_key_id for mid in held.message_ids}
    assert carried_to.isdisjoint(week_a)


def test_a_period_key_outlives_its_purge_while_a_message_is_held_then_goes(
    store: Store, ring: KekRing, seal: SigningKey
) -> None:
    """Holding keeps the data readable; releasing lets the next run purge it and destroy the
    generation it was carried into."""
    with store.transaction() as conn:
        add_conversation(conn, ring, T0, count=1)
        held = add_conversation(conn, ring, T0, count=1)
        hold_id = purge_store.place_hold(conn, held.conversation_id, "order 1", "admin", T0)
    policy = one_policy("received")
    run_purge(store, policy, RUN_AT, seal=seal, actor="job:purge", keys=ring)
    carried = _capture(store, held.message_ids[0])
    with store.transaction() as conn:
        purge_store.release_hold(conn, hold_id, "admin", RUN_AT, "order lifted")
    # A run by hand "as of" an earlier instant (`gateway purge --now`) still finds the key it
    # purged from: dirtiness is counted in tombstones, not compared in times.
    later = after(RUN_AT, days=-1)
    report = run_purge(store, policy, later, seal=seal, actor="job:purge", keys=ring)
    assert report.purged == 1
    body = json.loads(report.report)
    assert body["period_keys_destroyed"] == [carried.period_key_id]
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(period_keys_table)).scalar() == 0
    # Nothing purged: nothing destroyed, nothing carried.
    again = run_purge(store, policy, after(later, days=1), seal=seal, actor="job:purge", keys=ring)
    assert json.loads(again.report)["period_keys_destroyed"] == []


@pytest.mark.parametrize("rewrapped", [False, True])
def test_rows_from_before_period_keys_are_shredded_once_rewrapped(
    store: Store, ring: KekRing, seal: SigningKey, tmp_path: Path, rewrapped: bool
) -> None:
    """A data key still wrapped directly by the KEK (a row written before migration 0012)
    opens with the KEK from any copy that kept its bytes (a WAL frame, a dead tuple) after the
    purge; ``gateway keys rewrap`` moves it under its week's key, and then the purge reaches
    every copy made after the rewrap."""
    from gateway.store import keys as key_store

    with store.transaction() as conn:
        conv = add_conversation(conn, ring, T0, count=1)
        mid = conv.message_ids[0]
        dek = messages.data_key(conn, mid, ring)
        old_shape = at_rest.wrap_data_key(dek, ring)
        conn.execute(
            message_keys.update()
            .where(message_keys.c.message_id == mid)
            .values(kek_id=old_shape.kek_id, wrapped_dek=old_shape.blob, period_key_id=None)
        )
        conn.execute(period_keys_table.delete())  # as before 0012: no period key at all
    if rewrapped:
        with store.transaction() as conn:
            assert key_store.rewrap_batch(conn, ring, after(T0, days=1)) == 1
            assert key_store.count_by_kek(conn) == {}
    victim = _capture(store, mid)
    lingering = [victim.wrapped_dek]  # the old shape's (under the KEK) or the re-wrapped one
    run_purge(store, one_policy("received"), RUN_AT, seal=seal, actor="job:purge", keys=ring)
    assert store.checkpoint_wal()
    blobs, raw = _copy(store, tmp_path, "after")
    assert _readable(blobs, ring, [victim]) == set()
    # What a copy may still hold of the row's data key outside its live rows (a WAL frame kept
    # by a reader, a dead tuple, a replica behind): under a period key it no longer opens, the
    # period key having gone in the same run (its bytes are in no copied file, checked below);
    # in the old shape the KEK alone opens it.
    assert _readable(lingering, ring, [victim]) == (set() if rewrapped else {mid})
    if rewrapped:
        assert victim.wrapped_period_key not in raw

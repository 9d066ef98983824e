"""KEK rotation over a full store: a new KEK, re-wrapping that survives SIGKILL, destruction.

10,000 messages are stored (the first few through ``messages.insert_sent``, the rest as the same
rows written in bulk: inserting one by one costs ~4 ms each here). The re-wrap runs as
``gateway keys rewrap`` in a subprocess that is killed half-way and run again.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.crypto import at_rest
from gateway.crypto.keys.kek import KekRing, generate_file_kek
from gateway.crypto.keys.kek_ring import (
    DESTROY_GRACE,
    KekRotationError,
    destroy_kek,
    load_kek_ring,
    read_ring,
    rotate_kek,
)
from gateway.demo.pki import DemoPKI
from gateway.store import Store, conversations, messages, migrate, open_store, period_keys
from gateway.store.keys import kek_usage, rewrap_all
from gateway.store.messages import MessageHeader
from gateway.store.tables import message_keys
from gateway.store.tables import messages as messages_table
from tests.crypto.rotation.conftest import BODY, PASSPHRASE, PEER, NodeDir, make_node
from tests.tooling import softhsm_token

FAST_SCRYPT = 14
"""The cheapest KEK-file cost the loader accepts: every process of the test unlocks the ring."""
PIN_ENV = "GATEWAY_TEST_ROTATION_PIN"
TOKEN_MESSAGES = 1_000
"""Fewer than the file test: every re-wrap on SoftHSM costs ~1 ms of token calls (4 per key)."""
VIA_INSERT_SENT = 20
"""Messages stored through the real ``insert_sent``; the rest are the same rows in bulk."""


def node_store(node: NodeDir) -> Store:
    (node.root / "data").mkdir(exist_ok=True)
    store = open_store(node.config.database_url)
    migrate(store.engine)
    return store


@pytest.fixture
def file_node(demo_pki: DemoPKI, tmp_path: Path) -> Iterator[tuple[NodeDir, Store]]:
    node = make_node(demo_pki, tmp_path)
    generate_file_kek(node.keys_dir / "kek.key", PASSPHRASE, scrypt_log2_n=FAST_SCRYPT)
    store = node_store(node)
    yield node, store
    store.dispose()


def fill(store: Store, ring: KekRing, count: int, now: datetime) -> list[str]:
    """``count`` sent messages with their own data keys wrapped under the ring's active KEK."""
    ids = []
    with store.transaction() as conn:
        cid = str(uuid.uuid4())
        conversations.open_conversation(
            conn,
            conversation_id=cid,
            agreement="cis-enforcement",
            requesting_party=BODY,
            requested_party=PEER,
            opening_kind="Request",
            state="sent",
            confidential=False,
            deadline=None,
            now=now,
        )
        rows, keys = [], []
        for i in range(count):
            mid = str(uuid.uuid4())
            ids.append(mid)
            doc = document(mid)
            if i < VIA_INSERT_SENT:
                header = MessageHeader(
                    mid, cid, "cis-enforcement", "Request", BODY, PEER, now, False
                )
                messages.insert_sent(conn, header, doc, ring, now)
                continue
            dek = at_rest.new_data_key()
            nonce, ciphertext = at_rest.encrypt_part(dek, doc, at_rest.payload_aad(mid))
            rows.append(
                {
                    "message_id": mid,
                    "conversation_id": cid,
                    "in_reply_to": None,
                    "direction": "out",
                    "agreement": "cis-enforcement",
                    "kind": "Request",
                    "sender": BODY,
                    "recipient": PEER,
                    "created": now,
                    "stored_at": now,
                    "confidential": False,
                    "document_sha256": hashlib.sha256(doc).digest(),
                    "document_size": len(doc),
                    "payload_nonce": nonce,
                    "payload": ciphertext,
                }
            )
            wrapped = at_rest.wrap_data_key(dek, ring)
            keys.append(
                {
                    "message_id": mid,
                    "kek_id": wrapped.kek_id,
                    "wrapped_dek": wrapped.blob,
                    "wrapped_at": now,
                }
            )
        if rows:
            conn.execute(messages_table.insert(), rows)
            conn.execute(message_keys.insert(), keys)
    return ids


def document(message_id: str) -> bytes:
    return f"<env:Envelope><env:MessageId>{message_id}</env:MessageId></env:Envelope>".encode()


def assert_all_readable(store: Store, ring: KekRing, ids: list[str]) -> None:
    """Every stored message opens with the ring (all of them in bulk; a sample through the
    store's own reader)."""
    with store.read() as conn:
        keyed = period_keys.data_key_columns().subquery()
        rows = conn.execute(
            sa.select(
                messages_table.c.payload_nonce,
                messages_table.c.payload,
                keyed,
            ).join(keyed, keyed.c.message_id == messages_table.c.message_id)
        ).all()
        assert len(rows) == len(ids)
        for row in rows:
            # A data key under its week's period key, or (rows of the old shape) under a KEK.
            dek = period_keys.data_key_of(row, ring)
            plain = at_rest.decrypt_part(
                dek, row.payload_nonce, row.payload, at_rest.payload_aad(row.message_id)
            )
            assert plain == document(row.message_id)
        for mid in ids[:: max(1, len(ids) // 25)]:
            assert messages.read_document(conn, mid, ring) == document(mid)


KEYS_CLI = "import sys; from gateway.main import main; sys.exit(main(sys.argv[1:]))"
"""``gateway …`` in a child process of this interpreter (the dispatcher imports a command's
stack only when it runs, so starting it costs what ``keys`` needs, not the PDF or console)."""


def rewrap_command(node: NodeDir, batch: int, pause: float) -> list[str]:
    return [
        sys.executable,
        "-c",
        KEYS_CLI,
        "keys",
        "rewrap",
        "--config",
        str(node.config_path),
        "--batch-size",
        str(batch),
        "--pause",
        str(pause),
    ]


def kill_midway(node: NodeDir, total: int, batch: int, env: dict[str, str] | None = None) -> int:
    """Start the re-wrap, SIGKILL it once a fifth is done; return how many it had reported."""
    process = subprocess.Popen(
        rewrap_command(node, batch, 0.05),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[3],
    )
    reported = 0
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if line.startswith("rewrap: "):
                reported = int(line.split()[1].split("/")[0])
                if reported >= total // 5:
                    break
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, process.stderr.read() if process.stderr else ""
    return reported


def run_to_end(node: NodeDir, batch: int, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        rewrap_command(node, batch, 0.0),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def usage_of(store: Store) -> dict[str, int]:
    """Keys per KEK as the store counts them now: what destroy_kek decides on."""
    with store.read() as conn:
        return kek_usage(conn)


def test_rewrap_of_ten_thousand_messages_survives_sigkill(
    file_node: tuple[NodeDir, Store],
) -> None:
    node, store = file_node
    now = datetime.now(UTC)
    ks = node.keystore()
    ring_of_a_running_node = load_kek_ring(ks)
    old = ring_of_a_running_node.active.key_id
    ids = fill(store, ring_of_a_running_node, 10_000, now)

    rotated = rotate_kek(ks, now=now, scrypt_log2_n=FAST_SCRYPT)
    assert rotated.previous == old
    assert read_ring(node.keys_dir).active_at(now) == rotated.key_id

    reported = kill_midway(node, 10_000, batch=250)
    with store.read() as conn:
        usage = kek_usage(conn)
    assert reported >= 2_000
    # Really half-way: the period key went first, part of the old rows moved under it.
    legacy = 10_000 - VIA_INSERT_SENT
    assert usage[rotated.key_id] == 1 and 0 < usage[old] <= legacy + 1 - reported, usage
    with pytest.raises(KekRotationError, match="still wraps"):
        destroy_kek(ks, old, now=now + DESTROY_GRACE * 2, usage=usage_of(store))
    # Half-way, every message still opens: rows name the KEK that wraps them.
    assert_all_readable(store, load_kek_ring(node.keystore()), ids)

    out = run_to_end(node, batch=1000)
    assert "re-wrapped" in out
    with store.read() as conn:
        # One period key (every message was stored this week) wraps all 10 000 data keys.
        assert kek_usage(conn) == {rotated.key_id: 1}
    # The running node's ring never saw the rotation happen: it loads the new KEK on demand.
    assert_all_readable(store, ring_of_a_running_node, ids)

    with pytest.raises(KekRotationError, match="left service") as early:
        destroy_kek(ks, old, now=now + DESTROY_GRACE / 2, usage=usage_of(store))
    # The time left, not the whole grace (issue #19).
    assert f"Wait {DESTROY_GRACE / 2} more" in str(early.value)
    destroy_kek(ks, old, now=now + DESTROY_GRACE * 2, usage=usage_of(store))
    assert not (node.keys_dir / "kek.key").exists()
    fresh = load_kek_ring(node.keystore())
    assert fresh.key_ids == {rotated.key_id}
    assert_all_readable(store, fresh, ids)
    with pytest.raises(KekRotationError, match="active"):
        destroy_kek(ks, rotated.key_id, now=now + DESTROY_GRACE * 2, usage=usage_of(store))


def test_switch_at_a_scheduled_time_without_restart(file_node: tuple[NodeDir, Store]) -> None:
    node, store = file_node
    # Noon on this week's Wednesday, on the ring's own clock: the switch an hour later falls in
    # the same ISO week, whose one period key the test counts, whatever day it runs (from
    # "now", the hour crossed into a new week late on Sundays and the count read two).
    today = datetime.now(UTC)
    t0 = (today + timedelta(days=2 - today.weekday())).replace(
        hour=12, minute=0, second=0, microsecond=0
    )
    clock = [t0]
    ring = load_kek_ring(node.keystore(), clock=lambda: clock[0])
    old = ring.active.key_id
    switch = t0 + timedelta(hours=1)
    rotated = rotate_kek(node.keystore(), now=t0, at=switch, scrypt_log2_n=FAST_SCRYPT)
    ring.refresh(force=True)
    assert ring.active.key_id == old and rotated.key_id in ring.key_ids
    ids = fill(store, ring, 5, t0)
    clock[0] = switch + timedelta(seconds=1)
    assert ring.active.key_id == rotated.key_id  # no file change needed: the time came
    ids += fill(store, ring, 5, clock[0])
    with store.read() as conn:
        # The ten data keys are under this week's period key, which the old KEK still wraps.
        assert kek_usage(conn) == {old: 1}
    result = rewrap_all(store, ring, clock=lambda: clock[0], batch_size=3)
    assert result.complete and result.rewrapped == 1  # the period key, not ten messages
    assert_all_readable(store, ring, ids)
    with store.read() as conn:
        from gateway.store import audit

        kinds = {e.kind for e in audit.events(conn)}
    assert "key.rewrapped" in kinds


def test_ring_without_manifest_and_broken_rings(tmp_path: Path) -> None:
    with pytest.raises(KekRotationError, match="no KEK"):
        read_ring(tmp_path)
    generate_file_kek(tmp_path / "kek.key", PASSPHRASE, scrypt_log2_n=FAST_SCRYPT)
    assert len(read_ring(tmp_path).members) == 1
    generate_file_kek(tmp_path / "kek-x.key", PASSPHRASE, scrypt_log2_n=FAST_SCRYPT)
    with pytest.raises(KekRotationError, match="naming the active one"):
        read_ring(tmp_path)
    (tmp_path / "kek.ring.json").write_text(
        '{"format": "gateway-kek-ring", "version": 1, '
        '"keks": [{"key_id": "a", "file": "../x.key"}], '
        '"activations": []}'
    )
    with pytest.raises(KekRotationError, match="file name"):
        read_ring(tmp_path)


def test_rotation_with_keks_on_a_softhsm_token(demo_pki: DemoPKI, tmp_path: Path) -> None:
    """File KEK → token KEK (re-wrap killed half-way and resumed) → a second token KEK."""
    module, label, pin = softhsm_token("gw-rotation")
    node = make_node(demo_pki, tmp_path, token=(module, label, pin))
    generate_file_kek(node.keys_dir / "kek.key", PASSPHRASE, scrypt_log2_n=FAST_SCRYPT)
    environ = {PIN_ENV: pin}
    env = {**os.environ, PIN_ENV: pin}
    store = node_store(node)
    try:
        now = datetime.now(UTC)
        ks = node.keystore(environ)
        ring = load_kek_ring(ks)
        file_kek = ring.active.key_id
        ids = fill(store, ring, TOKEN_MESSAGES, now)

        first = rotate_kek(ks, now=now, on_token=True)
        assert first.location == f"pkcs11:{label}/{first.key_id}"
        kill_midway(node, TOKEN_MESSAGES, batch=50, env=env)
        run_to_end(node, batch=500, env=env)

        second = rotate_kek(ks, now=now, on_token=True)
        ring.refresh(force=True)
        assert ring.active.key_id == second.key_id
        result = rewrap_all(store, ring, clock=lambda: now)
        assert result.complete and result.rewrapped == 1  # the week's period key
        assert_all_readable(store, ring, ids)

        later = now + DESTROY_GRACE * 2
        destroy_kek(ks, file_kek, now=later, usage=usage_of(store))
        destroy_kek(ks, first.key_id, now=later, usage=usage_of(store))
        import pkcs11

        with ks.token().lock:
            left = list(ks.token().session.get_objects({pkcs11.Attribute.LABEL: first.key_id}))
        assert left == []
        fresh = load_kek_ring(node.keystore(environ))
        assert fresh.key_ids == {second.key_id}
        assert_all_readable(store, fresh, ids)
    finally:
        store.dispose()

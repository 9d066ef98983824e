"""Issue #20 (tombstones not tamper-evident) and #17 item 4 (one audit event per batch): a
tombstone rewritten (document hash zeroed, policy changed, its policy hash swapped), deleted,
or forged into a run passed both ``gateway audit verify`` and ``gateway purge verify-report``.
Now each batch's tombstones are bound into the chain by ONE ``purge.batch`` event (count, first
and last id, a hash over the rows, 2-byte tags) and the signed report carries a digest over the
batches: both commands fail and name the message (a deleted middle row: its neighbours), and
an edited batch event breaks the chain. Real SQLite and PostgreSQL stores, the commands as run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.crypto.keys.kek import KekRing
from gateway.store import Store, audit, purge
from gateway.store.tables import audit_events, tombstones
from tests.app.purge.purge_child import main
from tests.app.purge.world import add_conversation, long_ago

CONVERSATIONS = 40
"""80 messages in batches of 32: three batches, the tampering in the second."""
BATCH = "32"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def _purged(store: Store, ring: KekRing, node_toml: Path, capsys) -> tuple[str, list[str]]:
    with store.transaction() as conn:
        for _ in range(CONVERSATIONS):
            add_conversation(conn, ring, long_ago(500), with_attachment=False)
    code, out = _run(capsys, "purge", "--config", str(node_toml), "--batch-size", BATCH)
    assert code == 0, out
    run_id = out.split()[1].rstrip(":")
    with store.read() as conn:
        second = [t.message_id for t in purge.batch_tombstones(conn, run_id, 2)]
    assert len(second) == int(BATCH)
    return run_id, second


def test_honest_tombstones_verify_with_one_event_per_batch(
    store: Store, ring: KekRing, node_toml: Path, capsys
) -> None:
    run_id, _ids = _purged(store, ring, node_toml, capsys)
    with store.read() as conn:
        events = audit.events(conn)
        kinds = [e.kind for e in events]
        policy_hashes = set(conn.execute(sa.select(tombstones.c.policy_sha256)).scalars())
        # By number: two transactions in flight (PostgreSQL) may commit in either order.
        batches = sorted(
            (e.details for e in events if e.kind == "purge.batch"), key=lambda d: int(d["batch"])
        )
        second = purge.batch_tombstones(conn, run_id, 2)
    assert [b["count"] for b in batches] == [32, 32, 16]  # one event per batch, none per message
    assert [b["batch"] for b in batches] == [1, 2, 3]
    assert "message.purged" not in kinds and "purge.tombstones" not in kinds
    # The event's hash is the documented encoding over the rows, recomputed here by hand.
    header = f"gateway-purge-batch/1\n{run_id}\n2\n32\n".encode()
    leaves = b"".join(purge.tombstone_leaf(t) for t in second)
    assert batches[1]["sha256"] == hashlib.sha256(header + leaves).hexdigest()
    assert (batches[1]["first"], batches[1]["last"]) == (
        second[0].message_id,
        second[-1].message_id,
    )
    assert len(policy_hashes) == 1 and None not in policy_hashes
    code, out = _run(capsys, "audit", "verify", "--config", str(node_toml))
    assert code == 0 and "audit trail intact" in out, out
    code, out = _run(capsys, "purge", "verify-report", "--config", str(node_toml), run_id)
    assert code == 0 and "подпись печатью верна" in out, out


def _zero_digest(conn: sa.Connection, victim: str) -> None:
    conn.execute(
        tombstones.update()
        .where(tombstones.c.message_id == victim)
        .values(document_sha256=b"\0" * 32)
    )


def _change_policy(conn: sa.Connection, victim: str) -> None:
    conn.execute(
        tombstones.update().where(tombstones.c.message_id == victim).values(policy="lawful-expiry")
    )


def _change_policy_hash(conn: sa.Connection, victim: str) -> None:
    conn.execute(
        tombstones.update().where(tombstones.c.message_id == victim).values(policy_sha256="0" * 64)
    )


def _delete(conn: sa.Connection, victim: str) -> None:
    conn.execute(tombstones.delete().where(tombstones.c.message_id == victim))


FORGED = "00000000-0000-4000-8000-00000000f0f0"


def _insert(conn: sa.Connection, victim: str) -> None:
    """A copy of the victim's row under another id, in the victim's batch."""
    row = conn.execute(sa.select(tombstones).where(tombstones.c.message_id == victim)).one()
    conn.execute(tombstones.insert().values({**row._mapping, "message_id": FORGED}))


def _insert_unbatched(conn: sa.Connection, victim: str) -> None:
    """A copy of the victim's row under another id, in no batch."""
    row = conn.execute(sa.select(tombstones).where(tombstones.c.message_id == victim)).one()
    conn.execute(
        tombstones.insert().values({**row._mapping, "message_id": FORGED, "purge_batch": None})
    )


@pytest.mark.parametrize(
    ("tamper", "position", "kind", "named"),
    [
        (_zero_digest, 5, "tombstone-modified", "victim"),
        (_change_policy, 5, "tombstone-modified", "victim"),
        (_change_policy_hash, 5, "tombstone-modified", "victim"),
        (_delete, 0, "tombstone-deleted", "victim"),
        (_delete, -1, "tombstone-deleted", "victim"),
        (_delete, 5, "tombstone-deleted", "neighbours"),
        (_insert, 5, "tombstone-inserted", "forged"),
        (_insert_unbatched, 5, "tombstone-inserted", "forged"),
    ],
    ids=[
        "digest-zeroed",
        "policy-changed",
        "policy-hash-changed",
        "first-deleted",
        "last-deleted",
        "middle-deleted",
        "inserted",
        "inserted-unbatched",
    ],
)
def test_a_tampered_tombstone_is_named_by_both_checks(
    store: Store,
    ring: KekRing,
    node_toml: Path,
    capsys,
    tamper: Callable[[sa.Connection, str], None],
    position: int,
    kind: str,
    named: str,
) -> None:
    run_id, second = _purged(store, ring, node_toml, capsys)
    victim = second[position]  # in the second batch's event
    with store.transaction() as conn:
        tamper(conn, victim)
    expected = {
        "victim": [victim],
        "forged": [FORGED],
        "neighbours": [second[position - 1], second[position + 1]],
    }[named]

    code, out = _run(capsys, "audit", "verify", "--config", str(node_toml))
    assert code == 1, out
    assert f"({kind})" in out and "BROKEN" in out, out
    assert all(message in out for message in expected), out

    code, out = _run(capsys, "purge", "verify-report", "--config", str(node_toml), run_id)
    assert code == 1, out
    assert "НЕ ПОДТВЕРЖДЁН" in out and "do not hash" in out, out
    assert all(message in out for message in expected), out


def test_an_edited_batch_event_breaks_the_chain_at_that_event(
    store: Store, ring: KekRing, node_toml: Path, capsys
) -> None:
    """The event's count and hash are chained: lowering the count to hide a deleted row, or
    swapping the hash for one over forged rows, is named at the event."""
    _run_id, _second = _purged(store, ring, node_toml, capsys)
    with store.transaction() as conn:
        seq, details = conn.execute(
            sa.select(audit_events.c.seq, audit_events.c.details)
            .where(audit_events.c.kind == "purge.batch")
            .order_by(audit_events.c.seq)
            .offset(1)
            .limit(1)
        ).one()
        edited = {**json.loads(details), "count": 31, "sha256": "0" * 64}
        conn.execute(
            audit_events.update()
            .where(audit_events.c.seq == seq)
            .values(details=json.dumps(edited, sort_keys=True, separators=(",", ":")))
        )
    code, out = _run(capsys, "audit", "verify", "--config", str(node_toml))
    assert code == 1, out
    assert f"BROKEN at event {seq} (modified)" in out, out

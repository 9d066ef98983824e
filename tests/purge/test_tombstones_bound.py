"""Issue #20 (tombstones not tamper-evident): a tombstone rewritten (document hash zeroed,
policy changed, its policy hash swapped), deleted, or forged into a run passed both
``gateway audit verify`` and ``gateway purge verify-report``. Now each batch's tombstones are
bound into the chain (``purge.tombstones``) and the signed report carries their digest: both
commands fail and name the message. Real SQLite and PostgreSQL stores, the commands as run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.crypto.at_rest import KekRing
from gateway.store import Store, audit
from gateway.store.purge import LEAVES_PER_EVENT
from gateway.store.tables import tombstones
from tests.purge.purge_child import main
from tests.purge.world import T0, add_conversation, after

NOW = after(T0, days=500)
CONVERSATIONS = 40
"""80 messages: more than one binding event per batch (LEAVES_PER_EVENT = 64)."""


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def _purged(store: Store, ring: KekRing, node_toml: Path, capsys) -> tuple[str, list[str]]:
    with store.transaction() as conn:
        for _ in range(CONVERSATIONS):
            add_conversation(conn, ring, T0, with_attachment=False)
    code, out = _run(capsys, "purge", "--config", str(node_toml), "--now", NOW.isoformat())
    assert code == 0, out
    run_id = out.split()[1].rstrip(":")
    with store.read() as conn:
        ids = sorted(conn.execute(sa.select(tombstones.c.message_id)).scalars())
    assert len(ids) == 2 * CONVERSATIONS > LEAVES_PER_EVENT
    return run_id, ids


def test_honest_tombstones_verify_with_one_event_per_chunk(
    store: Store, ring: KekRing, node_toml: Path, capsys
) -> None:
    run_id, _ids = _purged(store, ring, node_toml, capsys)
    with store.read() as conn:
        kinds = [e.kind for e in audit.events(conn)]
        policy_hashes = set(conn.execute(sa.select(tombstones.c.policy_sha256)).scalars())
    assert kinds.count("purge.tombstones") == 2  # 80 tombstones, 64 per event; none per message
    assert "message.purged" not in kinds
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
    row = conn.execute(sa.select(tombstones).where(tombstones.c.message_id == victim)).one()
    conn.execute(tombstones.insert().values({**row._mapping, "message_id": FORGED}))


@pytest.mark.parametrize(
    ("tamper", "kind", "named"),
    [
        (_zero_digest, "tombstone-modified", "victim"),
        (_change_policy, "tombstone-modified", "victim"),
        (_change_policy_hash, "tombstone-modified", "victim"),
        (_delete, "tombstone-deleted", "victim"),
        (_insert, "tombstone-inserted", "forged"),
    ],
    ids=["digest-zeroed", "policy-changed", "policy-hash-changed", "deleted", "inserted"],
)
def test_a_tampered_tombstone_is_named_by_both_checks(
    store: Store,
    ring: KekRing,
    node_toml: Path,
    capsys,
    tamper: Callable[[sa.Connection, str], None],
    kind: str,
    named: str,
) -> None:
    run_id, ids = _purged(store, ring, node_toml, capsys)
    victim = ids[LEAVES_PER_EVENT + 3]  # in the second binding event of the batch
    with store.transaction() as conn:
        tamper(conn, victim)
    message = victim if named == "victim" else FORGED

    code, out = _run(capsys, "audit", "verify", "--config", str(node_toml))
    assert code == 1, out
    assert f"({kind})" in out and message in out and "BROKEN" in out

    code, out = _run(capsys, "purge", "verify-report", "--config", str(node_toml), run_id)
    assert code == 1, out
    assert "НЕ ПОДТВЕРЖДЁН" in out and message in out and "do not hash" in out

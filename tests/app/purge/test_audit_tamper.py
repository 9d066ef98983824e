"""``gateway audit verify``: exit 0 on an honest trail; on tampering exit 1 naming the event
and the kind — modified, deleted, inserted, reordered, and a truncated tail rewritten with
fresh hashes (found only by a signed checkpoint, stored or kept off the node)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.sign.timestamps import HTTPTimeStamper

from gateway.app.audit_checkpoints import (
    checkpoint_file_line,
    create_checkpoint,
    verify_trail,
)
from gateway.crypto.keys.generations import always_in_force
from gateway.crypto.keys.keystore import SigningKey
from gateway.store import Store, audit
from gateway.store.tables import audit_checkpoints, audit_events, audit_head
from tests.app.purge.purge_child import audit_main
from tests.app.purge.world import T0
from tests.https import loopback_certificate


def _append(store: Store, count: int, start: int = 0) -> None:
    with store.transaction() as conn:
        for i in range(start, start + count):
            audit.append(
                conn,
                now=T0 + timedelta(seconds=i),
                actor="operator1",
                kind="document.read",
                subjects={"message_id": f"m-{i}"},
                details={"n": i},
            )


def _verify(node_toml: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = audit_main(["verify", "--config", str(node_toml), *extra])
    out = capsys.readouterr()
    return code, out.out + out.err


def _row(conn: sa.Connection, seq: int) -> sa.Row:
    return conn.execute(sa.select(audit_events).where(audit_events.c.seq == seq)).one()


def _copy(row: sa.Row) -> dict:
    return {c: getattr(row, c) for c in ("at", "actor", "kind", "subjects", "details")} | {
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def test_honest_trail_passes(store: Store, node_toml: Path, seal: SigningKey, capsys) -> None:
    _append(store, 10)
    create_checkpoint(store, seal, actor="job:purge", now=T0)
    _append(store, 3, start=10)
    code, out = _verify(node_toml, capsys)
    assert code == 0, out
    assert "intact: 14 events" in out and "1 signed checkpoints" in out


def _modify(conn: sa.Connection) -> None:
    conn.execute(audit_events.update().where(audit_events.c.seq == 5).values(details='{"n":999}'))


def _delete(conn: sa.Connection) -> None:
    conn.execute(audit_events.delete().where(audit_events.c.seq == 5))


def _insert(conn: sa.Connection) -> None:
    """Shift 5.. up by one and slip in a well-chained forged event at 5."""
    for row in conn.execute(
        sa.select(audit_events.c.seq)
        .where(audit_events.c.seq >= 5)
        .order_by(audit_events.c.seq.desc())
    ).all():
        conn.execute(
            audit_events.update().where(audit_events.c.seq == row.seq).values(seq=row.seq + 1)
        )
    prev = _row(conn, 4).hash
    forged = audit.event_hash(prev, 5, T0, "forger", "user.created", "{}", "{}")
    conn.execute(
        audit_events.insert().values(
            seq=5,
            at=T0,
            actor="forger",
            kind="user.created",
            subjects="{}",
            details="{}",
            prev_hash=prev,
            hash=forged,
        )
    )
    conn.execute(audit_head.update().values(seq=audit_head.c.seq + 1))


def _reorder(conn: sa.Connection) -> None:
    five, six = _row(conn, 5), _row(conn, 6)
    conn.execute(audit_events.update().where(audit_events.c.seq == 5).values(**_copy(six)))
    conn.execute(audit_events.update().where(audit_events.c.seq == 6).values(**_copy(five)))


@pytest.mark.parametrize(
    "tamper, seq, kind",
    [
        (_modify, 5, "modified"),
        (_delete, 5, "deleted"),
        (_insert, 6, "inserted"),
        (_reorder, 5, "reordered"),
    ],
)
def test_tampering_is_named(store: Store, node_toml: Path, capsys, tamper, seq, kind) -> None:
    _append(store, 10)
    with store.transaction() as conn:
        tamper(conn)
    code, out = _verify(node_toml, capsys)
    assert code == 1
    assert f"BROKEN at event {seq} ({kind})" in out, out


def _truncate_and_rewrite(store: Store, keep: int, forged: int) -> None:
    """Delete every event after ``keep`` and append ``forged`` fresh ones with correct hashes,
    head updated: the chain alone is consistent again."""
    with store.transaction() as conn:
        conn.execute(audit_events.delete().where(audit_events.c.seq > keep))
        prev = _row(conn, keep).hash
        conn.execute(audit_head.update().values(seq=keep, hash=prev))
    with store.transaction() as conn:
        for i in range(forged):
            audit.append(conn, now=T0, actor="forger", kind="document.read", details={"i": i})


@pytest.mark.parametrize("forged, seq, kind", [(2, 9, "truncated"), (10, 12, "rewritten")])
def test_truncated_and_rewritten_tail_fails_against_checkpoint(
    store: Store, node_toml: Path, seal: SigningKey, capsys, forged, seq, kind
) -> None:
    _append(store, 10)
    create_checkpoint(store, seal, actor="job:purge", now=T0)  # signs seq 10; event 11 records it
    _append(store, 3, start=10)
    _truncate_and_rewrite(store, keep=6, forged=forged)
    with store.read() as conn:
        assert audit.verify(conn).intact  # the chain alone cannot tell
    code, out = _verify(node_toml, capsys)
    assert code == 1
    # Too short a rewrite loses the checkpointed event; a longer one changes its hash.
    expected_seq = 9 if kind == "truncated" else 10
    assert f"BROKEN at event {expected_seq} ({kind})" in out, out
    assert seq  # parametrised for readability of the case


def test_deleted_checkpoints_are_caught_by_the_copy_off_node(
    store: Store, node_toml: Path, seal: SigningKey, tmp_path: Path, capsys
) -> None:
    _append(store, 10)
    checkpoint = create_checkpoint(store, seal, actor="job:purge", now=T0)
    copy = tmp_path / "checkpoints.jsonl"
    copy.write_text(checkpoint_file_line(checkpoint) + "\n", encoding="utf-8")
    _truncate_and_rewrite(store, keep=6, forged=10)
    with store.transaction() as conn:
        conn.execute(audit_checkpoints.delete())
    code, out = _verify(node_toml, capsys)
    assert code == 0  # nothing left in the database to compare with…
    code, out = _verify(node_toml, capsys, "--checkpoint", str(copy))
    assert code == 1 and "BROKEN at event 10 (rewritten)" in out, out
    assert f"{copy}:1" in out


def test_forged_checkpoint_signature_is_refused(store: Store, seal: SigningKey, capsys) -> None:
    _append(store, 4)
    create_checkpoint(store, seal, actor="job:purge", now=T0)
    with store.transaction() as conn:
        statement = conn.execute(sa.select(audit_checkpoints.c.statement)).scalar_one()
        conn.execute(
            audit_checkpoints.update().values(statement=statement.replace('"seq":4', '"seq":3'))
        )
    result = verify_trail(store, always_in_force([seal.certificate]))
    assert not result.intact and result.tampering == "checkpoint"
    assert "does not verify" in result.reason


def test_export_segment_rechecks_offline(
    store: Store, node_toml: Path, seal: SigningKey, tmp_path: Path, capsys
) -> None:
    _append(store, 20)
    out = tmp_path / "segment.jsonl"
    assert (
        audit_main(
            ["export", "--config", str(node_toml), "--from", "5", "--to", "12", "--out", str(out)]
        )
        == 0
    )
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 8  # header + events 5..12
    assert audit_main(["verify-export", str(out)]) == 0
    lines[3] = lines[3].replace('"n": 6', '"n": 60')  # event 7 (n = seq - 1)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert audit_main(["verify-export", str(out)]) == 1
    assert "event 7 was modified" in capsys.readouterr().out
    # a time range: at >= T0+15 s, < T0+18 s → events 16, 17, 18
    by_time = tmp_path / "by-time.jsonl"
    assert (
        audit_main(
            [
                "export",
                "--config",
                str(node_toml),
                "--from",
                (T0 + timedelta(seconds=15)).isoformat(),
                "--to",
                (T0 + timedelta(seconds=18)).isoformat(),
                "--out",
                str(by_time),
            ]
        )
        == 0
    )
    seqs = [
        line.split('"seq": ')[1].split(",")[0]
        for line in by_time.read_text(encoding="utf-8").splitlines()[1:]
    ]
    assert seqs == ["16", "17", "18"]


def _another_body_s_checkpoint_line(signed_by_us: str, folder: Path) -> str:
    """The same statement signed by a key that is not the body's seal, its self-made
    certificate beside it: what a rewriter of the chain can always produce."""
    cert_path, key_path = loopback_certificate(folder, subject="Not the seal")
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    statement = json.loads(signed_by_us)["statement"]
    signature = key.sign(statement.encode(), ec.ECDSA(hashes.SHA256()))
    return json.dumps(
        {
            "statement": statement,
            "signature": signature.hex(),
            "certificate": cert.public_bytes(serialization.Encoding.DER).hex(),
        }
    )


def test_a_checkpoint_kept_off_the_node_is_judged_by_the_body_s_seal(
    store: Store, node_toml: Path, seal: SigningKey, tmp_path: Path, capsys
) -> None:
    """`verify-export --checkpoint` away from the node takes the body's seal certificate from
    the auditor (--seal), not from beside the checkpoint: one signed by any other key is
    refused, and without --seal the command says what it needs."""
    _append(store, 10)
    checkpoint = create_checkpoint(store, seal, actor="job:purge", now=T0)
    ours = tmp_path / "checkpoints.jsonl"
    ours.write_text(checkpoint_file_line(checkpoint) + "\n", encoding="utf-8")
    theirs = tmp_path / "forged.jsonl"
    theirs.write_text(
        _another_body_s_checkpoint_line(ours.read_text(), tmp_path) + "\n", encoding="utf-8"
    )
    seal_pem = tmp_path / "seal.pem"
    seal_pem.write_bytes(seal.certificate.public_bytes(serialization.Encoding.PEM))
    segment = tmp_path / "segment.jsonl"
    export = ["export", "--config", str(node_toml), "--from", "1", "--out", str(segment)]
    assert audit_main(export) == 0
    capsys.readouterr()

    assert audit_main(["verify-export", str(segment), "--checkpoint", str(ours)]) == 2
    assert "SEAL_CERTIFICATE_REQUIRED" in capsys.readouterr().err
    with_seal = ["--seal", str(seal_pem)]
    assert audit_main(["verify-export", str(segment), "--checkpoint", str(ours), *with_seal]) == 0
    capsys.readouterr()
    assert audit_main(["verify-export", str(segment), "--checkpoint", str(theirs), *with_seal]) == 1
    assert "not this body's seal certificate" in capsys.readouterr().out


def test_a_file_that_is_not_an_export_is_refused_naming_what_to_do(tmp_path: Path, capsys) -> None:
    bogus = tmp_path / "notes.jsonl"
    bogus.write_text('{"hello": "world"}\n', encoding="utf-8")
    assert audit_main(["verify-export", str(bogus)]) == 1
    err = capsys.readouterr().err
    assert "EXPORT_INVALID" in err and "gateway audit export" in err


def test_a_tsa_that_does_not_answer_leaves_the_checkpoint_without_a_timestamp(
    store: Store, seal: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    """The token is fetched after the checkpoint's transaction: a TSA that cannot be reached
    (nothing listens on loopback port 1) costs the checkpoint its timestamp, not its
    existence, and says so in the log."""
    _append(store, 3)
    unreachable = HTTPTimeStamper("http://127.0.0.1:1/tsa", timeout=5)
    made = create_checkpoint(store, seal, actor="t", now=T0, timestamper=unreachable)
    assert made.timestamp is None
    with store.read() as conn:
        (stored,) = audit.checkpoints(conn)
    assert stored.checkpoint_id == made.checkpoint_id and stored.timestamp is None
    assert "the TSA gave no timestamp" in caplog.text
    assert verify_trail(store, always_in_force([seal.certificate])).intact

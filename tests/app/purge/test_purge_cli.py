"""The commands: ``gateway purge --dry-run`` lists exactly what ``gateway purge`` then
deletes; plain progress lines off a terminal; runs listed with signed reports; holds placed and
released through the command are audited and respected."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import SigningKey
from gateway.store import Store, audit
from gateway.store import purge as purge_store
from gateway.store.tables import tombstones
from tests.app.purge.purge_child import main
from tests.app.purge.world import T0, add_conversation, after, long_ago
from tests.tooling import require_tool

NOW = after(T0, days=500)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_dry_run_then_run_then_runs(store: Store, ring: KekRing, node_toml: Path, capsys) -> None:
    stored = long_ago(500)
    with store.transaction() as conn:
        old = [add_conversation(conn, ring, stored, count=3) for _ in range(3)]
        young = add_conversation(conn, ring, after(stored, days=300))
    cfg = str(node_toml)
    code, out, _ = _run(capsys, "purge", "--config", cfg, "--dry-run", "--json")
    assert code == 0
    listed = [json.loads(line) for line in out.splitlines()]
    assert {d["message_id"] for d in listed} == {m for c in old for m in c.message_ids}
    assert {(d["policy"], d["action"], d["kind"]) for d in listed} == {
        ("p", "purge", "Request"),
        ("p", "purge", "Receipt"),
    }
    assert all(d["expired_at"] == after(stored, days=365).isoformat() for d in listed)

    code, out, err = _run(capsys, "purge", "--config", cfg)
    assert code == 0, err
    assert "purge: просмотрено 11/11 (100%)" in err  # plain lines: stderr is not a terminal
    with store.read() as conn:
        gone = set(conn.execute(sa.select(tombstones.c.message_id)).scalars())
    assert gone == {d["message_id"] for d in listed}
    assert young.message_ids[0] not in gone
    run_id = out.split()[1].rstrip(":")
    with store.read() as conn:
        signed = json.loads(purge_store.get_report(conn, run_id).report)
    # The week the old messages were stored in lost its period key (issue #20, item 2); the
    # young message's week kept its own. SQLite's log was emptied after the run.
    assert len(signed["period_keys_destroyed"]) == 1 and signed["data_keys_carried"] == 0
    if store.dialect == "sqlite":
        assert Path(f"{store.engine.url.database}-wal").stat().st_size == 0

    code, out, _ = _run(capsys, "purge", "runs", "--config", cfg)
    assert code == 0 and f"{run_id}\t" in out and "\tfinished\t9\t" in out and "signed" in out
    code, out, _ = _run(capsys, "purge", "verify-report", "--config", cfg, run_id)
    assert code == 0 and "подпись печатью верна" in out


def test_a_run_never_looks_ahead_a_dry_run_may(
    store: Store, ring: KekRing, node_toml: Path, capsys
) -> None:
    """A real run at a later `--now` would destroy messages before their period ends (CIS
    Art. 9.6): it is refused, naming the dry run, and nothing changes; the dry run at that
    date lists what would go."""
    with store.transaction() as conn:
        kept = add_conversation(conn, ring, T0, count=2)  # expires a year after T0
    cfg = str(node_toml)
    later = ("--now", NOW.isoformat())
    code, out, _ = _run(capsys, "purge", "--config", cfg, "--dry-run", "--json", *later)
    assert code == 0
    assert {json.loads(line)["message_id"] for line in out.splitlines()} == set(kept.message_ids)
    code, out, err = _run(capsys, "purge", "--config", cfg, *later)
    assert code == 2, out + err
    assert "PURGE_NOW_IN_FUTURE" in err and "--dry-run" in err
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tombstones)).scalar_one() == 0
        assert purge_store.list_runs(conn, 5) == []


def test_holds_commands(store: Store, ring: KekRing, node_toml: Path, capsys) -> None:
    with store.transaction() as conn:
        conv = add_conversation(conn, ring, T0)
    cfg, cid = str(node_toml), conv.conversation_id
    code, out, _ = _run(
        capsys,
        "holds",
        "place",
        "--config",
        cfg,
        "--conversation",
        cid,
        "--reason",
        "решение суда № 2-15/2027",
    )
    assert code == 0
    code, out, _ = _run(capsys, "holds", "list", "--config", cfg)
    assert cid in out and "решение суда № 2-15/2027" in out
    code, out, _ = _run(capsys, "purge", "--config", cfg, "--dry-run", "--now", NOW.isoformat())
    assert out.count("\theld") == 2 and "\tpurge" not in out
    code, out, _ = _run(
        capsys,
        "holds",
        "release",
        "--config",
        cfg,
        "--conversation",
        cid,
        "--reason",
        "отменено 3/2027",
    )
    assert code == 0
    code, _, err = _run(
        capsys, "holds", "release", "--config", cfg, "--conversation", cid, "--reason", "again"
    )
    assert code == 1 and "нет" in err
    code, _, err = _run(
        capsys,
        "holds",
        "place",
        "--config",
        cfg,
        "--conversation",
        "00000000-0000-4000-8000-000000000000",
        "--reason",
        "x",
    )
    assert code == 1 and "no stored conversation" in err  # refused (docs/operations.md)
    with store.read() as conn:
        events = [e for e in audit.events(conn) if e.kind.startswith("hold.")]
    assert [(e.kind, e.details["reason"]) for e in events] == [
        ("hold.placed", "решение суда № 2-15/2027"),
        ("hold.released", "отменено 3/2027"),
    ]
    assert all(e.actor.startswith("cli:") for e in events)


def documented_openssl_steps(tool: str = "openssl") -> list[str]:
    """The openssl lines docs/purge-and-audit.md gives for checking a report without the
    gateway, as written there (so the doc cannot drift from what works): the seal signature's
    (``openssl``), or the TSA token's (``openssl ts``)."""
    doc = (Path(__file__).parents[3] / "docs" / "purge-and-audit.md").read_text(encoding="utf-8")
    block = doc.split("without the gateway:", 1)[1].split("```sh\n", 1)[1]
    lines = block.split("```", 1)[0].splitlines()
    steps = [line.split("   #", 1)[0].strip() for line in lines if line.startswith("openssl ")]
    return [step for step in steps if step.startswith("openssl ts ") == (tool == "openssl ts")]


def test_a_report_checks_with_openssl_as_documented(
    store: Store, ring: KekRing, node_toml: Path, seal: SigningKey, tmp_path: Path, capsys
) -> None:
    """`gateway purge report --out` writes the signed bytes, the signature and the seal's
    certificate; openssl alone then verifies them with the doc's own commands — and refuses a
    report changed by one byte."""
    openssl = require_tool("openssl", "openssl")
    with store.transaction() as conn:
        add_conversation(conn, ring, long_ago(500), count=2)
    cfg = str(node_toml)
    code, out, err = _run(capsys, "purge", "--config", cfg)
    assert code == 0, err
    run_id = out.split()[1].rstrip(":")
    folder = tmp_path / f"report-{run_id}"
    code, out, err = _run(capsys, "purge", "report", "--config", cfg, run_id, "--out", str(folder))
    assert code == 0, err
    assert json.loads(out)["run_id"] == run_id
    assert (folder / "seal.pem").read_bytes() == seal.certificate.public_bytes(Encoding.PEM)

    def openssl_steps() -> subprocess.CompletedProcess[str]:
        # As pasted into a shell (the first step redirects its output), openssl from PATH.
        steps = documented_openssl_steps()
        assert len(steps) == 2, steps
        for step in steps:
            done = subprocess.run(
                ["bash", "-c", step],
                cwd=folder,
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
                env={**os.environ, "PATH": f"{Path(openssl).parent}:{os.environ['PATH']}"},
            )
        return done

    verified = openssl_steps()
    assert verified.returncode == 0 and "Verified OK" in verified.stdout, verified
    signed = (folder / "report.json").read_bytes()
    (folder / "report.json").write_bytes(signed.replace(b'"purged":2', b'"purged":1'))
    assert (folder / "report.json").read_bytes() != signed
    refused = openssl_steps()
    assert refused.returncode != 0 and "Verification failure" in refused.stdout, refused

"""Issue finding (purge-trust): after a seal rotation `gateway purge verify-report` and `gateway
audit verify` trusted only the first seal generation, and the scheduled job kept signing with the
generation it took when `serve` started. Now every job run signs with the generation in force,
and the verifiers take every seal generation of this node from its manifest."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.app.purge import run_purge
from gateway.app.retention import PolicySet
from gateway.app.scheduled import PURGE, job_bodies
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.keys.kek import FileKek, KekRing
from gateway.exchange.existence import CHECKPOINTS_TRIED
from gateway.jobs.scheduler import JobRun
from gateway.main import main
from gateway.store import Store, migrate, open_store
from gateway.store import audit as audit_store
from gateway.store import purge as purge_store
from gateway.store.tables import audit_checkpoints, purge_reports
from tests.app.purge.test_purge_cli import documented_openssl_steps
from tests.crypto.rotation.conftest import (
    BODY,
    NodeDir,
    checkpoint_signed_now,
    make_tsa,
    timestamped_checkpoint,
)


class _Node:
    def __init__(self, store, keys) -> None:
        self.store, self.keys, self.body_id = store, keys, BODY
        # No message is stored here: a KEK of its own is enough for the purge's shredding.
        self.kek_ring = KekRing.single(FileKek("kek-test", secrets.token_bytes(32)))


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_reports_and_checkpoints_verify_across_a_seal_rotation(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    config = node.config
    Path(config.node.data_dir).mkdir(parents=True, exist_ok=True)
    store = open_store(config.database_url)
    migrate(store.engine)
    try:
        first = _purge_once(node, store)
        _switch_seal_to_generation_2(node, capsys)
        second = _purge_once(node, store)
    finally:
        store.dispose()

    config_arg = ("--config", str(node.config_path))
    for run_id in (first, second):
        code, out = _cli(capsys, "purge", "verify-report", *config_arg, run_id)
        assert code == 0, out
    code, out = _cli(capsys, "audit", "verify", *config_arg)
    assert code == 0, out
    # Each run was signed by the generation in force when it ran, not the one loaded first.
    reread = node.keystore()
    store = open_store(config.database_url)
    try:
        with store.read() as conn:
            signed_by = [
                purge_store.get_report(conn, run_id).certificate for run_id in (first, second)
            ]
        generations = [
            reread.load("seal", generation=n).certificate.public_bytes(Encoding.DER) for n in (1, 2)
        ]
    finally:
        reread.close()
        store.dispose()
    assert signed_by == generations


# --- a revoked seal generation (the purge-trust issue's "not yet checked") --------------------


def _purge_once(node: NodeDir, store: Store) -> str:
    keys = node.keystore()
    try:
        now = datetime.now(UTC)
        return job_bodies(node.config, _Node(store, keys))[PURGE](
            JobRun(PURGE, now, now, f"{BODY}@test:1")
        ).run_id
    finally:
        keys.close()


def _switch_seal_to_generation_2(node: NodeDir, capsys: pytest.CaptureFixture[str]) -> None:
    config_arg = ("--config", str(node.config_path))
    for step in (
        ("keys", "rotate", "seal", "--demo-ca", str(node.ca_dir)),
        ("keys", "activate", "seal", "--generation", "2", "--at", "now"),
    ):
        code, out = _cli(capsys, *step, *config_arg)
        assert code == 0, out


def _revoke_generation_1(node: NodeDir, capsys: pytest.CaptureFixture[str], reason: str) -> None:
    code, out = _cli(
        capsys,
        *("keys", "revoke", "seal", "--generation", "1", "--reason", reason),
        *("--demo-ca", str(node.ca_dir), "--config", str(node.config_path)),
    )
    assert code == 0, out


def test_a_checkpoint_dated_after_its_seal_s_revocation_is_refused(
    node_on_each_store: tuple[NodeDir, Store], capsys: pytest.CaptureFixture[str]
) -> None:
    """Whoever still holds a superseded and revoked seal key cannot add a checkpoint (or a
    report) that `audit verify` takes: the time it states is after the revocation."""
    node, store = node_on_each_store
    first = _purge_once(node, store)
    _switch_seal_to_generation_2(node, capsys)
    keys = node.keystore()
    old_seal = keys.load("seal", generation=1)  # the key stays on disk after its revocation
    keys.close()
    _revoke_generation_1(node, capsys, "superseded")
    config_arg = ("--config", str(node.config_path))
    for step in (("purge", "verify-report", *config_arg, first), ("audit", "verify", *config_arg)):
        code, out = _cli(capsys, *step)
        assert code == 0, out  # signed before the revocation: still holds

    forged = checkpoint_signed_now(store, old_seal)
    seq, digest = (
        json.loads(forged.statement)["seq"],
        bytes.fromhex(json.loads(forged.statement)["hash"]),
    )
    with store.transaction() as conn:
        audit_store.store_checkpoint(
            conn,
            seq=seq,
            hash=digest,
            at=datetime.now(UTC),
            statement=forged.statement,
            signature=forged.signature,
            certificate=forged.certificate,
        )
    code, out = _cli(capsys, "audit", "verify", *config_arg)
    assert code == 1, out
    assert "revoked" in out and "superseded" in out


def test_a_compromised_seal_s_report_holds_with_a_trusted_checkpoint_made_before(
    node_on_each_store: tuple[NodeDir, Store], capsys: pytest.CaptureFixture[str]
) -> None:
    """Generation 1 signed a report, generation 2 then took over and its checkpoint covered the
    run; when generation 1 is later found compromised, that checkpoint proves the report
    existed before, so the report and the trail still verify."""
    node, store = node_on_each_store
    config_arg = ("--config", str(node.config_path))
    first = _purge_once(node, store)
    for _ in range(CHECKPOINTS_TRIED):  # more of generation 1's than a lookup examines
        code, out = _cli(capsys, "audit", "checkpoint", *config_arg)
        assert code == 0, out
    _switch_seal_to_generation_2(node, capsys)
    _purge_once(node, store)  # its checkpoint, sealed by generation 2, covers the first run
    _revoke_generation_1(node, capsys, "keyCompromise")
    code, out = _cli(capsys, "purge", "verify-report", *config_arg, first)
    assert code == 0, out
    code, out = _cli(capsys, "audit", "verify", *config_arg)
    assert code == 0, out


def test_a_compromised_seal_s_report_without_earlier_evidence_is_not_confirmed(
    node_on_each_store: tuple[NodeDir, Store], capsys: pytest.CaptureFixture[str]
) -> None:
    """Revoked for compromise before any trusted checkpoint covered the run: the report's time
    is only the key holder's word, so it is not confirmed, and `audit verify` asks for a
    checkpoint of the seal in force; once made, the trail verifies, the report still not."""
    node, store = node_on_each_store
    first = _purge_once(node, store)
    _switch_seal_to_generation_2(node, capsys)
    _revoke_generation_1(node, capsys, "keyCompromise")
    config_arg = ("--config", str(node.config_path))
    code, out = _cli(capsys, "purge", "verify-report", *config_arg, first)
    assert code == 1, out
    assert "НЕ ПОДТВЕРЖДЁН" in out and "key compromise" in out
    code, out = _cli(capsys, "audit", "verify", *config_arg)
    assert code == 1, out
    assert "checkpoint-untrusted" in out and "gateway audit checkpoint" in out

    code, out = _cli(capsys, "audit", "checkpoint", *config_arg)
    assert code == 0, out
    code, out = _cli(capsys, "audit", "verify", *config_arg)
    assert code == 0, out
    code, out = _cli(capsys, "purge", "verify-report", *config_arg, first)
    assert code == 1, "a checkpoint made after the revocation proves nothing about before"


def test_a_compromised_seal_s_report_holds_by_its_checkpoint_s_tsa_timestamp(
    node_on_each_store: tuple[NodeDir, Store], capsys: pytest.CaptureFixture[str]
) -> None:
    """With a TSA, a checkpoint proves its time by the TSA's token, not by the seal's word: a
    report of generation 1 stays confirmed after generation 1 is revoked for compromise, with
    no checkpoint of another generation — and not once the stored token is altered."""
    node, store = node_on_each_store
    config_arg = ("--config", str(node.config_path))
    first = _purge_once(node, store)
    checkpoint_id = timestamped_checkpoint(
        node, store
    ).checkpoint_id  # generation 1's, over the run
    _switch_seal_to_generation_2(node, capsys)
    _revoke_generation_1(node, capsys, "keyCompromise")
    code, out = _cli(capsys, "purge", "verify-report", *config_arg, first)
    assert code == 0, out
    code, out = _cli(capsys, "audit", "verify", *config_arg)
    assert code == 0, out

    with store.transaction() as conn:
        token = conn.execute(
            sa.select(audit_checkpoints.c.timestamp).where(audit_checkpoints.c.id == checkpoint_id)
        ).scalar_one()
        altered = token[:-40] + bytes(b ^ 0x01 for b in token[-40:])
        conn.execute(
            audit_checkpoints.update()
            .where(audit_checkpoints.c.id == checkpoint_id)
            .values(timestamp=altered)
        )
    code, out = _cli(capsys, "purge", "verify-report", *config_arg, first)
    assert code == 1 and "key compromise" in out, out
    code, out = _cli(capsys, "audit", "verify", *config_arg)
    assert code == 1 and "checkpoint-untrusted" in out, out


def test_a_compromised_seal_s_report_holds_by_its_own_tsa_timestamp_which_openssl_checks(
    node_on_each_store: tuple[NodeDir, Store], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """With `[tsa] url` the report itself carries a TSA's token over its signature: after its
    seal is revoked for compromise it still holds with no checkpoint at all, the token goes out
    with `purge report --out` as report.tst, and openssl (another stack) verifies it against
    the signature it covers — and refuses it against another."""
    node, store = node_on_each_store
    keys = node.keystore()
    try:
        now = datetime.now(UTC)
        made = run_purge(
            store,
            PolicySet.from_config(node.config),
            now,
            seal=keys.seal(),
            actor="test",
            timestamper=make_tsa(node.ca(), at=now),
        )
    finally:
        keys.close()
    assert made.timestamp is not None
    with store.read() as conn:
        assert audit_store.checkpoints(conn) == []  # the token alone must carry the proof
    _switch_seal_to_generation_2(node, capsys)
    _revoke_generation_1(node, capsys, "keyCompromise")
    config_arg = ("--config", str(node.config_path))
    code, out = _cli(capsys, "purge", "verify-report", *config_arg, made.run_id)
    assert code == 0, out

    out_dir = tmp_path / "report"
    code, out = _cli(capsys, "purge", "report", *config_arg, made.run_id, "--out", str(out_dir))
    assert code == 0, out
    assert (out_dir / "report.tst").read_bytes() == made.timestamp
    shutil.copy(node.ca_dir / DemoCA.CERT_FILE, out_dir / "TSA-CA.pem")  # the TSA's CA here

    def documented_steps() -> list[subprocess.CompletedProcess[str]]:
        # docs/purge-and-audit.md's own lines, as pasted into a shell in the report's folder.
        steps = documented_openssl_steps("openssl ts")
        assert [s.split()[2] for s in steps] == ["-verify", "-reply"], steps
        return [
            subprocess.run(["bash", "-c", step], cwd=out_dir, capture_output=True, text=True)
            for step in steps
        ]

    verified, shown = documented_steps()
    assert verified.returncode == 0 and "Verification: OK" in verified.stdout, verified
    assert f"{now:%b} " in shown.stdout and f" {now.year} GMT" in shown.stdout, shown
    (out_dir / "report.sig").write_bytes(made.signature[:-1] + bytes([made.signature[-1] ^ 1]))
    refused, _shown = documented_steps()
    assert refused.returncode != 0 and "Verification: OK" not in refused.stdout, refused

    with store.transaction() as conn:
        conn.execute(
            purge_reports.update()
            .where(purge_reports.c.run_id == made.run_id)
            .values(timestamp=made.timestamp[:-40] + bytes(b ^ 1 for b in made.timestamp[-40:]))
        )
    code, out = _cli(capsys, "purge", "verify-report", *config_arg, made.run_id)
    assert code == 1 and "key compromise" in out, out

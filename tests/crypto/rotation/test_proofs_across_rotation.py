"""Issue finding (purge-trust): after a seal rotation `gateway purge verify-report` and `gateway
audit verify` trusted only the first seal generation, and the scheduled job kept signing with the
generation it took when `serve` started. Now every job run signs with the generation in force,
and the verifiers take every seal generation of this node from its manifest."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.app.scheduled import PURGE, job_bodies
from gateway.crypto.keys.kek import FileKek, KekRing
from gateway.exchange.existence import CHECKPOINTS_TRIED
from gateway.jobs.scheduler import JobRun
from gateway.main import main
from gateway.store import Store, migrate, open_store
from gateway.store import audit as audit_store
from gateway.store import purge as purge_store
from gateway.store.tables import audit_checkpoints
from tests.crypto.rotation.conftest import (
    BODY,
    NodeDir,
    checkpoint_signed_now,
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

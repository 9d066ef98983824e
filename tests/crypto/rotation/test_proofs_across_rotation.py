"""Issue finding (purge-trust): after a seal rotation `gateway purge verify-report` and `gateway
audit verify` trusted only the first seal generation, and the scheduled job kept signing with the
generation it took when `serve` started. Now every job run signs with the generation in force,
and the verifiers take every seal generation of this node from its manifest."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.app.scheduled import PURGE, job_bodies
from gateway.crypto.keys.kek import FileKek, KekRing
from gateway.jobs.scheduler import JobRun
from gateway.main import main
from gateway.store import migrate, open_store
from gateway.store import purge as purge_store
from tests.crypto.rotation.conftest import BODY, NodeDir


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
    keys = node.keystore()
    try:
        purge = job_bodies(config, _Node(store, keys))[PURGE]
        now = datetime.now(UTC)
        first = purge(JobRun(PURGE, now, now, f"{BODY}@test:1"))

        config_arg = ("--config", str(node.config_path))
        for step in (
            ("keys", "rotate", "seal", "--demo-ca", str(node.ca_dir)),
            ("keys", "activate", "seal", "--generation", "2", "--at", "now"),
        ):
            code, out = _cli(capsys, *step, *config_arg)
            assert code == 0, out

        now = datetime.now(UTC)
        second = purge(JobRun(PURGE, now, now, f"{BODY}@test:1"))
    finally:
        keys.close()
        store.dispose()

    for run in (first, second):
        code, out = _cli(capsys, "purge", "verify-report", *config_arg, run.run_id)
        assert code == 0, out
    code, out = _cli(capsys, "audit", "verify", *config_arg)
    assert code == 0, out
    # Each run was signed by the generation in force when it ran, not the one loaded first.
    reread = node.keystore()
    store = open_store(config.database_url)
    try:
        with store.read() as conn:
            signed_by = [
                purge_store.get_report(conn, r.run_id).certificate for r in (first, second)
            ]
        generations = [
            reread.load("seal", generation=n).certificate.public_bytes(Encoding.DER) for n in (1, 2)
        ]
    finally:
        reread.close()
        store.dispose()
    assert signed_by == generations

"""CIS Art. 11.3: a document an official must sign is never sent with the seal alone.

Issue finding: between ``keys revoke official:chief`` and a new generation's activation the node
answered 202 and sent documents sealed but without the official's signature; the peer refused
them for good. Now the submission is refused, clearly, and nothing is stored or queued.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.config import NodeConfig
from gateway.demo.setup import build_world
from gateway.exchange.node import Node
from gateway.model.problems import DocumentRejected
from tests.integration.exchange_world import padded_request, row_counts

ROOT = Path(__file__).resolve().parents[2]


REVOKED_KEYS = [
    # (key, problem code, what the remedy must name)
    ("official:chief", "OFFICIAL_KEY_UNAVAILABLE", "keys"),
    # Issue #19: revoking the active seal answered 500; now a clear refusal.
    ("seal", "SEAL_KEY_UNAVAILABLE", "keys activate seal"),
]


@pytest.mark.parametrize(("key", "code", "remedy"), REVOKED_KEYS, ids=["official", "seal"])
def test_a_revoked_key_refuses_the_submission_clearly_and_stores_nothing(
    tmp_path: Path, key: str, code: str, remedy: str
) -> None:
    world = build_world(tmp_path, now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))
    config = world.nodes["RU-FSSP"].config_path
    node = Node.from_config(NodeConfig.from_toml(config))
    try:
        accepted, _ = node.submit(padded_request(), actor="test")  # both keys can sign: queued
        assert accepted.kind == "Request"
        revoked = subprocess.run(
            [
                *(sys.executable, "-m", "gateway", "keys", "revoke", key),
                *("--generation", "1", "--reason", "keyCompromise", "--config", str(config)),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        assert revoked.returncode == 0, revoked.stderr
        before = row_counts(node.store)

        with pytest.raises(DocumentRejected) as refused:
            node.submit(padded_request(), actor="test")

        problem = refused.value.problems[0]
        assert problem.code == code
        assert "11.3" in problem.article
        assert remedy in problem.remedy_ru  # says what to do
        assert row_counts(node.store) == before, "nothing stored, nothing queued"
    finally:
        node.close()

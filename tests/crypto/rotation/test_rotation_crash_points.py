"""SIGKILL at the key rotation's named crash points (gateway/crashpoints.py), through the real
``gateway keys`` command in a child process, on SQLite and PostgreSQL:

* ``rotation.generated``: the new generation's key, certificate and manifest entry written, its
  ``key.rotated`` event not. Rotating again records that event once and makes no second
  generation.
* ``rotation.activated``: the switch written in the manifest, its ``key.activated`` event not.
  Activating again (the same generation and time) records it once, and a further repeat changes
  nothing.

After each kill and each recovery ``gateway audit verify`` passes, the manifest holds no
duplicate, and the new generation loads and signs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.crashpoints import ENV_VAR
from gateway.crypto.keys.generations import Activation, read_generations
from gateway.store import Store, audit
from tests.crypto.rotation.conftest import NodeDir

ROOT = Path(__file__).resolve().parents[3]
CLI = "import sys; from gateway.main import main; sys.exit(main(sys.argv[1:]))"


def gateway(node: NodeDir, *args: str, point: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if point:
        env[ENV_VAR] = point
    return subprocess.run(
        [sys.executable, "-c", CLI, *args, "--config", str(node.config_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=180,
        check=False,
    )


def ok(node: NodeDir, *args: str) -> str:
    done = gateway(node, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def killed(node: NodeDir, point: str, *args: str) -> None:
    done = gateway(node, *args, point=point)
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr


def events(store: Store, kind: str) -> list[tuple[str, object]]:
    with store.read() as conn:
        return [(e.subjects["key"], e.details.get("at")) for e in audit.events(conn, kinds=(kind,))]


def verified(node: NodeDir) -> None:
    ok(node, "audit", "verify")


def test_a_rotation_killed_before_its_audit_is_completed_once(
    node_on_each_store: tuple[NodeDir, Store],
) -> None:
    node, store = node_on_each_store
    rotate = ("keys", "rotate", "seal", "--demo-ca", str(node.ca_dir))
    killed(node, "rotation.generated", *rotate)
    manifest = read_generations(node.keys_dir, "seal")
    assert [g.number for g in manifest.generations] == [1, 2], "the generation was written"
    assert events(store, "key.rotated") == []
    verified(node)

    ok(node, *rotate)
    manifest = read_generations(node.keys_dir, "seal")
    assert [g.number for g in manifest.generations] == [1, 2], "no second generation made"
    assert events(store, "key.rotated") == [("seal.2", None)]
    verified(node)

    ok(node, *rotate)  # rotating once more, the audited generation pending: a new one, normally
    assert [g.number for g in read_generations(node.keys_dir, "seal").generations] == [1, 2, 3]
    assert events(store, "key.rotated") == [("seal.2", None), ("seal.3", None)]
    key = node.keystore().load("seal", generation=2, at=datetime.now(UTC))
    assert key.sign(b"after the crash")


@pytest.mark.parametrize("repeats", [1, 2])
def test_an_activation_killed_before_its_audit_is_completed_once(
    node_on_each_store: tuple[NodeDir, Store], repeats: int
) -> None:
    node, store = node_on_each_store
    ok(node, "keys", "rotate", "seal", "--demo-ca", str(node.ca_dir))
    at = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)
    activate = ("keys", "activate", "seal", "--generation", "2", "--at", at.isoformat())
    killed(node, "rotation.activated", *activate)
    assert Activation(2, at) in read_generations(node.keys_dir, "seal").activations
    assert events(store, "key.activated") == []
    verified(node)

    for _ in range(repeats):
        ok(node, *activate)
    activations = read_generations(node.keys_dir, "seal").activations
    assert activations.count(Activation(2, at)) == 1, activations
    assert events(store, "key.activated") == [("seal.2", at.isoformat())]
    verified(node)
    assert node.keystore().active_generation("seal", "", at + timedelta(seconds=1)) == 2

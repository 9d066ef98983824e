"""``gateway directory import`` killed at its crash points (gateway/crashpoints.py), then run
again with the same file: the node ends on the new directory with one ``directory.imported``
event, never on a half-written file, and the audit chain verifies. SQLite and PostgreSQL.

``directory.written``: the new file written beside the old, not swapped in (the old stays).
``directory.swapped``: swapped in, not yet audited (the repeated import writes the event,
once, instead of refusing the version as not newer).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.config import KeysSection, NodeConfig
from gateway.crashpoints import ENV_VAR
from gateway.crypto.keys.keystore import KeyStore
from gateway.demo.setup import DEMO_PASSPHRASE, DEPOSITARY_ID, DemoWorld
from gateway.exchange.directory import build_directory_xml
from gateway.exchange.directory_signing import sign_directory
from gateway.exchange.node import load_directory
from tests.integration.exchange_world import (
    GATEWAY,
    audit_rows,
    node_config,
    open_node_store,
    write_toml,
)


def _depositary_seal(world: DemoWorld):  # type: ignore[no-untyped-def]
    keys_dir = world.root / "pki" / "depositary" / DEPOSITARY_ID
    section = KeysSection(dir=keys_dir)
    keys = KeyStore(
        section, DEPOSITARY_ID, environ={section.passphrase_env: DEMO_PASSPHRASE.decode()}
    )
    return keys.seal()


def _gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GATEWAY), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@pytest.mark.parametrize("point", ["directory.written", "directory.swapped"])
def test_directory_import_killed_then_repeated_installs_once(
    world: DemoWorld, tmp_path: Path, point: str, dialect: str, request: pytest.FixtureRequest
) -> None:
    tag = f"dir-{dialect}-{point.replace('.', '-')}"
    url = request.getfixturevalue("pg_schema")("dir") if dialect == "postgresql" else ""
    config_path = node_config(world, "KZ-MJ", tag, database_url=url)
    # A directory file of its own: the world's is shared by the session's other tests.
    raw = tomllib.loads(config_path.read_text("utf-8"))
    private = tmp_path / "directory.xml"
    shutil.copyfile(NodeConfig.from_toml(config_path).trust.directory_file, private)
    raw["trust"]["directory_file"] = str(private)
    write_toml(config_path, raw)
    config = NodeConfig.from_toml(config_path)
    old_bytes = private.read_bytes()
    old = load_directory(config, at=datetime.now(UTC))
    newer = dataclasses.replace(
        old, version=old.version + 1, issued_at=old.issued_at + timedelta(minutes=1)
    )
    new_file = tmp_path / "directory-new.xml"
    new_file.write_bytes(sign_directory(build_directory_xml(newer), _depositary_seal(world)))
    command = ("directory", "import", "--config", str(config_path), str(new_file))
    store = open_node_store(config_path)
    try:
        killed = _gateway(*command, env={ENV_VAR: point})
        assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
        expected = old_bytes if point == "directory.written" else new_file.read_bytes()
        assert private.read_bytes() == expected, "the old file or the new, never a mix"
        assert audit_rows(store, "directory.imported") == []

        for _ in range(2):  # the repeat completes the import; one more changes nothing
            done = _gateway(*command)
            assert done.returncode == 0, done.stdout + done.stderr
            assert private.read_bytes() == new_file.read_bytes()
            events = audit_rows(store, "directory.imported")
            assert [e["details"]["version"] for e in events] == [newer.version]
        verified = _gateway("audit", "verify", "--config", str(config_path))
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        store.dispose()

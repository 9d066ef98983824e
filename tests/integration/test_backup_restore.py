"""``gateway backup`` of a node holding received messages, taken while the node has its store
open; the node destroyed; ``gateway restore`` into new folders: the audit trail verifies and
every message reads (decrypted with the restored KEK) as before. A backup changed after it was
taken, or a restore onto an existing store, is refused without writing anything."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.cli.errors import ExitCode
from gateway.config import NodeConfig
from gateway.demo.setup import DemoWorld
from gateway.exchange.local_service import LocalNodeService
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from tests.cli.conftest import gateway
from tests.integration.exchange_world import (
    OPERATOR,
    READ_PURPOSE,
    node_config,
    node_pair,
    padded_request,
)


async def _bodies(node: Node, message_ids: list[str]) -> dict[str, Any]:
    service = LocalNodeService(node, ThreadPoolExecutor(1))
    views = {m: await service.message(m, actor=OPERATOR, purpose=READ_PURPOSE) for m in message_ids}
    return {m: view.body for m, view in views.items()}


def _exchange(ru: Node, kz: Node, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        header, _ = ru.submit(padded_request(), actor="test")
        (claim,) = [c for c in ru.claim_due("w") if c.message_id == header.message_id]
        assert kz.receive(ru.body_id, ru.outgoing(claim).wire).disposition is Disposition.ACCEPTED
        ids.append(header.message_id)
    return ids


def _restored_config(original: NodeConfig, backup: Path, root: Path) -> Path:
    """The backed-up node.toml, its folders moved to ``root`` (the old node is gone), its trust
    files and passphrase where the world keeps them."""
    raw = tomllib.loads((backup / "node.toml").read_text("utf-8"))
    raw["node"]["data_dir"] = str(root / "data")
    raw["keys"]["dir"] = str(root / "keys")
    raw["keys"]["passphrase_file"] = str(original.keys.passphrase_file)
    trust = original.trust
    raw["trust"] = {
        "ca_file": str(trust.ca_file),
        "crl_files": [str(p) for p in trust.crl_files],
        "depositary_ca_file": str(trust.depositary_ca_file),
        "directory_file": str(trust.directory_file),
    }
    lines = []
    for section, table in raw.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    root.mkdir(parents=True, exist_ok=True)
    path = root / "node.toml"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def backed_up(world: DemoWorld, tmp_path: Path) -> tuple[NodeConfig, Path, dict[str, Any]]:
    """KZ-MJ with three received messages, backed up while its store is open."""
    import asyncio

    with node_pair(world, "backup") as (ru, kz):
        ids = _exchange(ru, kz, 3)
        bodies = asyncio.run(_bodies(kz, ids))
        backup = tmp_path / "backup"
        run = gateway("backup", "--config", str(kz.config.path), "--out", str(backup))
        assert run.code == 0, run.err
        config = kz.config
    return config, backup, bodies


def test_backup_destroy_restore_then_every_message_reads(
    backed_up: tuple[NodeConfig, Path, dict[str, Any]], tmp_path: Path
) -> None:
    import asyncio

    original, backup, bodies = backed_up
    assert all(body is not None for body in bodies.values())
    assert _mode(backup) == 0o700
    files = [p for p in backup.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"gateway.db", "MANIFEST.json", "node.toml", "kek.key"}
    assert all(_mode(p) == 0o600 for p in files), {p.name: oct(_mode(p)) for p in files}

    shutil.rmtree(original.node.data_dir)  # the node is destroyed

    restored = _restored_config(original, backup, tmp_path / "new-node")
    run = gateway("restore", "--config", str(restored), "--from", str(backup))
    assert run.code == 0, run.err
    config = NodeConfig.from_toml(restored)
    assert _mode(config.node.data_dir) == 0o700
    assert _mode(config.node.data_dir / "gateway.db") == 0o600
    assert _mode(config.keys.dir / "kek.key") == 0o600

    audit = gateway("audit", "verify", "--config", str(restored))
    assert audit.code == 0, audit.out + audit.err

    node = Node.from_config(config)
    try:
        assert asyncio.run(_bodies(node, list(bodies))) == bodies
    finally:
        node.close()


def test_a_changed_backup_or_an_existing_store_is_refused(
    backed_up: tuple[NodeConfig, Path, dict[str, Any]], tmp_path: Path
) -> None:
    original, backup, _ = backed_up
    restored = _restored_config(original, backup, tmp_path / "new-node")
    seal = backup / "keys" / "seal.crt.pem"
    kept = seal.read_bytes()
    seal.write_bytes(kept.replace(b"A", b"B", 1))
    run = gateway("restore", "--config", str(restored), "--from", str(backup))
    assert run.code == ExitCode.REFUSED and "[BACKUP_CORRUPT]" in run.err, run.err
    assert "seal.crt.pem" in run.err
    assert not (tmp_path / "new-node" / "data").exists()
    assert not (tmp_path / "new-node" / "keys").exists()
    seal.write_bytes(kept)

    store = tmp_path / "new-node" / "data" / "gateway.db"
    store.parent.mkdir()
    store.write_bytes(b"another node's store")
    run = gateway("restore", "--config", str(restored), "--from", str(backup))
    assert run.code == ExitCode.USAGE and "[FILE_EXISTS]" in run.err, run.err
    assert "gateway.db" in run.err and store.read_bytes() == b"another node's store"

    run = gateway("restore", "--config", str(original.path), "--from", str(backup))
    assert run.code == ExitCode.USAGE and "[FILE_EXISTS]" in run.err, run.err  # its keys


def test_postgresql_backup_with_pg_dump_and_restore_after_the_schema_is_gone(
    world: DemoWorld, pg_admin: sa.Engine, pg_schema: Callable[[str], str], tmp_path: Path
) -> None:
    import asyncio

    url = pg_schema("backup")
    ru, kz = (
        Node.from_config(
            NodeConfig.from_toml(node_config(world, body, f"backup-pg-{body}", database_url=u))
        )
        for body, u in (("RU-FSSP", pg_schema("backup-sender")), ("KZ-MJ", url))
    )
    try:
        ids = _exchange(ru, kz, 2)
        bodies = asyncio.run(_bodies(kz, ids))
        backup = tmp_path / "backup"
        run = gateway("backup", "--config", str(kz.config.path), "--out", str(backup))
        assert run.code == 0, run.err
        config = kz.config
    finally:
        ru.close()
        kz.close()
    assert _mode(backup / "database.pgdump") == 0o600
    schema = url.rsplit("%3D", 1)[1]
    with pg_admin.begin() as conn:  # the node's data is gone
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))

    restored = _restored_config(config, backup, tmp_path / "new-node")
    run = gateway("restore", "--config", str(restored), "--from", str(backup))
    assert run.code == 0, run.err
    audit = gateway("audit", "verify", "--config", str(restored))
    assert audit.code == 0, audit.out + audit.err
    node = Node.from_config(NodeConfig.from_toml(restored))
    try:
        assert asyncio.run(_bodies(node, list(bodies))) == bodies
    finally:
        node.close()

    run = gateway("restore", "--config", str(restored), "--from", str(backup))
    assert run.code == ExitCode.USAGE and "[FILE_EXISTS]" in run.err, run.err


def test_a_backup_of_a_node_without_a_store_leaves_no_folder(
    world: DemoWorld, tmp_path: Path
) -> None:
    config = node_config(world, "KZ-MJ", "backup-never-started")
    out = tmp_path / "backup"
    run = gateway("backup", "--config", str(config), "--out", str(out))
    assert run.code == ExitCode.UNAVAILABLE and "[FILE_NOT_FOUND]" in run.err, run.err
    assert "Traceback" not in run.err and not out.exists()


def test_a_backup_whose_file_names_climb_out_of_the_key_folder_is_refused(
    backed_up: tuple[NodeConfig, Path, dict[str, Any]], tmp_path: Path
) -> None:
    """MANIFEST.json names the files to restore; a hostile (or tampered) backup names a "key"
    ``keys/../…`` — with a symlink inside the backup, as many ``..`` as it likes — and the
    restore writes it wherever that points: outside the key folder, anywhere the gateway's user
    may create a file. Such a backup is refused (BACKUP_INVALID) before anything is written."""
    original, backup, _ = backed_up
    root = tmp_path / "new-node"
    restored = _restored_config(original, backup, root)
    manifest = json.loads((backup / "MANIFEST.json").read_text("utf-8"))
    planted = b"ssh-ed25519 AAAA... attacker\n"
    # Beside the key folder: keys/../planted is the backup's own ./planted.
    (backup / "planted").write_bytes(planted)
    # Anywhere: keys/d is a symlink three folders deep into the backup, so keys/d/../../../x is
    # the backup's pad/x while, on the restoring side, keys/d is a new folder and the same name
    # climbs to tmp_path/x.
    deep = backup / "pad" / "1" / "2" / "3"
    deep.mkdir(parents=True)
    (backup / "pad" / "outside").mkdir()
    (backup / "pad" / "outside" / "authorized_keys").write_bytes(planted)
    (backup / "keys" / "d").symlink_to(deep)
    digest = hashlib.sha256(planted).hexdigest()
    manifest["files"]["keys/../planted"] = digest
    manifest["files"]["keys/d/../../../outside/authorized_keys"] = digest
    (backup / "MANIFEST.json").write_text(json.dumps(manifest), "utf-8")

    run = gateway("restore", "--config", str(restored), "--from", str(backup))
    assert not (root / "planted").exists(), "written beside the key folder"
    assert not (tmp_path / "outside").exists(), "written outside the node's folders"
    assert run.code == ExitCode.REFUSED and "[BACKUP_INVALID]" in run.err, run.err
    assert not (root / "data").exists() and not (root / "keys").exists()


def test_a_restore_that_fails_on_the_key_folder_leaves_no_restored_store(
    backed_up: tuple[NodeConfig, Path, dict[str, Any]], tmp_path: Path
) -> None:
    """The key folder is checked for clashes with ``exists()``, which a dangling symlink (a key
    file pointing at an unmounted credential store) passes; the exclusive create then fails —
    after the store was already restored. The operator is left with a store and half its keys, and
    every new attempt is refused (FILE_EXISTS: the restored key files, then gateway.db) until
    they are removed by hand:
    a failed restore must leave nothing behind, as a failed backup does."""
    original, backup, _ = backed_up
    root = tmp_path / "new-node"
    restored = _restored_config(original, backup, root)
    keys = root / "keys"
    keys.mkdir(mode=0o700)
    (keys / "kek.key").symlink_to(tmp_path / "unmounted" / "kek.key")

    run = gateway("restore", "--config", str(restored), "--from", str(backup))
    assert run.code != 0, run.out
    assert "Traceback" not in run.err, run.err
    assert not (root / "data" / "gateway.db").exists(), "a store restored without its keys"
    assert sorted(p.name for p in keys.iterdir()) == ["kek.key"], "half the keys restored"

    (keys / "kek.key").unlink()  # the operator fixes what the error named, and runs it again
    run = gateway("restore", "--config", str(restored), "--from", str(backup))
    assert run.code == 0, run.err

"""A running node takes a new directory version without restart, and refuses a rollback."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

from gateway.config import KeysSection, NodeConfig
from gateway.crypto.keys.keystore import KeyStore
from gateway.demo.setup import DEMO_PASSPHRASE, DEPOSITARY_ID, DemoWorld
from gateway.exchange.directory import build_directory_xml
from gateway.exchange.directory_signing import sign_directory
from gateway.exchange.node import Node
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import node_config


def _depositary(world: DemoWorld) -> KeyStore:
    keys_dir = world.root / "pki" / "depositary" / DEPOSITARY_ID
    return KeyStore(
        KeysSection(dir=keys_dir),
        DEPOSITARY_ID,
        environ={KeysSection(dir=keys_dir).passphrase_env: DEMO_PASSPHRASE.decode()},
    )


async def _wait_for(predicate, seconds: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_new_directory_version_is_taken_live_and_a_rollback_is_refused(
    world: DemoWorld,
) -> None:
    config = NodeConfig.from_toml(node_config(world, "KZ-MJ", "reload"))
    node = Node.from_config(config)
    runtime = NodeRuntime(node, directory_poll_seconds=0.1)
    await runtime.start(deliver=False)
    directory_file = config.trust.directory_file
    original = directory_file.read_bytes()
    depositary = _depositary(world).seal()
    try:
        old = node.directory
        assert old.version == 1
        newer = dataclasses.replace(old, version=2, issued_at=old.issued_at + timedelta(minutes=1))
        directory_file.write_bytes(sign_directory(build_directory_xml(newer), depositary))
        assert await _wait_for(lambda: node.directory.version == 2)

        # The file goes back to version 1 (a rollback): the node keeps version 2.
        directory_file.write_bytes(original)
        await asyncio.sleep(0.5)
        assert node.directory.version == 2

        # A file not signed by the depositary is refused too.
        forged = dataclasses.replace(
            old, version=3, issued_at=datetime.now(UTC) - timedelta(minutes=1)
        )
        directory_file.write_bytes(build_directory_xml(forged))
        await asyncio.sleep(0.5)
        assert node.directory.version == 2
    finally:
        directory_file.write_bytes(original)
        await runtime.stop()

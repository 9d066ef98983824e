"""Publish first, switch after — enforced (issue #19).

On 9f5ab4f ``keys activate`` switched to a seal the peers' directory did not list yet; every
request sent in between was refused for good (SEAL_NOT_IN_DIRECTORY). Now activation is
refused while the directory version in force does not carry the new certificate, with the key,
the version and what to do; ``--force REASON`` switches anyway and is audited. The version in
force is shown by ``gateway directory show`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import NodeConfig
from gateway.crypto.keys.generations import directory_with_publication, published_from_json
from gateway.crypto.keys.keystore import KeyStore
from gateway.demo.setup import DemoWorld, build_world
from gateway.exchange.directory import build_directory_xml
from gateway.exchange.directory_signing import sign_directory
from gateway.exchange.node import Node, load_directory
from gateway.main import main as gateway
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import audit_rows, open_node_store
from tests.integration.test_directory_reload import _depositary


def _cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = gateway(list(args))
    return code, out.getvalue()


def _publish_next_version(world: DemoWorld, config: Path) -> int:
    """What the depositary does with ``keys publish``: the next signed version, imported."""
    code, out = _cli("keys", "publish", "--json", "--config", str(config))
    assert code == 0, out
    current = load_directory(NodeConfig.from_toml(config), at=datetime.now(UTC))
    new = directory_with_publication(
        current,
        "RU-FSSP",
        published_from_json(json.loads(out)),
        current.version + 1,
        datetime.now(UTC),
    )
    next_file = world.root / "directory-next.xml"
    next_file.write_bytes(sign_directory(build_directory_xml(new), _depositary(world).seal()))
    code, out = _cli("directory", "import", "--config", str(config), str(next_file))
    assert code == 0, out
    return new.version


def _plan_and_revoke(world: DemoWorld, config: Path, switch: datetime) -> None:
    """seal.2 made, published and planned for ``switch``; tls.2 made and revoked."""
    ca = str(world.root / "pki" / "RU" / "ca")
    for role in ("seal", "tls"):
        code, out = _cli("keys", "rotate", role, "--config", str(config), "--demo-ca", ca)
        assert code == 0, out
    _publish_next_version(world, config)
    code, out = _cli(
        "keys",
        "activate",
        "seal",
        "--generation",
        "2",
        "--at",
        switch.isoformat(),
        "--config",
        str(config),
    )
    assert code == 0, out
    code, out = _cli(
        "keys",
        "revoke",
        "tls",
        "--generation",
        "2",
        "--reason",
        "keyCompromise",
        "--config",
        str(config),
    )
    assert code == 0, out


def test_activation_waits_for_the_directory_to_carry_the_certificate(tmp_path: Path) -> None:
    world = build_world(tmp_path, now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))
    config = world.nodes["RU-FSSP"].config_path
    ca = str(world.root / "pki" / "RU" / "ca")
    keys = KeyStore.from_config(NodeConfig.from_toml(config))
    try:
        code, out = _cli("keys", "rotate", "seal", "--config", str(config), "--demo-ca", ca)
        assert code == 0, out
        version = load_directory(NodeConfig.from_toml(config), at=datetime.now(UTC)).version

        code, out = _cli(
            "keys", "activate", "seal", "--generation", "2", "--at", "now", "--config", str(config)
        )
        assert code == 1, out
        assert "KEY_NOT_PUBLISHED" in out
        assert "seal.2" in out and f"directory version {version}" in out
        assert "gateway keys publish" in out and "gateway directory import" in out
        assert keys.seal().generation == 1, "nothing switched"

        # An official's new certificate comes from the officials' CA the directory lists.
        code, out = _cli(
            "keys", "rotate", "official:chief", "--config", str(config), "--demo-ca", ca
        )
        assert code == 0, out
        code, out = _cli(
            "keys",
            "activate",
            "official:chief",
            "--generation",
            "2",
            "--at",
            "now",
            "--config",
            str(config),
        )
        assert code == 0, out

        published = _publish_next_version(world, config)
        # The demo nodes share the directory file: the peer's import of the same version says
        # it is current (it failed with DIRECTORY_ROLLBACK on 9f5ab4f).
        kz_config = str(world.nodes["KZ-MJ"].config_path)
        next_file = str(world.root / "directory-next.xml")
        code, out = _cli("directory", "import", "--config", kz_config, next_file)
        assert code == 0, out
        assert f"версии {published} уже установлен" in out
        code, out = _cli(
            "keys", "activate", "seal", "--generation", "2", "--at", "now", "--config", str(config)
        )
        assert code == 0, out
        assert keys.seal().generation == 2

        # An emergency without a standby: --force switches anyway, said and audited.
        code, out = _cli("keys", "rotate", "tls", "--config", str(config), "--demo-ca", ca)
        assert code == 0, out
        code, out = _cli(
            "keys",
            "activate",
            "tls",
            "--generation",
            "2",
            "--at",
            "now",
            "--force",
            "emergency: TLS key on a stolen laptop",
            "--config",
            str(config),
        )
        assert code == 0, out
        assert "WARNING" in out and "not list" in out
    finally:
        keys.close()
    store = open_node_store(config)
    try:
        activated = audit_rows(store, "key.activated")
    finally:
        store.dispose()
    details = [row["details"] for row in activated]
    assert [d["directory_version"] for d in details] == [version, published, published]
    assert details[-1]["forced"] == "emergency: TLS key on a stolen laptop"
    assert "forced" not in details[0]


async def test_the_directory_version_in_force_is_shown(tmp_path: Path) -> None:
    world = build_world(tmp_path, now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))
    config = world.nodes["RU-FSSP"].config_path
    code, out = _cli("directory", "show", "--json", "--config", str(config))
    assert code == 0, out
    version = json.loads(out)["version"]
    runtime = NodeRuntime(
        Node.from_config(NodeConfig.from_toml(config)), directory_poll_seconds=0.1
    )
    await runtime.start(deliver=False, console=False)

    async def scraped() -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{runtime.api_port}/metrics") as response,
        ):
            return await response.text()

    try:
        assert f"gateway_directory_version {float(version)}" in await scraped()
        # A new version imported while the node runs: the gauge follows it.
        newer = await asyncio.get_running_loop().run_in_executor(
            None, _publish_next_version, world, config
        )
        for _ in range(200):
            if runtime.node.directory.version == newer:
                break
            await asyncio.sleep(0.05)
        assert f"gateway_directory_version {float(newer)}" in await scraped()

        # The schedule too (issue #19, "a visible schedule"): a planned switch, a revocation.
        switch = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
        await asyncio.get_running_loop().run_in_executor(
            None, _plan_and_revoke, world, config, switch
        )
        samples = {
            (sample.name, sample.labels["role"], sample.labels["generation"]): sample.value
            for family in text_string_to_metric_families(await scraped())
            if family.name.startswith("gateway_key_") and family.name.endswith("_timestamp_seconds")
            for sample in family.samples
        }
        assert samples[("gateway_key_activation_timestamp_seconds", "seal", "2")] == (
            switch.timestamp()
        )
        assert ("gateway_key_revocation_timestamp_seconds", "tls", "2") in samples
        assert ("gateway_key_revocation_timestamp_seconds", "seal", "2") not in samples
    finally:
        await runtime.stop()

"""Keys near the end of their certificates show in the API and in /metrics (issue "Key
rotation", item 6), for administrators and auditors only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from gateway.config import NodeConfig
from gateway.crypto.demo_ca import END_ENTITY_VALIDITY
from gateway.demo.setup import build_world
from gateway.exchange.node import Node
from gateway.store import tokens
from gateway.web.runtime import NodeRuntime

EXPIRES_IN = timedelta(days=20)


async def test_expiring_keys_are_listed_in_the_api_and_metrics(tmp_path: Path) -> None:
    # A world whose certificates end in 20 days: inside the 30-day warning period.
    made = datetime.now(UTC) - END_ENTITY_VALIDITY + EXPIRES_IN
    world = build_world(tmp_path, now=made, bodies=("RU-FSSP", "KZ-MJ"))
    node = Node.from_config(NodeConfig.from_toml(world.nodes["RU-FSSP"].config_path))
    now = datetime.now(UTC)
    with node.store.transaction() as conn:
        tokens.create(conn, "a" * 40, label="admin", scopes=["administrator"], now=now)
        tokens.create(conn, "o" * 40, label="operator", scopes=["operator"], now=now)
    runtime = NodeRuntime(node, directory_poll_seconds=0.1)
    await runtime.start(deliver=False, console=False)
    api = f"http://127.0.0.1:{runtime.api_port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(
                f"{api}/api/v1/keys/expiring", headers={"Authorization": "Bearer " + "a" * 40}
            ) as response:
                assert response.status == 200
                keys = (await response.json())["keys"]
            roles = {k["role"] for k in keys}
            assert {"seal", "tls", "encryption"} <= roles
            assert all(0 < k["days_left"] <= 20 for k in keys)
            async with http.get(
                f"{api}/api/v1/keys/expiring", headers={"Authorization": "Bearer " + "o" * 40}
            ) as response:
                assert response.status == 403
            metrics = ""
            for _ in range(50):  # the watcher publishes within a poll or two
                async with http.get(f"{api}/metrics") as response:
                    metrics = await response.text()
                if 'gateway_keys_expiring{role="seal"} 1.0' in metrics:
                    break
                await asyncio.sleep(0.1)
            assert 'gateway_keys_expiring{role="seal"} 1.0' in metrics
    finally:
        await runtime.stop()

"""`gateway serve --workers 2`: the ports are bound once and served by two forked workers; a
peer's document is received and receipted; the console answers on its port; SIGTERM stops every
worker (no orphan is left)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from benchmarks.gateway_hop import children_of
from gateway.demo.setup import DemoWorld
from gateway.web.peer_client import PeerClient, messages_url
from tests.integration.exchange_world import (
    Signer,
    header_field,
    node_config,
    serving,
    tls_client,
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_two_workers_serve_the_node_and_stop_together(world: DemoWorld) -> None:
    config = node_config(world, "KZ-MJ", "workers")
    with serving(config, "--workers", "2") as serve:
        line = serve.output()
        peer = int(re.search(r"peer https://[^:]+:(\d+)", line).group(1))
        api = int(re.search(r"API http://[^:]+:(\d+)", line).group(1))
        console = int(re.search(r"консоль http://[^:]+:(\d+)", line).group(1))
        deadline = time.monotonic() + 30
        while len(children_of(serve.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = children_of(serve.process.pid)
        assert len(workers) == 2, line

        async with aiohttp.ClientSession() as http:
            for _ in range(4):  # connections land on either worker
                async with http.get(f"http://127.0.0.1:{api}/healthz") as response:
                    assert response.status == 200
                # Every worker serves the console (sessions are in the store).
                async with http.get(f"http://127.0.0.1:{console}/login") as response:
                    assert response.status == 200

        document = Signer.of(world, "RU-FSSP").document(
            "cis-enforcement.Request", datetime.now(UTC), Recipient="KZ-MJ"
        )
        keys = world.nodes["RU-FSSP"].config_path.parent / "keys"
        async with PeerClient(tls_client(keys, world)) as client:
            answer = await client.post_message(messages_url(f"https://127.0.0.1:{peer}"), document)
        assert answer.status == 200
        assert header_field(answer.body, "Kind") == "Receipt"

    assert serve.process.returncode == 0
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "a worker outlived the node"

"""Two real nodes (RU-FSSP, KZ-MJ) on loopback, driven through their local APIs like a case system.

The world (PKI, KEKs, signed directory, node configurations) comes from
``gateway.demo.setup.build_world``; each node runs as ``gateway.web.runtime.NodeRuntime``.
Certificates are issued at the real current time because the TLS handshake checks them against
the system clock; the rule tests that need a pinned clock are in
``tests/exchange/test_disclosure_rule.py``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from gateway.config import NodeConfig
from gateway.demo.play import ADOPT_POLL_SECONDS, example, publish_bound_endpoints, reply
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import Node
from gateway.store import audit, tokens
from gateway.web.runtime import NodeRuntime

BODIES = ("RU-FSSP", "KZ-MJ")
DELIVERY_WAIT_SECONDS = 30.0
"""A delivery on loopback takes well under a second; thirty means something is stuck."""
ALL_ROLES = ("operator", "confidential-reader", "administrator", "auditor")


def confidential(document: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(document)
    document["header"]["Confidential"] = True
    return document


@dataclass
class Pair:
    world: DemoWorld
    runtimes: dict[str, NodeRuntime]
    http: aiohttp.ClientSession
    admin_tokens: dict[str, str] = field(default_factory=dict)

    def node(self, body_id: str) -> Node:
        return self.runtimes[body_id].node

    def node_dir(self, body_id: str) -> Path:
        return self.world.nodes[body_id].config_path.parent

    def api(self, body_id: str) -> str:
        runtime = self.runtimes[body_id]
        return f"http://{runtime.node.config.api.host}:{runtime.api_port}"

    def token(self, body_id: str, scopes: Iterable[str], label: str = "test") -> str:
        token = secrets.token_urlsafe(32)
        with self.node(body_id).store.transaction() as conn:
            tokens.create(conn, token, label=label, scopes=scopes, now=datetime.now(UTC))
        return token

    def full(self, body_id: str) -> str:
        if body_id not in self.admin_tokens:
            self.admin_tokens[body_id] = self.token(body_id, ALL_ROLES, "case-system")
        return self.admin_tokens[body_id]

    async def call(
        self,
        body_id: str,
        method: str,
        path: str,
        *,
        token: str | None = None,
        purpose: str | None = None,
        json_body: Any = None,
    ) -> tuple[int, bytes]:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if purpose is not None:
            headers["X-Purpose"] = purpose
        async with self.http.request(
            method, self.api(body_id) + path, headers=headers, json=json_body
        ) as response:
            return response.status, await response.read()

    async def submit(self, body_id: str, document: dict[str, Any]) -> dict[str, Any]:
        """Submit through the API and wait until the peer's signed receipt accepted it."""
        status, data = await self.call(
            body_id, "POST", "/api/v1/messages", token=self.full(body_id), json_body=document
        )
        assert status == 202, data.decode("utf-8", "replace")
        result = json.loads(data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DELIVERY_WAIT_SECONDS
        while True:
            status, data = await self.call(
                body_id,
                "GET",
                f"/api/v1/messages/{result['message_id']}",
                token=self.full(body_id),
                purpose="доставка: проверка квитанции",
            )
            assert status == 200, data.decode("utf-8", "replace")
            message = json.loads(data)
            if message["summary"]["delivery_state"] in ("delivered", "failed"):
                break
            assert loop.time() < deadline, f"{result['message_id']} not delivered in time"
            await asyncio.sleep(0.05)
        assert message["summary"]["delivery_state"] == "delivered", message
        assert message["receipt"]["outcome"] == "accepted", message
        return result

    async def confidential_exchange(self) -> dict[str, dict[str, Any]]:
        """Request (Confidential=true) RU-FSSP → KZ-MJ, its receipt, the Response back."""
        request = await self.submit("RU-FSSP", confidential(example("cis-enforcement.Request")))
        response = await self.submit("KZ-MJ", reply("cis-enforcement.Response", request, "RU-FSSP"))
        return {"request": request, "response": response}

    def audit_events(self, body_id: str) -> list[audit.AuditEvent]:
        with self.node(body_id).store.read() as conn:
            return audit.events(conn, after_seq=0, limit=audit.VERIFY_BATCH)


def copy_world(template: DemoWorld, root: Path) -> DemoWorld:
    """A copy of a world whose nodes never ran (its paths are relative): fresh databases at the
    cost of a file copy, not of new keys and certificates."""
    shutil.copytree(template.root, root)
    moved = {
        body_id: replace(node, config_path=root / node.config_path.relative_to(template.root))
        for body_id, node in template.nodes.items()
    }
    return replace(
        template,
        root=root,
        nodes=moved,
        directory_file=root / template.directory_file.relative_to(template.root),
    )


async def start_pair(world: DemoWorld) -> Pair:
    """Start both nodes of ``world`` (never run before) and publish their bound endpoints."""
    runtimes: dict[str, NodeRuntime] = {}
    http = aiohttp.ClientSession()
    pair = Pair(world, runtimes, http)
    try:
        for body_id in BODIES:
            node = Node.from_config(NodeConfig.from_toml(world.nodes[body_id].config_path))
            runtime = NodeRuntime(node, directory_poll_seconds=ADOPT_POLL_SECONDS)
            await runtime.start()
            runtimes[body_id] = runtime
        await publish_bound_endpoints(runtimes)  # the nodes bound free ports; list them
    except BaseException:
        await stop_pair(pair)
        raise
    return pair


async def stop_pair(pair: Pair) -> None:
    await pair.http.close()
    for runtime in pair.runtimes.values():
        await runtime.stop()

"""Roles on a real node (gateway.exchange.local_service over SQLite) through its local API, and
docs/local-api.md's route table held equal to the one table in code (ACCESS)."""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import NodeConfig
from gateway.demo.play import example
from gateway.demo.setup import build_world
from gateway.exchange.node import Node
from gateway.store import audit, tokens
from gateway.web.local_api import ROUTES, roles_table
from gateway.web.runtime import NodeRuntime

DOCS = Path(__file__).resolve().parents[3] / "docs" / "local-api.md"
PURPOSE = "Исполнительное производство № 12345/26/77001-ИП: розыск имущества"


@dataclass
class OneNode:
    runtime: NodeRuntime
    http: aiohttp.ClientSession

    @property
    def base(self) -> str:
        config = self.runtime.node.config
        assert self.runtime.api_runner is not None
        port = self.runtime.api_runner.addresses[0][1]
        return f"http://{config.api.host}:{port}"

    def token(self, scopes: Iterable[str], label: str) -> str:
        token = secrets.token_urlsafe(32)
        with self.runtime.node.store.transaction() as conn:
            tokens.create(conn, token, label=label, scopes=scopes, now=datetime.now(UTC))
        return token

    async def call(
        self, method: str, path: str, token: str, *, purpose: str | None = None, body: Any = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"}
        if purpose is not None:
            headers["X-Purpose"] = purpose
        async with self.http.request(
            method, self.base + path, headers=headers, json=body
        ) as response:
            return response.status, await response.json()

    def audit_events(self) -> list[audit.AuditEvent]:
        with self.runtime.node.store.read() as conn:
            return list(audit.events(conn, after_seq=0, limit=audit.VERIFY_BATCH))


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[OneNode]:
    world = build_world(tmp_path / "world", now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))
    config = NodeConfig.from_toml(world.nodes["RU-FSSP"].config_path)
    runtime = NodeRuntime(Node.from_config(config))
    await runtime.start(deliver=False, console=False)
    http = aiohttp.ClientSession()
    try:
        yield OneNode(runtime, http)
    finally:
        await http.close()
        await runtime.stop()


async def _submit(node: OneNode, token: str, *, confidential: bool) -> dict[str, Any]:
    document = copy.deepcopy(example("cis-enforcement.Request"))
    document["header"]["Confidential"] = confidential
    status, result = await node.call("POST", "/api/v1/messages", token, body=document)
    assert status == 202, result
    return result


async def test_roles_follow_the_table_on_a_real_node(node: OneNode) -> None:
    full = node.token(["operator", "confidential-reader", "administrator", "auditor"], "case")
    operator = node.token(["operator"], "clerk")
    reader = node.token(["confidential-reader"], "investigator")
    auditor = node.token(["auditor"], "auditor")
    administrator = node.token(["administrator"], "admin")
    plain = await _submit(node, full, confidential=False)
    secret = await _submit(node, full, confidential=True)

    # Listing is the operator's (docs/local-api.md); nobody else's.
    assert (await node.call("GET", "/api/v1/conversations", operator))[0] == 200
    for token in (auditor, administrator, reader):
        status, payload = await node.call("GET", "/api/v1/conversations", token)
        assert status == 403, payload
        assert payload["error"]["code"] == "FORBIDDEN" and payload["error"]["role"] == "operator"

    # A confidential conversation's list of messages is confidential content.
    path = f"/api/v1/conversations/{secret['conversation_id']}"
    before = len(node.audit_events())
    for purpose in (None, PURPOSE):
        status, payload = await node.call("GET", path, operator, purpose=purpose)
        assert status == 403, payload
        assert payload["error"]["role"] == "confidential-reader"
        assert "messages" not in payload
    denied = [e for e in node.audit_events()[before:] if e.kind == "access.denied"]
    assert [(e.actor, dict(e.subjects)) for e in denied] == [
        ("token:clerk", {"subject": secret["conversation_id"]})
    ] * 2
    status, payload = await node.call("GET", path, reader)
    assert status == 428 and payload["error"]["code"] == "PURPOSE_REQUIRED"
    assert not [e for e in node.audit_events()[before:] if e.kind == "conversation.read"]

    status, view = await node.call("GET", path, reader, purpose=PURPOSE)
    assert status == 200
    assert [m["message_id"] for m in view["messages"]] == [secret["message_id"]]
    reads = [e for e in node.audit_events()[before:] if e.kind == "conversation.read"]
    assert len(reads) == 1
    assert reads[0].actor == "token:investigator"
    assert dict(reads[0].subjects) == {"conversation": secret["conversation_id"]}
    assert reads[0].details["confidential"] is True
    assert len(reads[0].details["purpose_sha256"]) == 64
    assert PURPOSE not in json.dumps(dict(reads[0].details), ensure_ascii=False)

    # A conversation that is not confidential is the operator's, unaudited like the list.
    plain_path = f"/api/v1/conversations/{plain['conversation_id']}"
    assert (await node.call("GET", plain_path, operator))[0] == 200
    status, payload = await node.call("GET", plain_path, reader)
    assert status == 403 and payload["error"]["role"] == "operator"

    # Whether an id exists is not told to a token that may read no conversation at all.
    status, payload = await node.call(
        "GET", "/api/v1/conversations/00000000-0000-4000-8000-000000000000", auditor
    )
    assert status == 403


def test_docs_route_table_is_the_generated_one() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert roles_table() in text, (
        "docs/local-api.md's route table differs from the code: paste "
        "gateway.web.local_api.roles_table() over it"
    )


def test_every_private_route_names_its_action() -> None:
    from gateway.web.local_api import PUBLIC_PATHS

    for route in ROUTES:
        assert (route.action is None) == (route.path in PUBLIC_PATHS), route.path


async def test_the_node_s_api_answers_parser_refusals_in_the_contract(node: OneNode) -> None:
    """gateway serve's runtime serves the API through the guarded runner (gateway.web.server)."""
    assert node.runtime.api_runner is not None
    host, port = node.runtime.api_runner.addresses[0][:2]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 10_240 + b"\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split()[1] == b"400"
    assert b"X-Content-Type-Options: nosniff" in head
    assert json.loads(body)["error"]["code"] == "MALFORMED_REQUEST"

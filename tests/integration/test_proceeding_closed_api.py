"""The case system marks a proceeding closed through the local API of a running node (CIS Art.
9.6), on SQLite and PostgreSQL: set once, audited, refusals named; nothing changes on a refusal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from gateway.config import NodeConfig
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from gateway.store import conversations as conv_store
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import (
    Signer,
    audit_rows,
    create_token,
    header_field,
    node_config,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

RECEIVER, SENDER = "KZ-MJ", "RU-FSSP"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def api(
    request: pytest.FixtureRequest, world: DemoWorld
) -> AsyncIterator[tuple[Node, str, dict[str, str]]]:
    database_url = ""
    if request.param == "postgresql":
        database_url = request.getfixturevalue("pg_schema")("proceedings")
    config = node_config(world, RECEIVER, f"proceedings-{request.param}", database_url=database_url)
    runtime = NodeRuntime(Node.from_config(NodeConfig.from_toml(config)))
    await runtime.start(deliver=False, console=False)
    token = create_token(runtime.node.store, datetime.now(UTC))
    try:
        yield (
            runtime.node,
            f"http://127.0.0.1:{runtime.api_port}/api/v1",
            {"Authorization": f"Bearer {token}"},
        )
    finally:
        await runtime.stop()


def _received_request(node: Node, world: DemoWorld) -> str:
    document = Signer.of(world, SENDER).document(
        "cis-enforcement.Request", datetime.now(UTC), Recipient=RECEIVER
    )
    assert node.receive(SENDER, document).disposition is Disposition.ACCEPTED
    return header_field(document, "ConversationId")


async def _post(url: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_the_case_system_marks_the_proceeding_closed_once(
    api: tuple[Node, str, dict[str, str]], world: DemoWorld
) -> None:
    node, base, headers = api
    cid = _received_request(node, world)
    url = f"{base}/conversations/{cid}/proceeding-closed"
    closed_at = datetime.now(UTC)
    body = {"closed_at": closed_at.isoformat(), "reference": "постановление № 123"}

    status, answer = await _post(url, headers, body)

    assert status == 200, answer
    assert answer == {
        "conversation_id": cid,
        "proceeding_closed_at": closed_at.isoformat(),
        "reference": "постановление № 123",
    }
    with node.store.read() as conn:
        stored = conv_store.get(conn, cid)
    assert stored is not None and stored.proceeding_closed_at == closed_at
    [event] = [
        e
        for e in audit_rows(node.store, "proceeding.closed")
        if e["subjects"] == {"conversation_id": cid}
    ]
    assert event["details"] == {
        "closed_at": closed_at.isoformat(),
        "reference": "постановление № 123",
    }

    later = {**body, "closed_at": (closed_at + timedelta(seconds=1)).isoformat()}
    status, answer = await _post(url, headers, later)
    assert status == 409
    assert answer["error"]["code"] == "PROCEEDING_ALREADY_CLOSED"
    assert answer["error"]["article"] == "CIS Art. 9.6"
    with node.store.read() as conn:
        assert conv_store.get(conn, cid).proceeding_closed_at == closed_at  # type: ignore[union-attr]


FUTURE, PAST, NO_ZONE = "2099-01-01T00:00:00+00:00", "2020-01-01T00:00:00+00:00", "2026-12-01"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"closed_at": FUTURE, "reference": "x"}, 422, "PROCEEDING_CLOSED_IN_FUTURE"),
        ({"closed_at": PAST, "reference": "x"}, 422, "PROCEEDING_CLOSED_BEFORE_CONVERSATION"),
        ({"closed_at": PAST, "reference": " "}, 422, "PROCEEDING_REFERENCE"),
        ({"closed_at": NO_ZONE, "reference": "x"}, 400, "BAD_REQUEST"),
        ({"closed_at": PAST}, 400, "BAD_REQUEST"),
        ({"closed_at": PAST, "reference": "x", "who": "y"}, 400, "BAD_REQUEST"),
    ],
    ids=["future", "before-conversation", "no-reference", "no-zone", "no-field", "unknown-field"],
)
async def test_a_refused_close_names_its_rule_and_changes_nothing(
    api: tuple[Node, str, dict[str, str]],
    world: DemoWorld,
    body: dict[str, str],
    status: int,
    code: str,
) -> None:
    node, base, headers = api
    cid = _received_request(node, world)
    got, answer = await _post(f"{base}/conversations/{cid}/proceeding-closed", headers, body)
    assert (got, answer["error"]["code"]) == (status, code)
    with node.store.read() as conn:
        assert conv_store.get(conn, cid).proceeding_closed_at is None  # type: ignore[union-attr]
    assert not [
        e
        for e in audit_rows(node.store, "proceeding.closed")
        if e["subjects"] == {"conversation_id": cid}
    ]


async def test_an_unknown_conversation_is_404(api: tuple[Node, str, dict[str, str]]) -> None:
    _, base, headers = api
    missing = "00000000-0000-4000-8000-000000000000"
    body = {"closed_at": "2026-12-01T00:00:00+00:00", "reference": "x"}
    status, answer = await _post(f"{base}/conversations/{missing}/proceeding-closed", headers, body)
    assert (status, answer["error"]["code"]) == (404, "NOT_FOUND")

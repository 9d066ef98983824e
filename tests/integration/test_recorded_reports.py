"""The verification report is recorded at receipt; views read it and never verify again;
re-verifying is an explicit action whose result is recorded too (API and service)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio

from gateway.demo.setup import DemoWorld
from gateway.exchange import local_service
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from gateway.exchange.sending import Answer, DeliveryResult
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import (
    OPERATOR,
    READ_PURPOSE,
    create_token,
    node_pair,
    padded_request,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def nodes(world: DemoWorld) -> Iterator[tuple[Node, Node]]:
    with node_pair(world, "reports") as pair:
        yield pair


@pytest.fixture(scope="module")
def delivered(nodes: tuple[Node, Node]) -> str:
    """One request from RU-FSSP, received by KZ-MJ and its receipt recorded: its id."""
    ru, kz = nodes
    header, _ = ru.submit(padded_request(), actor="test")
    (claim,) = [c for c in ru.claim_due("w") if c.message_id == header.message_id]
    outgoing = ru.outgoing(claim)
    answer = kz.receive(ru.body_id, outgoing.wire)
    assert answer.disposition is Disposition.ACCEPTED
    result = ru.record_answer(claim, outgoing.signed, answer.body, Answer.RECEIPT)
    assert result.outcome is DeliveryResult.DELIVERED
    return header.message_id


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kz_api(nodes: tuple[Node, Node]) -> AsyncIterator[tuple[str, dict[str, str]]]:
    _, kz = nodes
    runtime = NodeRuntime(Node.from_config(kz.config))  # the same store; stop() closes its own
    await runtime.start(deliver=False, console=False)
    token = create_token(kz.store, datetime.now(UTC))
    try:
        yield f"http://127.0.0.1:{runtime.api_port}/api/v1", {"Authorization": f"Bearer {token}"}
    finally:
        await runtime.stop()


async def test_the_report_is_recorded_at_receipt_and_views_never_verify_again(
    nodes: tuple[Node, Node], delivered: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, kz = nodes
    service = local_service.LocalNodeService(kz, _inline())

    def no_verification(*args: object, **kwargs: object) -> None:
        raise AssertionError("a view verified the document again")

    monkeypatch.setattr(local_service, "verify_envelope", no_verification)
    view = await service.message(delivered, actor=OPERATOR, purpose=READ_PURPOSE)

    assert view.summary.verification == "TOTAL_PASSED"
    assert view.report["recorded_for"] == "receipt"
    assert view.report["indication"] == "TOTAL_PASSED"
    assert {s["role"] for s in view.report["signatures"]} == {"seal", "official"}
    recorded_at = datetime.fromisoformat(view.report["recorded_at"])
    assert recorded_at <= datetime.now(UTC)
    conversation = await service.conversation(
        view.summary.conversation_id, actor=OPERATOR, purpose=None
    )
    received = [m for m in conversation.messages if m.message_id == delivered]
    assert received[0].verification == "TOTAL_PASSED"


async def test_the_receipt_the_sender_got_has_its_report_recorded(
    nodes: tuple[Node, Node], delivered: str
) -> None:
    ru, _ = nodes
    service = local_service.LocalNodeService(ru, _inline())
    sent = await service.message(delivered, actor=OPERATOR, purpose=READ_PURPOSE)
    assert sent.summary.verification is None  # signed here: no report of its own
    assert sent.report == {}
    receipt_id = sent.receipt["receipt_message_id"]  # type: ignore[index]
    receipt = await service.message(receipt_id, actor=OPERATOR, purpose=READ_PURPOSE)
    assert receipt.summary.verification == "TOTAL_PASSED"
    assert receipt.report["recorded_for"] == "receipt"


async def test_reverifying_is_an_explicit_action_whose_result_is_recorded(
    kz_api: tuple[str, dict[str, str]], delivered: str
) -> None:
    base, headers = kz_api
    stated = {**headers, "X-Purpose": quote(READ_PURPOSE)}
    async with aiohttp.ClientSession(headers=stated) as http:
        async with http.post(f"{base}/messages/{delivered}/verifications") as response:
            assert response.status == 201, await response.text()
            made = await response.json()
        async with http.get(f"{base}/messages/{delivered}/report") as response:
            shown = await response.json()
    assert made["recorded_for"] == "reverify"
    assert made["indication"] == "TOTAL_PASSED"
    assert shown == made, "the latest recorded report is the one shown"


def _inline() -> Any:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(1)

"""Peer intake keeps answering while the local API is saturated: submissions and peer intake run
in pools of their own (gateway.web.runtime), so a case system's large submissions queue behind
each other, never in front of a peer's document.

Measured on 9f5ab4f (one shared pool): with four 3.8 MB submissions running, a peer's request
got 503 TIMEOUT after 60.5 s. Here the order of completion is asserted, not a duration."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from gateway.config import NodeConfig
from gateway.demo.play import example
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import Node
from gateway.web.peer_client import PeerClient, messages_url
from gateway.web.runtime import API_EXECUTOR_THREADS, NodeRuntime
from tests.integration.exchange_world import Signer, create_token, node_config, tls_client

pytestmark = pytest.mark.asyncio(loop_scope="module")

RECEIVER = "KZ-MJ"
SENDER = "RU-FSSP"
SUBMISSIONS = API_EXECUTOR_THREADS * 4
"""Enough to fill the API's pool four times over: three quarters of them wait in its line."""
FILLER_CHARS = 6_000_000
"""Characters of free text in each submission: 12 MB of JSON (under the 16 MiB cap, within the
shape bounds of gateway.web.json_shape) that takes about a second of CPU to check, convert and
validate before its 422 (over the field's length), as a hostile or broken case system sends."""


class CountingPool(ThreadPoolExecutor):
    """A real pool that counts the work handed to it: the test waits until every submission
    has reached the API's pool before the peer sends."""

    def __init__(self, threads: int) -> None:
        super().__init__(threads, thread_name_prefix="api")
        self.handed = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.handed += 1
        return super().submit(fn, *args, **kwargs)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def receiver(world: DemoWorld) -> AsyncIterator[NodeRuntime]:
    config = node_config(world, RECEIVER, "fair-pools", peer_port=0)
    runtime = NodeRuntime(
        Node.from_config(NodeConfig.from_toml(config)),
        api_executor=CountingPool(API_EXECUTOR_THREADS),
    )
    await runtime.start(deliver=False, console=False)
    try:
        yield runtime
    finally:
        await runtime.stop()


def heavy_submission() -> dict[str, Any]:
    document = example("cis-enforcement.Request")
    document["header"]["Recipient"] = SENDER
    document["body"]["Request"]["OtherInformation"] = "Ф" * FILLER_CHARS
    return document


async def test_peer_intake_answers_while_the_api_is_saturated(
    receiver: NodeRuntime, world: DemoWorld
) -> None:
    pool = receiver.api_executor
    assert isinstance(pool, CountingPool)
    token = create_token(receiver.node.store, datetime.now(UTC))
    body = json.dumps(heavy_submission(), ensure_ascii=False).encode()
    api = f"http://127.0.0.1:{receiver.api_port}/api/v1/messages"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    document = Signer.of(world, SENDER).document("cis-enforcement.Request", datetime.now(UTC))
    finished: list[str] = []

    async with aiohttp.ClientSession() as session:

        async def submit(n: int) -> int:
            async with session.post(api, data=body, headers=headers) as response:
                await response.read()
                finished.append(f"submission {n}")
                return response.status

        submissions = [asyncio.create_task(submit(n)) for n in range(SUBMISSIONS)]
        # Each request hands the pool its token check, then its submission.
        while pool.handed < 2 * SUBMISSIONS:
            await asyncio.sleep(0.05)
        assert not any(task.done() for task in submissions)

        peer = tls_client(world.nodes[SENDER].config_path.parent / "keys", world)
        async with PeerClient(peer) as client:
            url = messages_url(f"https://127.0.0.1:{receiver.peer_port}")
            answer = await client.post_message(url, document)
        finished.append("peer")
        statuses = await asyncio.gather(*submissions)

    assert answer.status == 200  # a signed receipt, not 503 TIMEOUT
    assert b"Receipt" in answer.body
    assert statuses == [422] * SUBMISSIONS  # each submission was processed to its answer
    # Every submission was in the API's pool before the peer sent; the peer was answered while
    # most of them still waited there. (With one shared pool the peer's work queued behind
    # all of them and came last. A submission's CPU is bounded, about a second here, so the
    # first ones may finish while the peer's TLS handshake and checks run.)
    assert finished.index("peer") <= SUBMISSIONS // 2, finished

"""A sending node killed with SIGKILL in the middle of a delivery, then restarted, delivers the
message exactly once.

The sender (RU-FSSP) is a real ``gateway serve`` process; the receiver (KZ-MJ) runs in the test
so that it can hold its answer: it stores the document and signs the receipt, tells the test,
and only answers once the sender is dead. The receipt thus never reaches the sender, whose outbox
row stays claimed. After the restart the sender posts the same bytes again; the receiver's
deduplication answers with the same receipt, and the sender records it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa

from gateway.config import NodeConfig
from gateway.demo.play import example
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import Node
from gateway.exchange.sending import DELIVERY_LEASE
from gateway.store import Store
from gateway.store import messages as msg_store
from gateway.store.tables import delivery_attempts, messages, outbox, receipts
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import (
    ServeProcess,
    audit_rows,
    conversation_state,
    create_token,
    node_config,
    open_node_store,
    start_serve,
)

WAIT_SECONDS = 60.0
"""Upper bound for each thing awaited (a delivery, a process start) on a loaded machine."""


class HeldReceiver:
    """KZ-MJ's runtime whose peer endpoint, after processing the first document, waits for the
    test's word before answering."""

    def __init__(self, config: Path) -> None:
        self.runtime = NodeRuntime(Node.from_config(NodeConfig.from_toml(config)))
        self.processed = asyncio.Event()
        self.release = asyncio.Event()
        self.answers: list[int] = []
        inner = self.runtime._pipeline

        async def pipeline(sender: str, payload: bytes) -> tuple[int, bytes, str]:
            answer = await inner(sender, payload)
            self.answers.append(answer[0])
            if len(self.answers) == 1:
                self.processed.set()
                await self.release.wait()
            return answer

        # Replaced before start(), which hands the pipeline to the peer app.
        self.runtime._pipeline = pipeline  # type: ignore[method-assign]

    @property
    def store(self) -> Store:
        return self.runtime.node.store


@pytest_asyncio.fixture
async def receiver(world: DemoWorld) -> AsyncIterator[HeldReceiver]:
    held = HeldReceiver(node_config(world, "KZ-MJ", "crash"))
    await held.runtime.start(deliver=False)
    try:
        yield held
    finally:
        held.release.set()
        await held.runtime.stop()


async def until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not await asyncio.to_thread(condition):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def outbox_row(store: Store, message_id: str) -> sa.Row:
    with store.read() as conn:
        return conn.execute(sa.select(outbox).where(outbox.c.message_id == message_id)).one()


def attempts_of(store: Store, outbox_id: int) -> list[sa.Row]:
    with store.read() as conn:
        return conn.execute(
            sa.select(delivery_attempts)
            .where(delivery_attempts.c.outbox_id == outbox_id)
            .order_by(delivery_attempts.c.attempt)
        ).all()


def receipts_for(store: Store, message_id: str) -> list[sa.Row]:
    with store.read() as conn:
        return conn.execute(sa.select(receipts).where(receipts.c.message_id == message_id)).all()


def receipt_messages(store: Store, message_id: str) -> list[sa.Row]:
    """Stored Receipt documents acknowledging ``message_id``."""
    with store.read() as conn:
        return conn.execute(
            sa.select(messages).where(
                messages.c.in_reply_to == message_id, messages.c.kind == "Receipt"
            )
        ).all()


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_sender_killed_mid_delivery_delivers_exactly_once(
    world: DemoWorld, receiver: HeldReceiver, dialect: str, request: pytest.FixtureRequest
) -> None:
    database_url = request.getfixturevalue("pg_schema")("crash") if dialect != "sqlite" else ""
    config = node_config(world, "RU-FSSP", f"crash-{dialect}", database_url=database_url)
    store = open_node_store(config)
    token = create_token(store, datetime.now(UTC))
    processes: list[ServeProcess] = []
    try:
        sender = await asyncio.to_thread(start_serve, config)
        processes.append(sender)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{sender.api_url}/messages",
                json=example("cis-enforcement.Request"),
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            assert response.status == 202, await response.text()
            submitted = await response.json()
        message_id, conversation_id = submitted["message_id"], submitted["conversation_id"]

        # The receiver has processed the document; its answer is held. Kill the sender now.
        await asyncio.wait_for(receiver.processed.wait(), WAIT_SECONDS)
        await asyncio.to_thread(sender.kill)
        receiver.release.set()

        row = outbox_row(store, message_id)
        assert (row.state, row.attempts) == ("pending", 1)
        assert row.claimed_by is not None, "the dead worker still holds its claim"
        assert receipts_for(store, message_id) == []
        assert conversation_state(store, conversation_id) == "submitted"
        assert conversation_state(receiver.store, conversation_id) == "in-progress"
        with receiver.store.read() as conn:
            first_receipt = msg_store.read_document(
                conn,
                receipts_for(receiver.store, message_id)[0].receipt_message_id,
                receiver.runtime.node.kek_ring,
            )

        # Time passes: the dead worker's lease (DELIVERY_LEASE) runs out. The sender's clock
        # cannot be pinned in another process, so the lease's end is moved instead.
        with store.transaction() as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.message_id == message_id)
                .values(claim_expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        assert timedelta(seconds=1) < DELIVERY_LEASE

        restarted = await asyncio.to_thread(start_serve, config)
        processes.append(restarted)
        await until(lambda: outbox_row(store, message_id).state != "pending", "the redelivery")

        # The sender: delivered, on the second attempt, by another worker; one receipt.
        row = outbox_row(store, message_id)
        assert (row.state, row.attempts) == ("delivered", 2)
        attempts = attempts_of(store, row.id)
        assert [a.attempt for a in attempts] == [1, 2]
        assert attempts[0].finished_at is None, "the killed attempt never finished"
        assert attempts[1].outcome == "delivered"
        assert attempts[0].worker_id != attempts[1].worker_id
        recorded = receipts_for(store, message_id)
        assert len(recorded) == 1 and recorded[0].outcome == "accepted"
        assert len(receipt_messages(store, message_id)) == 1
        with store.read() as conn:
            receipt_bytes = msg_store.read_document(
                conn, recorded[0].receipt_message_id, _kek_ring(config)
            )
        assert receipt_bytes == first_receipt, "the replay was answered with the same receipt"
        assert conversation_state(store, conversation_id) == "in-progress"

        # The receiver: two posts, one document stored and processed, one receipt signed.
        assert receiver.answers == [200, 200]
        assert len(receipt_messages(receiver.store, message_id)) == 1
        with receiver.store.read() as conn:
            stored = conn.execute(
                sa.select(sa.func.count())
                .select_from(messages)
                .where(messages.c.message_id == message_id)
            ).scalar_one()
        assert stored == 1
        received = [
            r
            for r in audit_rows(receiver.store, "message.received")
            if r["subjects"]["message"] == message_id
        ]
        assert len(received) == 1
        assert conversation_state(receiver.store, conversation_id) == "in-progress"
    finally:
        for process in processes:
            await asyncio.to_thread(process.stop)
        store.dispose()


def _kek_ring(config: Path):  # type: ignore[no-untyped-def]
    from gateway.crypto.keys.kek import KekRing, load_file_kek
    from gateway.crypto.keys.keystore import KeyStore

    keys = KeyStore.from_config(NodeConfig.from_toml(config))
    return KekRing.single(load_file_kek(keys.kek_path, keys.passphrase()))

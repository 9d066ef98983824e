"""Two running nodes, a delivery refused two ways.

* Issue finding (key rotation): `gateway_messages_rejected_total{source="by-peer"}` never
  counted (nor did "received"). A final refusal now counts on both sides.
* Issue finding (key rotation): a seal the receiver's directory did not list yet (the sender
  switched as the depositary published it) lost every request sent in between for good. Such
  trust lag is now answered 503: the sender retries with back-off, and the request is
  delivered once the receiver's directory catches up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest_asyncio
import sqlalchemy as sa

from gateway.config import NodeConfig
from gateway.demo.play import example
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import Node
from gateway.model.directory import CertificateRole
from gateway.store.tables import outbox
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import node_config


def _with_sender_changed(directory, change):
    """The directory as the receiver holds it, with RU-FSSP's entry changed by ``change``."""
    bodies = tuple(
        dataclasses.replace(body, **change(body)) if body.id == "RU-FSSP" else body
        for body in directory.bodies
    )
    return dataclasses.replace(directory, bodies=bodies)


def _without_seal(body):
    """Before the depositary published the sender's seal."""
    seals = CertificateRole.SEAL
    return {"certificates": tuple(c for c in body.certificates if c.role is not seals)}


def _not_participating(body):
    """A body for which the agreement is not in force."""
    return {"participations": ()}


@pytest_asyncio.fixture(loop_scope="function")
async def pair(world: DemoWorld, request) -> AsyncIterator[tuple[NodeRuntime, NodeRuntime]]:
    tag = f"refusals-{request.node.name[-12:]}"
    sender, receiver = (
        NodeRuntime(Node.from_config(NodeConfig.from_toml(node_config(world, body, tag))))
        for body in ("RU-FSSP", "KZ-MJ")
    )
    await receiver.start(deliver=False, console=False)
    await sender.start(deliver=False, console=False)
    try:
        yield sender, receiver
    finally:
        await sender.stop()
        await receiver.stop()


async def test_a_final_refusal_counts_as_received_and_as_by_peer(pair) -> None:
    sender, receiver = pair
    receiver.node.update_directory(
        _with_sender_changed(receiver.node.directory, _not_participating)
    )
    sender.node.submit(example("cis-enforcement.Request"), actor="test")

    assert await sender.deliver_once() == 1

    received = receiver.metrics.exposition().decode()
    by_peer = sender.metrics.exposition().decode()
    refused = [line for line in received.splitlines() if 'source="received"' in line]
    assert any("AGREEMENT_" in line and line.endswith(" 1.0") for line in refused), refused
    assert any(
        'source="by-peer"' in line and "AGREEMENT_" in line and line.endswith(" 1.0")
        for line in by_peer.splitlines()
    ), by_peer


async def test_trust_lag_is_retried_and_delivered_once_the_directory_catches_up(pair) -> None:
    sender, receiver = pair
    current = receiver.node.directory
    receiver.node.update_directory(_with_sender_changed(current, _without_seal))
    header, _ = sender.node.submit(example("cis-enforcement.Request"), actor="test")

    assert await sender.deliver_once() == 1
    with sender.node.store.read() as conn:
        row = conn.execute(sa.select(outbox).where(outbox.c.message_id == header.message_id)).one()
    assert row.state == "pending", "a trust-lag refusal is retried, not final"
    assert row.next_attempt_at > datetime.now(UTC)

    receiver.node.update_directory(current)  # the receiver's directory catches up
    sender.node.clock = lambda: datetime.now(UTC) + timedelta(hours=1)  # the back-off passes
    assert await sender.deliver_once() == 1
    with sender.node.store.read() as conn:
        row = conn.execute(sa.select(outbox).where(outbox.c.message_id == header.message_id)).one()
    assert row.state == "delivered"

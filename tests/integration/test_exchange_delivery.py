"""The delivery worker when a claimed row cannot even be sent: the attempt is recorded and the
row scheduled again with back-off, never left claimed (which would hide it for a lease, retry
it every lease for ever and never reach the dead letter).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import sqlalchemy as sa

from gateway.config import NodeConfig
from gateway.demo.play import example
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import Node
from gateway.store.tables import delivery_attempts, outbox
from gateway.web.runtime import OUTGOING_FAILED, NodeRuntime
from tests.integration.exchange_world import node_config


async def test_a_row_whose_destination_left_the_directory_is_retried_later(
    world: DemoWorld,
) -> None:
    runtime = NodeRuntime(
        Node.from_config(NodeConfig.from_toml(node_config(world, "RU-FSSP", "delivery")))
    )
    await runtime.start(deliver=False)
    try:
        node = runtime.node
        header, _ = node.submit(example("cis-enforcement.Request"), actor="test")
        # A newer directory without the recipient (its node was decommissioned, say).
        node.update_directory(
            dataclasses.replace(
                node.directory,
                bodies=tuple(b for b in node.directory.bodies if b.id != "KZ-MJ"),
            )
        )

        assert await runtime.deliver_once() == 1

        with node.store.read() as conn:
            row = conn.execute(
                sa.select(outbox).where(outbox.c.message_id == header.message_id)
            ).one()
            attempts = conn.execute(
                sa.select(delivery_attempts).where(delivery_attempts.c.outbox_id == row.id)
            ).all()
        assert row.state == "pending"
        assert row.claimed_by is None, "the claim is released, not held for a lease"
        assert row.last_error == OUTGOING_FAILED
        assert row.next_attempt_at > datetime.now(UTC), "retried later, with back-off"
        assert [(a.attempt, a.outcome, a.error_code) for a in attempts] == [
            (1, "failed", OUTGOING_FAILED)
        ]
        assert await runtime.deliver_once() == 0, "not due again at once"
    finally:
        await runtime.stop()

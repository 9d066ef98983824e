"""Issue finding: gateway_messages_rejected_total{source="by-peer"} never counted (nor did
"received"). A document the peer refuses with a signed Rejection now counts on both sides."""

from __future__ import annotations

import dataclasses

from gateway.config import NodeConfig
from gateway.demo.play import example
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import Node
from gateway.model.directory import CertificateRole
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import node_config


def _without_seal_of(directory, body_id: str):
    """The directory as a receiver would hold it before the sender's seal was published."""
    bodies = tuple(
        dataclasses.replace(
            body,
            certificates=tuple(c for c in body.certificates if c.role is not CertificateRole.SEAL),
        )
        if body.id == body_id
        else body
        for body in directory.bodies
    )
    return dataclasses.replace(directory, bodies=bodies)


async def test_a_refusal_counts_as_received_and_as_by_peer(world: DemoWorld) -> None:
    sender = NodeRuntime(
        Node.from_config(NodeConfig.from_toml(node_config(world, "RU-FSSP", "rejection-metrics")))
    )
    receiver = NodeRuntime(
        Node.from_config(NodeConfig.from_toml(node_config(world, "KZ-MJ", "rejection-metrics")))
    )
    await receiver.start(deliver=False, console=False)
    await sender.start(deliver=False, console=False)
    try:
        receiver.node.update_directory(_without_seal_of(receiver.node.directory, "RU-FSSP"))
        sender.node.submit(example("cis-enforcement.Request"), actor="test")

        assert await sender.deliver_once() == 1

        refused = 'gateway_messages_rejected_total{code="SEAL_NOT_IN_DIRECTORY",source="%s"} 1.0'
        assert (refused % "received").encode() in receiver.metrics.exposition()
        assert (refused % "by-peer").encode() in sender.metrics.exposition()
    finally:
        await sender.stop()
        await receiver.stop()

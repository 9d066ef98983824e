"""SQL statements per hop, counted on a real node pair, on both stores: a ceiling that fails when
a statement is added back to the hot path (issue #11: fewer statements and transactions).

The hop is the shells' (as ``benchmarks/hop_profile.py`` drives them): submit (JSON → signed,
queued), claim, outgoing, the peer's receive (verify, judge, store, sign the Receipt), record
(the Receipt verified and recorded). Counted: every statement the driver executes, transaction
control (``BEGIN``, savepoints) left out so that both stores count the same work.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event

from benchmarks.gateway_hop import request_document
from gateway.config import NodeConfig
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import Node
from gateway.exchange.sending import Answer, DeliveryResult
from tests.integration.exchange_world import node_config, open_node_store

CEILING = {"submit": 10, "claim": 3, "outgoing": 2, "receive": 15, "record": 15}
"""Statements per phase of one hop (a Request opening its conversation), transaction control
left out: 44, where main had 64 before issue #11's cuts (submit 17, claim 3, outgoing 5,
receive 24, record 15); the receiver's snapshot is one statement since (receive 17 → 16);
the audit head is moved from the one the node last wrote without reading it (submit, receive
and record one fewer each) and outgoing reads the confidentiality flags with the payload. Record
reads the answered message's conversation since (14 → 15): a peer's answer naming another
conversation moved that one (tests/integration/test_peer_answers.py)."""
HOPS = 3


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(
    request: pytest.FixtureRequest, world: DemoWorld, tmp_path: Any
) -> Iterator[tuple[Node, Node]]:
    urls = ("", "")
    if request.param == "postgresql":
        make: Callable[[str], str] = request.getfixturevalue("pg_schema")
        urls = (make("hop_sender"), make("hop_receiver"))
    nodes = []
    for (body, tag), url in zip(
        (("RU-FSSP", f"stmts-{request.param}"), ("KZ-MJ", f"stmts-{request.param}")),
        urls,
        strict=True,
    ):
        path = node_config(world, body, tag, database_url=url)
        open_node_store(path).dispose()  # migrated
        nodes.append(Node.from_config(NodeConfig.from_toml(path)))
    try:
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.close()


def _hop(sender: Node, receiver: Node, phase: list[str]) -> None:
    phase[0] = "submit"
    header, _ = sender.submit(request_document(), actor="test")
    phase[0] = "claim"
    (claim,) = [c for c in sender.claim_due("test", 64) if c.message_id == header.message_id]
    phase[0] = "outgoing"
    outgoing = sender.outgoing(claim)
    phase[0] = "receive"
    answer = receiver.receive(sender.body_id, outgoing.wire)
    phase[0] = "record"
    result = sender.record_answer(claim, outgoing.signed, answer.body, Answer.RECEIPT)
    phase[0] = "-"
    assert result.outcome is DeliveryResult.DELIVERED


def test_statements_per_hop_stay_under_the_ceiling(pair: tuple[Node, Node]) -> None:
    sender, receiver = pair
    phase = ["-"]
    for _ in range(HOPS):  # the first hops make the week's period key and the secrets
        _hop(sender, receiver, phase)
    counted: collections.Counter[str] = collections.Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "SAVEPOINT", "RELEASE")):
            counted[phase[0]] += 1

    for node in pair:
        event.listen(node.store.engine, "before_cursor_execute", count)
    for _ in range(HOPS):
        _hop(sender, receiver, phase)
    per_hop = {name: counted[name] / HOPS for name in CEILING}
    assert counted["-"] == 0
    over = {name: n for name, n in per_hop.items() if n > CEILING[name]}
    assert not over, f"statements per hop above the ceiling: {over} (all: {per_hop})"

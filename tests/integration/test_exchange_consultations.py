"""Consultations between two real nodes (CIS Art. 13 para. 3, 15; SC Art. 9.2), on SQLite and
PostgreSQL: asked and answered inside the request's conversation, recorded on both sides, the
state unchanged; a consultation the agreement does not provide is refused by the receiver and
changes nothing there.

Nodes are driven through :class:`gateway.exchange.node.Node` directly, as in
tests/integration/test_exchange_confidential.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.config import NodeConfig
from gateway.demo.setup import DemoWorld
from gateway.exchange.conversation import ConsultationRecord, Conversation, Role, UnknownKind
from gateway.exchange.machine_codec import loads
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from gateway.exchange.sending import Answer, DeliveryResult
from gateway.schemas import VALID_EXAMPLES_DIR
from gateway.store import machines, messages
from tests.integration.exchange_world import (
    Signer,
    conversation_state,
    node_config,
    row_counts,
)


def example(name: str) -> dict[str, Any]:
    document = json.loads((VALID_EXAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))
    for key in ("MessageId", "ConversationId", "InReplyTo", "Created", "RequestedDeadline"):
        document["header"].pop(key, None)
    return document


@dataclass
class Nodes:
    ru_fssp: Node
    kz_mj: Node
    ru_vs: Node
    kz_vs: Node


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def nodes(request: pytest.FixtureRequest, world: DemoWorld) -> Iterator[Nodes]:
    made = []
    for body in ("RU-FSSP", "KZ-MJ", "RU-VS", "KZ-VS"):
        url = ""
        if request.param == "postgresql":
            url = request.getfixturevalue("pg_schema")(f"consult_{body[:2]}{body[3:5]}".lower())
        tag = f"consult-{request.param}"
        made.append(
            Node.from_config(NodeConfig.from_toml(node_config(world, body, tag, database_url=url)))
        )
    yield Nodes(*made)
    for node in made:
        node.close()


def _send(sender: Node, receiver: Node, document: dict[str, Any]) -> str:
    header, _ = sender.submit(document, actor="test")
    (claim,) = [c for c in sender.claim_due("w") if c.message_id == header.message_id]
    outgoing = sender.outgoing(claim)
    answer = receiver.receive(sender.body_id, outgoing.wire)
    assert answer.disposition is Disposition.ACCEPTED, answer.body[:300]
    result = sender.record_answer(claim, outgoing.signed, answer.body, Answer.RECEIPT)
    assert result.outcome is DeliveryResult.DELIVERED
    return header.message_id


def _reply(sender: Node, receiver: Node, template: str, to: str, conversation: str) -> str:
    document = example(template)
    document["header"].update(
        ConversationId=conversation,
        InReplyTo=to,
        Sender=sender.body_id,
        Recipient=receiver.body_id,
    )
    return _send(sender, receiver, document)


def _open(requesting: Node, requested: Node, agreement: str) -> tuple[str, str]:
    document = example(f"{agreement}.Request")
    document["header"].update(Sender=requesting.body_id, Recipient=requested.body_id)
    request_id = _send(requesting, requested, document)
    with requesting.store.read() as conn:
        conversation = messages.get(conn, request_id).header.conversation_id
    return request_id, conversation


def _machine(node: Node, conversation: str) -> Conversation:
    with node.store.read() as conn:
        stored = machines.get(conn, conversation)
    assert stored is not None
    return loads(stored)


@pytest.mark.parametrize("agreement", ["cis-enforcement", "ru-kz-supreme-courts"])
def test_a_consultation_is_asked_answered_and_recorded_on_both_sides(
    nodes: Nodes, agreement: str
) -> None:
    cis = agreement == "cis-enforcement"
    requesting, requested = (nodes.ru_fssp, nodes.kz_mj) if cis else (nodes.ru_vs, nodes.kz_vs)
    request_id, conversation = _open(requesting, requested, agreement)
    asked = _reply(
        requested, requesting, f"{agreement}.ConsultationRequest", request_id, conversation
    )
    for node in (requesting, requested):
        assert conversation_state(node.store, conversation) == "in-progress"
        assert [p.message_id for p in _machine(node, conversation).pending_consultations] == [asked]
    answered = _reply(requesting, requested, f"{agreement}.ConsultationAnswer", asked, conversation)
    for node in (requesting, requested):
        machine = _machine(node, conversation)
        assert machine.state.value == "in-progress"
        assert machine.pending_consultations == ()
        [record] = machine.consultations
        assert (record.request_id, record.asked_by, record.answer_id) == (
            asked,
            Role.REQUESTED,
            answered,
        )
        assert isinstance(record, ConsultationRecord)
    # Then one held by telephone or video, recorded by the requesting party on its own.
    minutes = _reply(
        requesting, requested, f"{agreement}.ConsultationRecord", request_id, conversation
    )
    for node in (requesting, requested):
        machine = _machine(node, conversation)
        assert machine.state.value == "in-progress"
        assert machine.consultations[-1].answer_id == minutes
        assert machine.consultations[-1].asked_by is Role.REQUESTING


def test_cis_requesting_party_cannot_open_a_consultation_and_nothing_changes(
    nodes: Nodes, world: DemoWorld
) -> None:
    # CIS Art. 13 para. 3, 15: it is the requested party that consults before deciding. The
    # requesting node refuses to submit it; forged past its own node, the receiver refuses it.
    request_id, conversation = _open(nodes.ru_fssp, nodes.kz_mj, "cis-enforcement")
    document = example("cis-enforcement.ConsultationRequest")
    document["header"].update(
        ConversationId=conversation, InReplyTo=request_id, Sender="RU-FSSP", Recipient="KZ-MJ"
    )
    before = row_counts(nodes.ru_fssp.store)
    with pytest.raises(UnknownKind, match="only the requested party may send it"):
        nodes.ru_fssp.submit(document, actor="test")
    assert row_counts(nodes.ru_fssp.store) == before
    forged = Signer.of(world, "RU-FSSP").document(
        "cis-enforcement.ConsultationRequest",
        datetime.now(UTC),
        ConversationId=conversation,
        InReplyTo=request_id,
        Recipient="KZ-MJ",
    )
    before = row_counts(nodes.kz_mj.store)
    answer = nodes.kz_mj.receive("RU-FSSP", forged)
    assert answer.disposition is not Disposition.ACCEPTED
    assert b"PROTOCOL_KIND_NOT_IN_AGREEMENT" in answer.body
    assert conversation_state(nodes.kz_mj.store, conversation) == "in-progress"
    assert [p for p in _machine(nodes.kz_mj, conversation).pending_consultations] == []
    assert row_counts(nodes.kz_mj.store) == before

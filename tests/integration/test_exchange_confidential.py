"""Confidential documents between two real nodes: encrypted to the recipient (sign, then
encrypt), refused in clear, unreadable to any other node, tamper-evident; and the Art. 16 hold
with both of the requesting body's decisions (CIS Art. 16; SC Art. 8.1).

Nodes are driven through :class:`gateway.exchange.node.Node` directly: the transport (mTLS) is
the other modules' subject; here it is what crosses it and what each side then holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.config import NodeConfig
from gateway.crypto.recipient import is_encrypted
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from gateway.exchange.sending import Answer, DeliveryResult
from gateway.schemas import VALID_EXAMPLES_DIR
from tests.integration.exchange_world import conversation_state, node_config, row_counts

EXAMPLES = VALID_EXAMPLES_DIR
PERSONAL = ("Примеров".encode(), b"810514300001", b"JTNB11HK103000001")
"""Values of the example request that must never cross the wire in clear."""


def example(name: str) -> dict[str, Any]:
    document = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    for key in ("MessageId", "ConversationId", "Created", "RequestedDeadline"):
        document["header"].pop(key, None)
    return document


def confidential_request() -> dict[str, Any]:
    document = example("cis-enforcement.Request")
    document["header"]["Confidential"] = True
    return document


@dataclass
class Pair:
    ru: Node
    kz: Node
    other: Node
    """A third node (RU-VS) that is not the recipient."""

    def send(self, sender: Node, receiver: Node, document: dict[str, Any]) -> tuple[str, Any]:
        """Submit at the sender, deliver to the receiver, record the answer; (message id, wire)."""
        header, _ = sender.submit(document, actor="test")
        (claim,) = [c for c in sender.claim_due("w") if c.message_id == header.message_id]
        outgoing = sender.outgoing(claim)
        answer = receiver.receive(sender.body_id, outgoing.wire)
        assert answer.disposition is Disposition.ACCEPTED, answer.body[:300]
        result = sender.record_answer(claim, outgoing.signed, answer.body, Answer.RECEIPT)
        assert result.outcome is DeliveryResult.DELIVERED
        return header.message_id, outgoing

    def reply(
        self, sender: Node, receiver: Node, template: str, to: str, conversation: str, **body: Any
    ) -> str:
        document = example(template)
        document["header"].update(
            ConversationId=conversation, InReplyTo=to, Recipient=receiver.body_id
        )
        kind = document["header"]["Kind"]
        document["body"][kind].update(body)
        message_id, _ = self.send(sender, receiver, document)
        return message_id


@pytest.fixture(scope="module")
def pair(world: DemoWorld) -> Iterator[Pair]:
    nodes = [
        Node.from_config(NodeConfig.from_toml(node_config(world, body, "confidential")))
        for body in ("RU-FSSP", "KZ-MJ", "RU-VS")
    ]
    yield Pair(*nodes)
    for node in nodes:
        node.close()


def test_a_confidential_document_crosses_encrypted_and_is_stored_readable(pair: Pair) -> None:
    message_id, outgoing = pair.send(pair.ru, pair.kz, confidential_request())
    assert is_encrypted(outgoing.wire)
    for value in PERSONAL:
        assert value in outgoing.signed  # the value is in the document …
        assert value not in outgoing.wire  # … and not on the wire
    with pair.kz.store.read() as conn:
        from gateway.store import messages

        stored = messages.read_document(conn, message_id, pair.kz.kek_ring)
    assert stored == outgoing.signed  # the receiver keeps the signed document byte-exact


def test_a_node_without_the_recipients_key_cannot_decrypt(pair: Pair) -> None:
    header, _ = pair.ru.submit(confidential_request(), actor="test")
    (claim,) = [c for c in pair.ru.claim_due("w") if c.message_id == header.message_id]
    wire = pair.ru.outgoing(claim).wire
    before = row_counts(pair.other.store)
    answer = pair.other.receive("RU-FSSP", wire)
    assert answer.disposition is Disposition.UNREADABLE
    assert answer.body == b"CMS_DECRYPTION_FAILED"
    assert row_counts(pair.other.store) == before


def test_a_tampered_ciphertext_is_refused_and_nothing_changes(pair: Pair) -> None:
    header, _ = pair.ru.submit(confidential_request(), actor="test")
    (claim,) = [c for c in pair.ru.claim_due("w") if c.message_id == header.message_id]
    wire = bytearray(pair.ru.outgoing(claim).wire)
    wire[len(wire) // 2] ^= 0x01
    before = row_counts(pair.kz.store)
    answer = pair.kz.receive("RU-FSSP", bytes(wire))
    assert answer.disposition is Disposition.UNREADABLE
    assert answer.body == b"CMS_DECRYPTION_FAILED"
    assert row_counts(pair.kz.store) == before


def test_a_confidential_document_in_clear_is_refused(pair: Pair) -> None:
    header, _ = pair.ru.submit(confidential_request(), actor="test")
    (claim,) = [c for c in pair.ru.claim_due("w") if c.message_id == header.message_id]
    signed = pair.ru.outgoing(claim).signed
    before = row_counts(pair.kz.store)
    answer = pair.kz.receive("RU-FSSP", signed)
    assert answer.disposition is Disposition.REFUSED
    assert b"CONFIDENTIAL_NOT_ENCRYPTED" in answer.body
    assert row_counts(pair.kz.store) == before


def _hold(pair: Pair) -> tuple[str, str]:
    """A confidential request, then the requested body's Art. 16 notice: (conversation, notice)."""
    request_id, _ = pair.send(pair.ru, pair.kz, confidential_request())
    with pair.ru.store.read() as conn:
        from gateway.store import messages

        conversation = messages.get(conn, request_id).header.conversation_id
    notice = pair.reply(
        pair.kz, pair.ru, "cis-enforcement.ConfidentialityNotice", request_id, conversation
    )
    for node in (pair.ru, pair.kz):
        assert conversation_state(node.store, conversation) == "confidentiality-hold"
    return conversation, notice


def test_art16_hold_then_proceed_without_confidentiality(pair: Pair) -> None:
    conversation, notice = _hold(pair)
    pair.reply(
        pair.ru,
        pair.kz,
        "cis-enforcement.ConfidentialityDecision",
        notice,
        conversation,
        Decision="proceed-without-confidentiality",
    )
    for node in (pair.ru, pair.kz):
        assert conversation_state(node.store, conversation) == "in-progress"


def test_art16_hold_then_withdraw(pair: Pair) -> None:
    conversation, notice = _hold(pair)
    pair.reply(
        pair.ru,
        pair.kz,
        "cis-enforcement.ConfidentialityDecision",
        notice,
        conversation,
        Decision="withdraw",
    )
    for node in (pair.ru, pair.kz):
        assert conversation_state(node.store, conversation) == "withdrawn"

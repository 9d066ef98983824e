"""A hostile peer's answers to our deliveries (gateway.exchange.sending.record_answer).

The peer KZ-MJ signs its Receipts and Rejections with its real seal, names our message and the
SHA-256 of what we sent — and puts another conversation in the header. Our node must not apply
an answer to any conversation but the one of the message it answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.demo.setup import DemoWorld
from gateway.exchange import documents
from gateway.exchange.inbound import MAX_CLOCK_SKEW
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from gateway.exchange.recording import load_state
from gateway.exchange.sending import Answer, DeliveryResult
from gateway.model.problems import Problem
from gateway.store import outbox as outbox_store
from gateway.store import receipts as receipt_store
from gateway.xml.header import read_header
from gateway.xml.parsing import parse_untrusted
from tests.integration.exchange_world import conversation_state, node_pair, padded_request


@pytest.fixture(params=["sqlite", "postgresql"])
def nodes(request: pytest.FixtureRequest, world: DemoWorld) -> Iterator[tuple[Node, Node]]:
    """RU-FSSP (us) and KZ-MJ (the peer), each on a store of its own for this test."""
    schema = request.getfixturevalue("pg_schema") if request.param == "postgresql" else None
    with node_pair(world, f"answers_{uuid.uuid4().hex[:12]}", schema) as pair:
        yield pair


def _receipt(kz: Node, sent: bytes, at: datetime) -> dict[str, Any]:
    """KZ-MJ's Receipt of ``sent`` (its id, its digest), written at ``at``, as JSON."""
    return documents.receipt_json(
        read_header(parse_untrusted(sent)),
        document_sha256=hashlib.sha256(sent).hexdigest(),
        received_at=at,
        sender=kz.body_id,
        now=at,
    )


def _hostile_answer(kz: Node, sent: bytes, claimed: Answer, conversation_id: str) -> bytes:
    """KZ-MJ's genuinely sealed answer to ``sent``: right message id, right digest, another
    conversation in its header."""
    now = datetime.now(UTC)
    to = dataclasses.replace(read_header(parse_untrusted(sent)), conversation_id=conversation_id)
    if claimed is Answer.RECEIPT:
        answer = documents.receipt_json(
            to,
            document_sha256=hashlib.sha256(sent).hexdigest(),
            received_at=now,
            sender=kz.body_id,
            now=now,
        )
    else:
        problem = Problem(
            code="SIGNATURE_FORMAT_FAILURE",
            path="/Envelope",
            message_ru="Подпись документа не прошла проверку.",
            message_en="signature verification failed",
            remedy_ru="Подпишите документ заново.",
        )
        answer = documents.rejection_json(to, problem, sender=kz.body_id, now=now)
    return kz.sign_machine_document(answer, now)


@pytest.mark.parametrize("claimed", [Answer.RECEIPT, Answer.REJECTION])
def test_an_answer_naming_another_conversation_moves_nothing(
    nodes: tuple[Node, Node], claimed: Answer
) -> None:
    ru, kz = nodes
    first, _ = ru.submit(padded_request(), actor="test")
    second, _ = ru.submit(padded_request(), actor="test")
    assert first.conversation_id != second.conversation_id
    assert conversation_state(ru.store, second.conversation_id) == "submitted"

    (claim,) = [c for c in ru.claim_due("w") if c.message_id == first.message_id]
    outgoing = ru.outgoing(claim)
    assert kz.receive(ru.body_id, outgoing.wire).disposition is Disposition.ACCEPTED
    # The peer answers our first request, naming the second one's conversation.
    answer = _hostile_answer(kz, outgoing.signed, claimed, second.conversation_id)

    result = ru.record_answer(claim, outgoing.signed, answer, claimed)

    # The second request was never delivered: its conversation has not moved.
    assert conversation_state(ru.store, second.conversation_id) == "submitted"
    assert conversation_state(ru.store, first.conversation_id) == "submitted"
    assert result.outcome is DeliveryResult.RETRY, result
    assert result.code == "RECEIPT_MISMATCH"


@pytest.mark.parametrize("reused", ["earlier-receipt", "our-message"])
def test_a_receipt_reusing_a_stored_message_id_is_not_taken_as_delivery(
    nodes: tuple[Node, Node], reused: str
) -> None:
    """A genuinely sealed Receipt of our message, whose own MessageId is one already stored
    here with other bytes (the peer's earlier receipt, or our message itself): it cannot be
    stored, so it proves nothing here — the delivery must not count as done without it."""
    ru, kz = nodes
    first, _ = ru.submit(padded_request(), actor="test")
    second, _ = ru.submit(padded_request(), actor="test")
    claims = {c.message_id: c for c in ru.claim_due("w")}

    # The first delivery goes as it should: its receipt is stored.
    outgoing = ru.outgoing(claims[first.message_id])
    answer = kz.receive(ru.body_id, outgoing.wire)
    assert answer.disposition is Disposition.ACCEPTED
    done = ru.record_answer(claims[first.message_id], outgoing.signed, answer.body, Answer.RECEIPT)
    assert done.outcome is DeliveryResult.DELIVERED
    with ru.store.read() as conn:
        earlier = receipt_store.get(conn, first.message_id)
    assert earlier is not None

    # The second: the peer's Receipt names it and its digest, under a MessageId taken here.
    claim = claims[second.message_id]
    outgoing = ru.outgoing(claim)
    assert kz.receive(ru.body_id, outgoing.wire).disposition is Disposition.ACCEPTED
    now = datetime.now(UTC)
    receipt = _receipt(kz, outgoing.signed, now)
    receipt["header"]["MessageId"] = (
        earlier.receipt_message_id if reused == "earlier-receipt" else second.message_id
    )
    forged = kz.sign_machine_document(receipt, now)

    result = ru.record_answer(claim, outgoing.signed, forged, Answer.RECEIPT)

    with ru.store.read() as conn:
        recorded = receipt_store.get(conn, second.message_id)
        state = outbox_store.states_of(conn, [second.message_id])[second.message_id]
    if result.outcome is DeliveryResult.DELIVERED:  # then its signed receipt must be kept
        assert recorded is not None, "marked delivered, but no receipt of it is stored"
    assert result.outcome is DeliveryResult.RETRY, result
    assert result.code == "RECEIPT_MISMATCH"
    assert state != "delivered"
    assert recorded is None


def test_a_receipt_dated_in_the_future_does_not_start_the_legal_clock_there(
    nodes: tuple[Node, Node],
) -> None:
    """The requested party's Receipt starts the term (CIS Art. 12, "со дня получения") at its
    Created. A peer whose Receipt claims to be written 60 days from now, sealed now, must not
    move the start of its own term (and the due date, the late-answer flag, the reminders)
    two months ahead on our side: a document from the future is refused on receipt
    (CLOCK_SKEW), and so must an answer be."""
    ru, kz = nodes
    sent, _ = ru.submit(padded_request(), actor="test")
    (claim,) = [c for c in ru.claim_due("w") if c.message_id == sent.message_id]
    outgoing = ru.outgoing(claim)
    assert kz.receive(ru.body_id, outgoing.wire).disposition is Disposition.ACCEPTED
    now = datetime.now(UTC)
    receipt = _receipt(kz, outgoing.signed, now + timedelta(days=60))
    forged = kz.sign_machine_document(receipt, now)  # sealed now: the signature is good

    result = ru.record_answer(claim, outgoing.signed, forged, Answer.RECEIPT)

    with ru.store.read() as conn:
        _, state = load_state(conn, sent.conversation_id)
    assert state is not None
    started = state.clock.started_at
    assert started is None or started <= datetime.now(UTC) + MAX_CLOCK_SKEW, started
    assert result.outcome is DeliveryResult.RETRY, result

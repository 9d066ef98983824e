"""The Supreme Courts agreement at a node (KZ-VS) on SQLite and PostgreSQL, with RU-VS's real
keys: a partial refusal beside the response for the rest (SC Art. 6.2), "not confirmed" stopping
execution (SC Art. 5.3), an urgent request (SC Art. 5.2) and its expected term (SC Art. 5.1 г)).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from gateway.app.scheduled import deadline_reminders_body
from gateway.demo.play import reply
from gateway.demo.setup import DemoWorld
from gateway.exchange.conversation import ProtocolError
from gateway.exchange.local_service import LocalNodeService
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from gateway.exchange.service import ConversationFilter
from gateway.jobs.scheduler import JobRun
from gateway.store import conversations as conv_store
from tests.integration.exchange_world import (
    OPERATOR,
    Signer,
    audit_rows,
    body_fields,
    conversation_state,
    header_field,
    node_on_store,
)

REQUESTED, REQUESTING = "KZ-VS", "RU-VS"
REQUEST = "ru-kz-supreme-courts.Request"


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def node(request: pytest.FixtureRequest, world: DemoWorld) -> Iterator[Node]:
    with node_on_store(request, world, REQUESTED, "supreme") as node:
        yield node


@pytest.fixture(scope="module")
def court(world: DemoWorld) -> Signer:
    return Signer.of(world, REQUESTING)


def _signed(court: Signer, template: str, body: dict[str, str], **header: object) -> bytes:
    """``template`` from RU-VS with body fields set (by element name), signed."""
    root = court.unsigned(template, now(), Recipient=REQUESTED, **header)
    for name, text in body.items():
        [element] = root.xpath(f"//*[local-name()='{name}']")
        element.text = text
    return court.sign(root, now())


def _request(
    node: Node, court: Signer, body: dict[str, str] | None = None, **header: object
) -> bytes:
    document = _signed(court, REQUEST, body or {}, **header)
    assert node.receive(REQUESTING, document).disposition is Disposition.ACCEPTED
    return document


def _answer(node: Node, template: str, to: bytes, **body: object) -> None:
    document = reply(
        f"ru-kz-supreme-courts.{template}",
        {
            "conversation_id": header_field(to, "ConversationId"),
            "message_id": header_field(to, "MessageId"),
        },
        REQUESTING,
    )
    kind = document["header"]["Kind"]
    document["body"][kind].update(body)
    document["body"][kind] = {k: v for k, v in document["body"][kind].items() if v is not None}
    node.submit(document, actor="operator-test")


def _stored(node: Node, document: bytes) -> conv_store.Conversation:
    with node.store.read() as conn:
        stored = conv_store.get(conn, header_field(document, "ConversationId"))
    assert stored is not None
    return stored


def test_a_partial_refusal_then_the_response_for_the_rest(node: Node, court: Signer) -> None:
    request = _request(node, court)
    _answer(node, "Refusal", request, Extent="partial")
    assert _stored(node, request).state == "in-progress"
    _answer(node, "Response", request, Complete=False)
    assert _stored(node, request).state == "answered"
    notices = [
        r["details"]["code"]
        for r in audit_rows(node.store, "operator.notified")
        if r["subjects"].get("conversation") == header_field(request, "ConversationId")
    ]
    assert "REQUEST_PARTIALLY_REFUSED" in notices


def test_a_full_refusal_still_closes_the_request(node: Node, court: Signer) -> None:
    request = _request(node, court)
    _answer(node, "Refusal", request, Extent="full", RefusedPart=None)
    assert _stored(node, request).state == "refused"


def test_authenticity_not_confirmed_stops_execution(node: Node, court: Signer) -> None:
    request = _request(node, court)
    _answer(node, "AuthenticityConfirmationRequest", request)
    assert _stored(node, request).state == "awaiting-authenticity"
    confirmation = _signed(
        court,
        "ru-kz-supreme-courts.AuthenticityConfirmation",
        {"Confirmed": "false"},
        ConversationId=header_field(request, "ConversationId"),
        InReplyTo=header_field(request, "MessageId"),
    )
    assert node.receive(REQUESTING, confirmation).disposition is Disposition.ACCEPTED
    assert conversation_state(node.store, header_field(request, "ConversationId")) == "withdrawn"
    assert _stored(node, request).closed_at is not None
    with pytest.raises(ProtocolError):
        _answer(node, "Response", request)


def test_an_urgent_request_notifies_at_once_and_its_expected_term_is_the_due_date(
    node: Node, court: Signer
) -> None:
    expected_by = (now() + timedelta(days=10)).date()
    request = _request(node, court, {"ExpectedBy": expected_by.isoformat()}, Urgency="urgent")
    stored = _stored(node, request)
    # SC Art. 6.1: 30 days "если иное не было согласовано"; the request asked for 10.
    assert stored.deadline == expected_by
    notices = [
        r["details"]
        for r in audit_rows(node.store, "operator.notified")
        if r["subjects"].get("conversation") == header_field(request, "ConversationId")
    ]
    assert any(n["code"] == "URGENT_REQUEST_RECEIVED" for n in notices), notices
    # The conversation's view (API, console) marks it urgent; a plain request is not.
    plain = _request(node, court)
    with ThreadPoolExecutor(1) as executor:
        service = LocalNodeService(node, executor)
        views = [
            asyncio.run(
                service.conversation(
                    header_field(document, "ConversationId"), actor=OPERATOR, purpose=None
                )
            )
            for document in (request, plain)
        ]
    assert [view.urgent for view in views] == [True, False]


def test_an_oral_request_is_confirmed_in_writing_and_its_dates_are_checked(
    node: Node, court: Signer
) -> None:
    """SC Art. 5.1 para. 2: the written confirmation of an oral request is a request; one dated
    before the oral request it confirms is refused at the node, naming the rule."""
    template = "ru-kz-supreme-courts.Request-oral"
    confirmation = _signed(court, template, {})
    assert node.receive(REQUESTING, confirmation).disposition is Disposition.ACCEPTED
    assert _stored(node, confirmation).state == "in-progress"
    tomorrow = (now() + timedelta(days=1)).date().isoformat()
    misdated = _signed(court, template, {"MadeOn": tomorrow, "ConfirmationAskedOn": tomorrow})
    refused = node.receive(REQUESTING, misdated)
    assert refused.disposition is Disposition.REFUSED
    assert body_fields(refused.body)["Code"] == "RULE_ORAL_REQUEST_DATES"


def test_an_urgent_request_is_marked_in_lists_and_reminded_at_every_run(
    node: Node, court: Signer
) -> None:
    """SC Art. 5.2: the list (API, console) marks an urgent request, and the reminder job names
    it at every run while it is open — not only in the last days before its due date."""
    urgent = _request(node, court, Urgency="urgent")
    plain = _request(node, court)
    ids = [header_field(document, "ConversationId") for document in (urgent, plain)]
    with ThreadPoolExecutor(1) as executor:
        service = LocalNodeService(node, executor)
        page = asyncio.run(
            service.list_conversations(ConversationFilter(), after=None, limit=200, actor=OPERATOR)
        )
    marked = {item.conversation_id: item.urgent for item in page.items}
    assert [marked[i] for i in ids] == [True, False]

    # Weeks before either due date (30 days), only the urgent one is reminded.
    soon = now() + timedelta(days=1)
    run = JobRun("deadline-reminders", soon, soon, "KZ-VS@test:1")
    reminded = {r.conversation_id for r in deadline_reminders_body(node.config, node.store)(run)}
    assert ids[0] in reminded and ids[1] not in reminded
    details = [
        r["details"]
        for r in audit_rows(node.store, "deadline.reminder")
        if r["subjects"].get("conversation_id") == ids[0]
    ]
    assert details and details[-1]["urgent"] is True

"""Reading a confidential conversation's documents through the local API of a real node:
role ``confidential-reader`` and a stated purpose (CIS Art. 9.1, 16; SC Art. 8), each refusal
and each read audited."""

from __future__ import annotations

import json

from tests.integration.confidentiality.harness import Pair


async def test_confidential_document_needs_role_then_purpose_and_every_step_is_audited(
    pair: Pair,
) -> None:
    exchange = await pair.confidential_exchange()
    message_id = exchange["request"]["message_id"]
    xml_path = f"/api/v1/messages/{message_id}/xml"
    operator = pair.token("KZ-MJ", ["operator"], "clerk")
    reader = pair.token("KZ-MJ", ["confidential-reader"], "investigator")
    before = len(pair.audit_events("KZ-MJ"))

    status, body = await pair.call("KZ-MJ", "GET", xml_path, token=operator, purpose="работа")
    assert status == 403, body
    error = json.loads(body)["error"]
    assert "confidential-reader" in error["message"]
    denied = [e for e in pair.audit_events("KZ-MJ")[before:] if e.kind == "access.denied"]
    assert [(e.actor, dict(e.subjects), e.details["needed"]) for e in denied] == [
        ("token:clerk", {"subject": message_id}, "confidential-reader")
    ]

    # The JSON view of the same document is guarded the same way.
    status, _ = await pair.call("KZ-MJ", "GET", f"/api/v1/messages/{message_id}", token=operator)
    assert status == 403

    status, body = await pair.call("KZ-MJ", "GET", xml_path, token=reader)
    assert status == 428, body
    assert json.loads(body)["error"]["code"] == "PURPOSE_REQUIRED"
    assert not [
        e
        for e in pair.audit_events("KZ-MJ")[before:]
        if e.kind == "document.read" and e.subjects.get("message") == message_id
    ]

    status, body = await pair.call(
        "KZ-MJ", "GET", xml_path, token=reader, purpose="исполнение запроса, ст. 9.1"
    )
    assert status == 200
    assert f"<env:MessageId>{message_id}</env:MessageId>".encode() in body
    assert b"<env:Confidential>true</env:Confidential>" in body
    reads = [
        e
        for e in pair.audit_events("KZ-MJ")[before:]
        if e.kind == "document.read" and e.subjects.get("message") == message_id
    ]
    assert len(reads) == 1
    assert reads[0].actor == "token:investigator"
    assert reads[0].details["confidential"] is True
    assert "ст. 9.1" not in json.dumps(dict(reads[0].details), ensure_ascii=False)


async def test_the_response_in_a_confidential_conversation_is_confidential_too(
    pair: Pair,
) -> None:
    """The Request's flag covers the whole conversation: the answer needs the role as well."""
    exchange = await pair.confidential_exchange()
    response_id = exchange["response"]["message_id"]
    operator = pair.token("RU-FSSP", ["operator"], "clerk")
    status, _ = await pair.call(
        "RU-FSSP", "GET", f"/api/v1/messages/{response_id}/xml", token=operator, purpose="x"
    )
    assert status == 403

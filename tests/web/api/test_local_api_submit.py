"""POST /api/v1/messages: 202 with the SubmitResult, 422 with problems, 4xx for bad requests."""

from __future__ import annotations

import json

from aiohttp.test_utils import TestClient

from gateway.model.limits import MAX_JSON_BYTES
from gateway.xml.convert import xml_to_json
from gateway.xml.parsing import parse_untrusted
from tests.doubles.local_service import LocalServiceDouble
from tests.web.api.conftest import EXAMPLES, OPERATOR, auth, example, fresh, reading

PROBLEM_KEYS = {"code", "path", "message_ru", "message_en", "remedy_ru", "article", "severity"}
MARKER = "Zyxwvut-Секрет-4242"
"""A value no error may echo."""


async def test_submit_is_202_and_stored_byte_exact(client: TestClient, service: LocalServiceDouble):
    document = fresh(example("cis-enforcement.Request"), "submit")
    response = await client.post("/api/v1/messages", json=document, headers=auth(OPERATOR))
    assert response.status == 202
    result = await response.json()
    message_id = document["header"]["MessageId"]
    assert result == {
        "message_id": message_id,
        "conversation_id": document["header"]["ConversationId"],
        "state": "submitted",
        "warnings": [],
    }
    assert response.headers["Location"] == f"/api/v1/messages/{message_id}"
    assert response.headers["Cache-Control"] == "no-store"

    xml = await client.get(f"/api/v1/messages/{message_id}/xml", headers=reading(OPERATOR))
    assert await xml.read() == service.messages[message_id].xml


async def test_schema_problem_is_422_with_problem_json(client: TestClient):
    document = fresh(example("cis-enforcement.Request"), "bad")
    document["header"]["Recipient"] = MARKER  # not a body id
    response = await client.post("/api/v1/messages", json=document, headers=auth(OPERATOR))
    assert response.status == 422
    payload = await response.json()
    assert payload["error"]["code"] == "DOCUMENT_REJECTED"
    assert payload["problems"]
    for problem in payload["problems"]:
        assert set(problem) == PROBLEM_KEYS
        assert problem["code"] and problem["path"].startswith("/")
        assert problem["message_ru"] and problem["message_en"]
    assert any("Recipient" in p["path"] for p in payload["problems"])


async def test_rule_problem_names_the_article(client: TestClient):
    root = parse_untrusted((EXAMPLES / "invalid" / "rule-income-period-too-long.xml").read_bytes())
    document = xml_to_json(root)
    response = await client.post("/api/v1/messages", json=document, headers=auth(OPERATOR))
    assert response.status == 422
    problems = (await response.json())["problems"]
    rule = next(p for p in problems if p["code"] == "RULE_INCOME_PERIOD_TOO_LONG")
    assert rule["article"] == "CIS Art. 7"
    assert rule["remedy_ru"]
    assert "EmploymentAndIncome" in rule["path"]


async def test_unknown_kind_is_422(client: TestClient):
    document = fresh(example("cis-enforcement.Request"), "kind")
    document["body"] = {"NoSuchKind": {}}
    document["header"]["Kind"] = "NoSuchKind"
    response = await client.post("/api/v1/messages", json=document, headers=auth(OPERATOR))
    assert response.status == 422
    codes = {p["code"] for p in (await response.json())["problems"]}
    assert codes and all(c.startswith(("JSON_", "SCHEMA_")) for c in codes)


async def test_duplicate_message_is_409(client: TestClient):
    document = fresh(example("cis-enforcement.Request"), "twice")
    first = await client.post("/api/v1/messages", json=document, headers=auth(OPERATOR))
    assert first.status == 202
    again = await client.post("/api/v1/messages", json=document, headers=auth(OPERATOR))
    assert again.status == 409
    payload = await again.json()
    assert payload["error"]["code"] == "PROTOCOL_DUPLICATE_MESSAGE"
    assert set(payload["problems"][0]) == PROBLEM_KEYS


async def _post_raw(client: TestClient, data: bytes, content_type: str = "application/json"):
    headers = {**auth(OPERATOR), "Content-Type": content_type}
    return await client.post("/api/v1/messages", data=data, headers=headers)


async def test_wrong_media_type_is_415(client: TestClient):
    response = await _post_raw(client, b"{}", "application/xml")
    assert response.status == 415
    assert (await response.json())["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    response = await _post_raw(client, b"{}", "application/json; charset=latin-1")
    assert response.status == 415


async def test_json_errors_are_400_and_do_not_echo(client: TestClient):
    cases = {
        b'{"header": {"Sender": "' + MARKER.encode() + b'" ': "line 1 column",
        b'{"header": {}, "header": {"x": "' + MARKER.encode() + b'"}}': "same key twice",
        b'{"header": NaN}': "NaN",
        b'["' + MARKER.encode() + b'"]': "one JSON object",
        b'{"a": "\xff' + MARKER.encode() + b'"}': "not UTF-8",
        b"[" * 100_000 + b"]" * 100_000: "nested",
    }
    for body, expected in cases.items():
        response = await _post_raw(client, body)
        assert response.status == 400, expected
        text = await response.text()
        error = json.loads(text)["error"]
        assert error["code"] == "INVALID_JSON"
        assert expected in error["message"]
        assert MARKER not in text


async def test_body_over_the_limit_is_413(client: TestClient):
    response = await _post_raw(client, b" " * (MAX_JSON_BYTES + 1))
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "BODY_TOO_LARGE"


async def test_submit_counts_by_agreement_and_kind(client: TestClient):
    await client.post(
        "/api/v1/messages",
        json=fresh(example("cis-enforcement.Request"), "count"),
        headers=auth(OPERATOR),
    )
    bad = fresh(example("cis-enforcement.Request"), "count-bad")
    bad["header"]["Recipient"] = "nope"
    await client.post("/api/v1/messages", json=bad, headers=auth(OPERATOR))
    text = await (await client.get("/metrics")).text()
    assert (
        'gateway_messages_submitted_total{agreement="cis-enforcement",kind="Request"} 1.0' in text
    )
    assert 'gateway_messages_rejected_total{code="SCHEMA_' in text
    assert 'source="local"' in text

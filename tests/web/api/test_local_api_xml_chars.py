"""Characters XML 1.0 cannot carry, in the JSON of a case system: a 422 naming the field."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient

from gateway.web.local_api import SECURITY_HEADERS
from gateway.web.metrics import GatewayMetrics
from gateway.web.xmlchars import first_forbidden
from tests.doubles.local_service import LocalServiceDouble
from tests.web.api.conftest import OPERATOR, READER, Seeded, auth, example, fresh

SURNAME = "/body/Request/Debtor/Individual/Surname"


def _with_surname(value: str) -> dict:
    document = fresh(example("cis-enforcement.Request"), f"chars {value!r}")
    document["body"]["Request"]["Debtor"]["Individual"]["Surname"] = value
    return document


@pytest.mark.parametrize(
    ("char", "name"),
    [("\u0000", "U+0000"), ("\u0001", "U+0001"), ("\u001b", "U+001B"), ("\ufffe", "U+FFFE")],
)
async def test_control_character_in_a_field_is_422_naming_the_field(
    client: TestClient, service: LocalServiceDouble, char: str, name: str
) -> None:
    response = await client.post(
        "/api/v1/messages", json=_with_surname(f"Пет{char}ров"), headers=auth(OPERATOR)
    )
    assert response.status == 422, await response.text()
    payload = await response.json()
    assert payload["error"]["code"] == "INVALID_CHARACTER"
    assert "XML 1.0" in payload["error"]["message"]
    (problem,) = payload["problems"]
    assert problem["code"] == "XML_CHAR_NOT_ALLOWED"
    assert problem["path"] == SURNAME
    assert name in problem["message_en"] and "position 4" in problem["message_en"]
    assert "not allowed in XML 1.0" in problem["message_en"]
    assert problem["remedy_ru"]
    assert "Пет" not in json.dumps(payload, ensure_ascii=False)  # the value is not echoed
    for header, value in SECURITY_HEADERS.items():
        assert response.headers[header] == value
    assert service.messages == {}  # nothing reached the service


async def test_lone_surrogate_and_bad_key_are_named(client: TestClient) -> None:
    document = fresh(example("cis-enforcement.Request"), "surrogate")
    body = json.dumps(document, ensure_ascii=True)
    # A JSON escape for half a surrogate pair decodes to a str no XML text node can hold.
    body = body.replace('"Language": "ru"', '"Language": "r\\ud800u"', 1)
    body = body.replace('"Debtor": {', '"Deb\\u0007tor": {', 1)
    response = await client.post(
        "/api/v1/messages",
        data=body.encode(),
        headers={**auth(OPERATOR), "Content-Type": "application/json"},
    )
    assert response.status == 422
    problems = (await response.json())["problems"]
    assert [p["path"] for p in problems] == ["/header/Language", "/body/Request"]
    assert "U+D800" in problems[0]["message_en"]
    assert "a key of the object at /body/Request" in problems[1]["message_en"]


@pytest.mark.parametrize("text", ["\t\n\r", "\x7f\x85", "\ud7ff\ue000\ufffd", "\U0001f600"])
def test_characters_of_the_char_production_pass(text: str) -> None:
    assert first_forbidden(f"a{text}b") is None


@pytest.mark.parametrize("char", ["\x00", "\x08", "\x0b", "\x0c", "\x1f", "\ud800", "\uffff"])
def test_characters_outside_it_are_found(char: str) -> None:
    assert first_forbidden(f"ab{char}c") == 2


async def test_rejection_is_counted_as_local(client: TestClient, metrics: GatewayMetrics) -> None:
    await client.post("/api/v1/messages", json=_with_surname("a\u0002b"), headers=auth(OPERATOR))
    exposition = metrics.exposition().decode()
    assert (
        'gateway_messages_rejected_total{code="XML_CHAR_NOT_ALLOWED",source="local"} 1.0'
        in exposition
    )


async def test_disclosure_fields_are_checked_too(client: TestClient, seeded: Seeded) -> None:
    response = await client.post(
        f"/api/v1/messages/{seeded.confidential_message}/disclosures",
        json={"recipient": "Управляющий\u0000", "category": "third-party", "purpose": "масса"},
        headers=auth(READER),
    )
    assert response.status == 422
    (problem,) = (await response.json())["problems"]
    assert problem["path"] == "/recipient"

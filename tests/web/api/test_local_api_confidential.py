"""Confidential reads: the role (403), the stated purpose (428 without it; CIS Art. 9.1)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient

from gateway.web.local_api import MAX_PURPOSE_CHARS
from tests.doubles.local_service import LocalServiceDouble
from tests.web.api.conftest import OPERATOR, READER, Seeded, auth

PURPOSE = "Исполнительное производство № 12345/26/77001-ИП: розыск имущества должника"

READS = ["", "/xml", "/pdf", "/report"]


def _message(seeded: Seeded, suffix: str) -> str:
    return f"/api/v1/messages/{seeded.confidential_message}{suffix}"


@pytest.mark.parametrize("suffix", READS)
async def test_without_the_role_is_403(client: TestClient, seeded: Seeded, suffix: str):
    response = await client.get(_message(seeded, suffix), headers=auth(OPERATOR))
    assert response.status == 403
    error = (await response.json())["error"]
    assert error == {
        "code": "FORBIDDEN",
        "role": "confidential-reader",
        "message": "this action needs the role confidential-reader",
        "message_ru": "Для этого действия нужна роль «confidential-reader».",
    }


@pytest.mark.parametrize("suffix", READS)
async def test_without_purpose_is_428(
    client: TestClient, seeded: Seeded, service: LocalServiceDouble, suffix: str
):
    response = await client.get(_message(seeded, suffix), headers=auth(READER))
    assert response.status == 428
    error = (await response.json())["error"]
    assert error["code"] == "PURPOSE_REQUIRED"
    assert "X-Purpose" in error["message"] and "9.1" in error["message"]
    blank = await client.get(_message(seeded, suffix), headers={**auth(READER), "X-Purpose": "   "})
    assert blank.status == 428
    assert service.reads == []


@pytest.mark.parametrize("suffix", READS)
async def test_purpose_in_header_is_passed_decoded(
    client: TestClient, seeded: Seeded, service: LocalServiceDouble, suffix: str
):
    headers = {**auth(READER), "X-Purpose": quote(PURPOSE)}
    response = await client.get(_message(seeded, suffix), headers=headers)
    assert response.status == 200
    assert [(r.actor, r.target, r.purpose) for r in service.reads] == [
        ("reader", seeded.confidential_message, PURPOSE)
    ]


async def test_purpose_in_query(client: TestClient, seeded: Seeded, service: LocalServiceDouble):
    response = await client.get(
        _message(seeded, ""), params={"purpose": PURPOSE}, headers=auth(READER)
    )
    assert response.status == 200
    assert (await response.json())["summary"]["confidential"] is True
    assert service.reads[-1].purpose == PURPOSE

    both = await client.get(
        _message(seeded, ""),
        params={"purpose": PURPOSE},
        headers={**auth(READER), "X-Purpose": quote(PURPOSE)},
    )
    assert both.status == 200


async def test_confidential_conversation_needs_purpose(
    client: TestClient, seeded: Seeded, service: LocalServiceDouble
):
    path = f"/api/v1/conversations/{seeded.confidential_conversation}"
    assert (await client.get(path, headers=auth(READER))).status == 428
    ok = await client.get(path, headers={**auth(READER), "X-Purpose": quote(PURPOSE)})
    assert ok.status == 200
    assert service.reads[-1].action == "conversation"


@pytest.mark.parametrize("suffix", READS)
async def test_plain_message_needs_a_purpose_too(
    client: TestClient, seeded: Seeded, service: LocalServiceDouble, suffix: str
):
    """CIS Art. 9.1 holds for every document, not only confidential ones: its content is
    read for a stated purpose; without one nothing is read and nothing audited as a read."""
    path = f"/api/v1/messages/{seeded.plain_message}{suffix}"
    refused = await client.get(path, headers=auth(OPERATOR))
    assert refused.status == 428
    assert (await refused.json())["error"]["code"] == "PURPOSE_REQUIRED"
    assert service.reads == []
    response = await client.get(path, headers={**auth(OPERATOR), "X-Purpose": quote(PURPOSE)})
    assert response.status == 200
    assert [(r.actor, r.target, r.purpose) for r in service.reads] == [
        ("case-system", seeded.plain_message, PURPOSE)
    ]
    if suffix == "":
        view = await response.json()
        assert view["summary"]["message_id"] == seeded.plain_message
        assert "Request" in view["body"]


async def test_plain_conversation_needs_no_purpose(
    client: TestClient, seeded: Seeded, service: LocalServiceDouble
):
    """Metadata only (kinds, times, parties): no purpose, no read recorded."""
    path = f"/api/v1/conversations/{seeded.plain_conversation}"
    assert (await client.get(path, headers=auth(OPERATOR))).status == 200
    assert service.reads == []


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"X-Purpose": quote("цель\x00скрытая")}, {}),
        ({"X-Purpose": quote("ц" * (MAX_PURPOSE_CHARS + 1))}, {}),
        ({"X-Purpose": "%FF%FE"}, {}),
        ({"X-Purpose": quote(PURPOSE)}, {"purpose": "другая цель"}),
        ({}, {"purpose": "цель\u202eскрытая"}),
    ],
)
async def test_bad_purpose_is_400(
    client: TestClient, seeded: Seeded, service: LocalServiceDouble, headers, params
):
    response = await client.get(
        _message(seeded, ""), headers={**auth(READER), **headers}, params=params
    )
    assert response.status == 400
    text = await response.text()
    assert (await response.json())["error"]["code"] == "INVALID_PARAMETER"
    assert "скрытая" not in text and "другая" not in text
    assert service.reads == []

"""Downloads: the signed XML byte-exact, the PDF, the receipt; their headers."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient

from tests.doubles.local_service import FAKE_PDF, LocalServiceDouble
from tests.web.api.conftest import OPERATOR, READER, Seeded, auth, reading


def _assert_download(response, media_type: str, filename: str) -> None:
    assert response.status == 200
    assert response.headers["Content-Type"] == media_type
    assert response.headers["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_xml_is_byte_exact(client: TestClient, seeded: Seeded, service: LocalServiceDouble):
    message_id = seeded.plain_message
    response = await client.get(f"/api/v1/messages/{message_id}/xml", headers=reading(OPERATOR))
    _assert_download(response, "application/xml", f"{message_id}.xml")
    assert await response.read() == service.messages[message_id].xml


async def test_pdf(client: TestClient, seeded: Seeded):
    message_id = seeded.plain_message
    response = await client.get(f"/api/v1/messages/{message_id}/pdf", headers=reading(OPERATOR))
    _assert_download(response, "application/pdf", f"{message_id}.pdf")
    assert await response.read() == FAKE_PDF


async def test_confidential_xml_with_purpose(client: TestClient, seeded: Seeded):
    message_id = seeded.confidential_message
    response = await client.get(
        f"/api/v1/messages/{message_id}/xml",
        headers={**auth(READER), "X-Purpose": quote("проверка")},
    )
    _assert_download(response, "application/xml", f"{message_id}.xml")


async def test_receipt(client: TestClient, seeded: Seeded):
    # The received message is confidential: its receipt is read as the message is.
    message_id = seeded.received_message
    url = f"/api/v1/messages/{message_id}/receipt"
    assert (await client.get(url, headers=auth(OPERATOR))).status == 403
    assert (await client.get(url, headers=auth(READER))).status == 428
    response = await client.get(url, headers={**auth(READER), "X-Purpose": quote("розыск")})
    _assert_download(response, "application/xml", f"{message_id}.receipt.xml")
    assert await response.read() == seeded.receipt

    none_yet = await client.get(
        f"/api/v1/messages/{seeded.plain_message}/receipt", headers=reading(OPERATOR)
    )
    assert none_yet.status == 404


async def test_report(client: TestClient, seeded: Seeded):
    response = await client.get(
        f"/api/v1/messages/{seeded.plain_message}/report", headers=reading(OPERATOR)
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert (await response.json())["indication"] == "TOTAL_PASSED"


@pytest.mark.parametrize(
    "message_id",
    [
        "73A1CC21-9D8D-52DC-8153-353252CFF02F",  # upper case: not the XSD's canonical form
        "not-a-uuid",
        "..%2F..%2Fetc%2Fpasswd",
        "73a1cc21-9d8d-52dc-8153-353252cff02f%22%3B%20x%3D",
    ],
)
@pytest.mark.parametrize("suffix", ["", "/xml", "/pdf", "/receipt", "/report"])
async def test_malformed_id_is_400(client: TestClient, message_id: str, suffix: str):
    response = await client.get(f"/api/v1/messages/{message_id}{suffix}", headers=auth(OPERATOR))
    assert response.status in {400, 404}
    body = await response.json()
    assert body["error"]["code"] in {"INVALID_PARAMETER", "NOT_FOUND"}
    assert "Content-Disposition" not in response.headers
    if response.status == 400:
        assert body["error"]["parameter"] == "message_id"


async def test_unknown_message_is_404(client: TestClient, seeded: Seeded):
    for suffix in ["", "/xml", "/pdf", "/receipt", "/report"]:
        response = await client.get(
            f"/api/v1/messages/00000000-0000-4000-8000-000000000000{suffix}",
            headers=auth(OPERATOR),
        )
        assert response.status == 404, suffix
        assert (await response.json())["error"]["code"] == "NOT_FOUND"


async def test_unexpected_query_parameter_is_400(client: TestClient, seeded: Seeded):
    response = await client.get(
        f"/api/v1/messages/{seeded.plain_message}/receipt?format=x", headers=auth(OPERATOR)
    )
    assert response.status == 400

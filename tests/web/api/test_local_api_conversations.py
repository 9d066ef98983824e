"""GET /api/v1/conversations: filters, keyset paging, and clear 400s for bad parameters."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from gateway.web.local_api import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from tests.web.api.conftest import OPERATOR, READER, Seeded, auth

LIST = "/api/v1/conversations"
MARKER = "Zyxwvut4242"


async def _list(client: TestClient, **params: str):
    return await client.get(LIST, params=params, headers=auth(OPERATOR))


async def test_default_page_holds_all_newest_first(client: TestClient, seeded: Seeded):
    assert seeded.conversations < DEFAULT_PAGE_LIMIT
    page = await (await _list(client)).json()
    assert page["next_cursor"] is None
    items = page["items"]
    assert len(items) == seeded.conversations
    opened = [item["opened_at"] for item in items]
    assert opened == sorted(opened, reverse=True)
    assert set(items[0]) >= {"conversation_id", "agreement", "state", "confidential", "deadline"}


async def test_paging_with_cursor_visits_each_once(client: TestClient, seeded: Seeded):
    seen: list[str] = []
    after = None
    for _ in range(seeded.conversations + 1):
        params = {"limit": "2"} | ({"after": after} if after else {})
        page = await (await _list(client, **params)).json()
        assert len(page["items"]) <= 2
        seen += [item["conversation_id"] for item in page["items"]]
        after = page["next_cursor"]
        if after is None:
            break
    assert len(seen) == len(set(seen)) == seeded.conversations


async def test_filters_reach_the_service(client: TestClient, seeded: Seeded):
    secret = await (await _list(client, confidential="true")).json()
    assert [i["conversation_id"] for i in secret["items"]] == [seeded.confidential_conversation]
    plain = await (await _list(client, confidential="false")).json()
    assert len(plain["items"]) == seeded.conversations - 1

    courts = await (await _list(client, agreement="ru-kz-supreme-courts")).json()
    assert [i["agreement"] for i in courts["items"]] == ["ru-kz-supreme-courts"]
    by_body = await (await _list(client, body="RU-VS")).json()
    assert by_body["items"] == courts["items"]
    assert (await (await _list(client, kind="Withdrawal")).json())["items"] == []
    assert len((await (await _list(client, state="submitted")).json())["items"]) == (
        seeded.conversations
    )
    # Deadlines are 30 days after each opening (the double's rule); all fall before 2027.
    assert (await (await _list(client, deadline_before="2026-12-01")).json())["items"] == []
    early = await (await _list(client, deadline_before="2027-01-01")).json()
    assert len(early["items"]) == seeded.conversations


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": str(MAX_PAGE_LIMIT + 1)}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "٣"}, "limit"),  # a digit, but not ASCII
        ({"agreement": MARKER}, "agreement"),
        ({"state": MARKER}, "state"),
        ({"kind": MARKER}, "kind"),
        ({"body": MARKER}, "body"),
        ({"deadline_before": MARKER}, "deadline_before"),
        ({"deadline_before": "20261201"}, "deadline_before"),
        ({"confidential": "yes"}, "confidential"),
        ({"after": MARKER + "!"}, "after"),
        ({"after": "a" * 513}, "after"),
        ({"q": "   "}, "q"),
        ({"q": MARKER * 20}, "q"),
    ],
)
async def test_bad_parameter_is_400_naming_it(client: TestClient, params, parameter: str):
    response = await _list(client, **params)
    assert response.status == 400
    text = await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "INVALID_PARAMETER"
    assert error["parameter"] == parameter
    assert parameter in error["message"] and parameter in error["message_ru"]
    assert MARKER not in text


async def test_unknown_and_repeated_parameters_are_400(client: TestClient):
    response = await _list(client, **{MARKER: "1"})
    assert response.status == 400
    assert MARKER not in await response.text()
    assert "limit" in (await response.json())["error"]["message"]

    response = await client.get(f"{LIST}?limit=1&limit=2", headers=auth(READER))
    assert response.status == 400
    assert (await response.json())["error"]["parameter"] == "limit"


async def test_limit_bounds_are_accepted(client: TestClient, seeded: Seeded):
    assert (await _list(client, limit="1")).status == 200
    assert (await _list(client, limit=str(MAX_PAGE_LIMIT))).status == 200


async def test_conversation_view(client: TestClient, seeded: Seeded):
    response = await client.get(f"{LIST}/{seeded.plain_conversation}", headers=auth(OPERATOR))
    assert response.status == 200
    view = await response.json()
    assert view["summary"]["conversation_id"] == seeded.plain_conversation
    assert [m["message_id"] for m in view["messages"]] == [seeded.plain_message]
    assert view["working_days_left"] == 12

    missing = await client.get(
        f"{LIST}/00000000-0000-0000-0000-000000000000", headers=auth(OPERATOR)
    )
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "NOT_FOUND"

"""The conversation list's case number and debtor, and the search by them, in a real browser
over two real nodes (issue #15 item 3): KZ-MJ's operator finds a received request by its case
number and by its debtor (typed in another case and spacing); the list shows the masked
debtor; a confidential request's row shows «скрыто» instead of the case number and debtor to
an operator without confidential-reader, whose search does not find it, while a reader finds it
and sees the masked debtor. No page may log a browser error."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from gateway.demo.play import example
from tests.browser.conftest import Nodes, screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


def _request(surname: str, case: str) -> dict[str, Any]:
    document = copy.deepcopy(example("cis-enforcement.Request"))
    document["body"]["Request"]["Debtor"]["Individual"]["Surname"] = surname
    document["body"]["Request"]["Proceeding"]["Number"] = case
    return document


async def _search(page: Any, query: str) -> None:
    await page.fill("#filter-q", query)
    await page.click("#filter-submit")
    await page.wait_for_selector("#filter-form")


async def test_search_by_case_number_and_debtor(nodes: Nodes, context) -> None:
    ctx, _ = context
    near = (date.today() + timedelta(days=3)).isoformat()  # on the overview's deadline list
    plain = await nodes.submit_request(
        document=_request("Поисков", "777/26/77001-ИП"), requested_deadline=near
    )
    await nodes.submit_request(document=_request("Другов", "778/26/77001-ИП"))
    secret = await nodes.submit_request(
        document=_request("Секретов", "779/26/77001-ИП"), confidential=True
    )
    cid, secret_cid = plain["conversation_id"], secret["conversation_id"]

    page = await sign_in(ctx, nodes.kz, "operator")  # on the overview
    shown = await page.locator(f"#deadline-case-{plain['conversation_id']}").inner_text()
    assert shown == "777/26/77001-ИП · Поисков И. В."
    await page.goto(f"{nodes.kz.url}/conversations")
    await _search(page, "777/26/77001-ип")
    rows = page.locator("#conversations-table tbody tr")
    assert await rows.count() == 1
    assert await page.locator(f"#case-{cid}").inner_text() == "777/26/77001-ИП"
    assert await page.locator(f"#debtor-{cid}").inner_text() == "Поисков И. В."
    assert await page.input_value("#filter-q") == "777/26/77001-ип"  # the form keeps it
    await screenshot(page, "conversations-search-case")

    await _search(page, "ПОИСКОВ  игорь витальевич")
    assert await rows.count() == 1
    assert await page.locator(f"#conversation-{cid}").count() == 1
    await _search(page, "Поиск")  # the index is exact after normalisation, not a prefix
    assert await page.locator("#conversations-empty").count() == 1

    # Confidential: an operator's search does not find it (a hit would tell its debtor); the
    # list shows its row with «скрыто» for the case number and the debtor.
    await _search(page, "779/26/77001-ИП")
    assert await page.locator("#conversations-empty").count() == 1
    await page.goto(f"{nodes.kz.url}/conversations?confidential=yes")
    assert await page.locator(f"#case-{secret_cid}").inner_text() == "скрыто"
    assert await page.locator(f"#debtor-{secret_cid}").inner_text() == "скрыто"
    html = await page.content()
    assert "Секретов" not in html and "779/26/77001" not in html
    await screenshot(page, "conversations-confidential-operator")

    reader = await sign_in(ctx, nodes.kz, "reader")
    query = urlencode({"q": "секретов"})
    await reader.goto(f"{nodes.kz.url}/conversations?{query}")
    assert await reader.locator(f"#debtor-{secret_cid}").inner_text() == "Секретов И. В."
    assert await reader.locator(f"#case-{secret_cid}").inner_text() == "779/26/77001-ИП"

    # The local API searches the same way (a case system's token).
    async with nodes.http.get(
        f"{nodes.kz.api}/conversations",
        params={"q": "поисков"},
        headers={"Authorization": f"Bearer {nodes.kz.token}"},
    ) as response:
        assert response.status == 200
        items = (await response.json())["items"]
    assert [(i["conversation_id"], i["case_number"], i["debtor"]) for i in items] == [
        (cid, "777/26/77001-ИП", "Поисков И. В.")
    ]

    # The sender's console indexes what it sent the same way.
    sender = await sign_in(ctx, nodes.ru, "operator")
    await sender.goto(f"{nodes.ru.url}/conversations?{urlencode({'q': 'Поисков'})}")
    assert await sender.locator(f"#debtor-{cid}").inner_text() == "Поисков И. В."

"""The message page shows the report recorded at receipt; verifying again is a button, and the
result the node records is what the page shows afterwards."""

from __future__ import annotations

from tests.web.console.conftest import reading_as, signed_in


async def test_the_page_shows_no_report_until_one_is_recorded_and_reverifies_on_request(
    client, service, seeded
) -> None:
    token = await reading_as(client, "operator1", seeded.cis)
    page = f"/conversations/{seeded.cis}/messages/{seeded.cis_request}"
    before = await (await client.get(page)).text()
    assert 'id="no-report"' in before
    assert 'id="reverify-form"' in before
    assert "reverify" not in service.calls, "showing a message never verifies it"

    response = await client.post(
        f"{page}/verify", data={"csrf_token": token}, allow_redirects=False
    )

    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"{page}#verification"
    assert service.calls.count("reverify") == 1
    after = await (await client.get(page)).text()
    assert 'id="recorded-report"' in after
    assert "повторная проверка" in after
    assert "Печать органа" in after
    # The proof of existence a signature's validity rests on is named (issue #19); a report
    # recorded without one (the seal here, or reports recorded before) shows none.
    assert after.count('class="existence-evidence"') == 1
    assert "the peer&#39;s receipt R-1 sealed by KZ-MJ" in after


async def test_reverifying_without_the_csrf_token_is_refused(client, service, seeded) -> None:
    await signed_in(client, "operator1")
    page = f"/conversations/{seeded.cis}/messages/{seeded.cis_request}"
    response = await client.post(f"{page}/verify", data={}, allow_redirects=False)
    assert response.status == 403
    assert "reverify" not in service.calls

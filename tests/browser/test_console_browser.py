"""The console in a real browser, over two real nodes: sign in, find a request near its deadline,
refuse it in KZ-MJ's console and see the refusal arrive in RU-FSSP's; masked confidential
fields; a form post without its CSRF token; the administration pages. Screenshots of each main
page go to tests/artifacts/screenshots/; no page may log an error to the browser console."""

from __future__ import annotations

import asyncio
import re
from datetime import date, timedelta

import pytest

from gateway.web.console.labels import KIND_LABELS
from tests.browser.conftest import Nodes, screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

REFUSED_WAIT_SECONDS = 20.0


def _near_deadline() -> str:
    """A requested deadline three days ahead (CIS Art. 12 para. 2): near by any calendar."""
    return (date.today() + timedelta(days=3)).isoformat()


async def _until_state(page, url: str, state: str) -> None:
    """Reload the conversation's page until it shows ``state`` (what the peer sent arrived).
    Until the first document arrives the page is a 404 without a summary: reload, do not wait
    on it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REFUSED_WAIT_SECONDS
    while True:
        await page.goto(url)
        summary = page.locator("#summary-state")
        if await summary.count() and await summary.get_attribute("data-state") == state:
            return
        assert loop.time() < deadline, f"{url} did not reach {state!r}"
        await asyncio.sleep(0.3)


async def test_refusal_round_trip(nodes: Nodes, context) -> None:
    ctx, _ = context
    request = await nodes.submit_request(requested_deadline=_near_deadline())
    cid = request["conversation_id"]

    # KZ-MJ's operator signs in and sees the request near its deadline on the dashboard.
    kz = await sign_in(ctx, nodes.kz, "operator")
    row = kz.locator(f"#deadline-{cid}")
    await row.wait_for()
    assert re.search(r"\bnear\b|\boverdue\b", await row.get_attribute("class") or "")
    await screenshot(kz, "dashboard")

    # The list shows it too; open it from there.
    await kz.click("#nav-conversations")
    await kz.locator(f"#conversation-{cid}").wait_for()
    await screenshot(kz, "conversations")
    await kz.click(f"#conversation-{cid} a")
    await kz.locator("#timeline").wait_for()
    assert await kz.get_attribute("#summary-state", "data-state") == "in-progress"
    assert await kz.locator("#action-respond").count() == 1
    assert await kz.locator("#action-withdraw").count() == 0  # RU's to send, not ours
    await screenshot(kz, "conversation")
    # Every document's content is read for a stated purpose (CIS Art. 9.1).
    await kz.fill("#purpose", "Исполнительное производство № 7510-26, исполнение запроса.")
    await kz.click("#purpose-submit")
    await kz.locator("#timeline").wait_for()
    opening = kz.locator("#timeline a[id^=open-]").first
    await opening.click()
    await kz.locator("#message-body").wait_for()
    assert await kz.locator("#masked-notice").count() == 0
    await screenshot(kz, "message")
    await kz.go_back()

    # Refuse it with grounds (CIS Art. 13).
    await kz.click("#action-refuse")
    await kz.locator("#refusal-form").wait_for()
    await kz.check("#ground-contrary-to-law")
    await kz.fill("#Circumstances", "Запрошенные сведения не подлежат передаче по закону.")
    await kz.check("#consultations-no")
    await screenshot(kz, "refusal-form")
    await kz.click("#refusal-submit")
    await kz.locator("#flash").wait_for()
    assert "принят к отправке" in await kz.inner_text("#flash")
    assert await kz.get_attribute("#summary-state", "data-state") == "refused"

    # RU-FSSP's operator sees the refusal arrive (the page is reloaded until it shows).
    ru = await sign_in(ctx, nodes.ru, "operator")
    await _until_state(ru, f"{nodes.ru.url}/conversations/{cid}", "refused")
    assert await ru.locator("#timeline tr[id^=message-]").count() >= 2
    await screenshot(ru, "refusal-arrived")


async def test_a_request_opened_in_the_console_reaches_the_other_body(
    nodes: Nodes, context
) -> None:
    """KZ-MJ's operator opens a conversation from the list («Новый запрос»), fills the CIS
    request (Art. 11) and sends it; RU-FSSP's operator sees it arrive."""
    ctx, errors = context
    kz = await sign_in(ctx, nodes.kz, "operator")
    await kz.click("#nav-conversations")
    await kz.click("#new-request-cis-enforcement")
    await kz.locator("#request-form").wait_for()
    assert await kz.input_value("#RequestingAuthority")  # our body's name, filled in
    await kz.select_option("#Recipient", "RU-FSSP")
    for field, value in {
        "#Proceeding-Number": "3312/26/02001-ИП",
        "#Proceeding-Opened": "2026-10-01",
        "#EnforcementDocument-Title": "Исполнительный лист",
        "#EnforcementDocument-Number": "ВС № 9931",
        "#EnforcementDocument-Date": "2026-09-20",
        "#EnforcementDocument-Issuer-Name": "Районный суд № 2 г. Астаны",
        "#Creditor-Individual-Surname": "Сериков",
        "#Creditor-Individual-Name": "Арман",
        "#Creditor-Individual-Residence": "г. Астана, ул. Кенесары, д. 5",
        "#Debtor-Individual-Surname": "Образцов",
        "#Debtor-Individual-Name": "Пётр",
        "#Debtor-Individual-Residence": "г. Москва, ул. Тверская, д. 7",
        "#Debtor-Individual-BirthDate": "1979-02-11",
        "#Debtor-Individual-BirthPlace": "г. Тула",
        "#OperativePart": "Взыскать с Образцова П. в пользу Серикова А. 900 000 тенге.",
        "#Content": "Просим сообщить о счетах должника в банках Российской Федерации.",
        "#FactualCircumstances": "Должник выехал в Российскую Федерацию в 2026 году.",
    }.items():
        await kz.fill(field, value)
    for choice in ("#EnforcementDocument-Issuer-Kind-court", "#CreditorKind-individual"):
        await kz.check(choice)
    await kz.check("#DebtorKind-individual")
    await kz.check("#Assets-Kind-bank-accounts")
    await screenshot(kz, "new-request")
    await kz.click("#request-submit")
    await kz.locator("#flash").wait_for()
    assert "Запрос принят к отправке" in await kz.inner_text("#flash")
    cid = kz.url.rstrip("/").rsplit("/", 1)[-1]
    errors.expect(404, f"/conversations/{cid}")  # RU-FSSP's page, until the request arrives
    ru = await sign_in(ctx, nodes.ru, "operator")
    await _until_state(ru, f"{nodes.ru.url}/conversations/{cid}", "in-progress")


async def test_delay_notice_form(nodes: Nodes, context) -> None:
    """An action form other than the refusal, through the browser: a delay notice."""
    ctx, errors = context
    request = await nodes.submit_request()
    cid = request["conversation_id"]
    errors.expect(422, f"/conversations/{cid}/actions/delay")
    kz = await sign_in(ctx, nodes.kz, "operator")
    await kz.goto(f"{nodes.kz.url}/conversations/{cid}")
    await kz.click("#action-delay")
    await kz.locator("#action-form").wait_for()
    await kz.fill("#Reason", "Сведения запрошены у органов государственных доходов.")
    await kz.click("#action-submit")  # no expected date: the CIS form requires one
    await kz.locator("#error-ExpectedDate").wait_for()
    assert "Сведения запрошены" in await kz.input_value("#Reason")
    await kz.fill("#ExpectedDate", (date.today() + timedelta(days=40)).isoformat())
    await screenshot(kz, "action-form")
    await kz.click("#action-submit")
    await kz.locator("#flash").wait_for()
    assert await kz.locator("#timeline tr", has_text="Уведомление").count() >= 1


async def test_confidential_fields_are_masked(nodes: Nodes, context) -> None:
    ctx, errors = context
    request = await nodes.submit_request(confidential=True)
    cid = request["conversation_id"]
    errors.expect(403, f"/conversations/{cid}")
    plain = await sign_in(ctx, nodes.kz, "operator")
    # Without confidential-reader not even the list of its documents is shown (the node
    # refuses it): the page names the role that is missing.
    await plain.goto(f"{nodes.kz.url}/conversations/{cid}")
    assert await plain.locator("#masked-content").count() == 1
    assert await plain.locator("#locked-reason").count() == 1
    assert await plain.locator("#timeline").count() == 0
    body = await plain.inner_text("main")
    assert "скрыто" in body
    assert "Примеров" not in body and "Образцовая" not in body
    await screenshot(plain, "confidential-masked")

    # A reader states the purpose (CIS Art. 9.1) and then sees the values.
    reader = await sign_in(ctx, nodes.kz, "reader")
    await reader.goto(f"{nodes.kz.url}/conversations/{cid}")
    await reader.fill("#purpose", "Исполнительное производство № 7510-26, проверка сведений.")
    await reader.click("#purpose-submit")
    await reader.locator("#timeline a[id^=open-]").first.click()
    await reader.locator("#message-body").wait_for()
    assert "Примеров" in await reader.inner_text("#message-body")


async def test_form_post_without_csrf_token_is_refused(nodes: Nodes, context) -> None:
    ctx, _ = context
    request = await nodes.submit_request()
    cid = request["conversation_id"]
    page = await sign_in(ctx, nodes.kz, "operator")
    before = len(nodes.kz.audit_events)
    # The signed-in browser's own cookies, a well-formed refusal, but no CSRF token.
    response = await ctx.request.post(
        f"{nodes.kz.url}/conversations/{cid}/refuse",
        form={
            "Ground": "security",
            "Circumstances": "Без токена.",
            "ConsultationsHeld": "no",
        },
    )
    assert response.status == 403
    refused = [e for e in nodes.kz.audit_events[before:] if e[1] == "console.csrf_refused"]
    assert refused and refused[0][2]["reason"] == "bad-token"
    await page.goto(f"{nodes.kz.url}/conversations/{cid}")
    assert await page.get_attribute("#summary-state", "data-state") == "in-progress"


async def test_administration_pages(nodes: Nodes, context) -> None:
    ctx, _ = context
    admin = await sign_in(ctx, nodes.kz, "admin")
    await admin.click("#nav-admin")
    for link, table, name in (
        ("#admin-keys", "#keys-table", "admin-keys"),
        ("#admin-directory", "#directory-table", "admin-directory"),
        ("#admin-retention", "#retention-table", "admin-retention"),
        ("#admin-holds", "#purge-runs-table", "admin-holds"),
    ):
        await admin.goto(f"{nodes.kz.url}/admin")
        await admin.click(link)
        await admin.locator(table).wait_for()
        await screenshot(admin, name)
    await admin.goto(f"{nodes.kz.url}/admin/keys")
    assert await admin.locator("#key-seal").count() == 1
    await admin.goto(f"{nodes.kz.url}/admin/directory")
    assert await admin.locator("#body-RU-FSSP").count() == 1
    assert await admin.locator("#body-KZ-MJ").count() == 1

    auditor = await sign_in(ctx, nodes.kz, "auditor")
    await auditor.goto(f"{nodes.kz.url}/admin/audit")
    await auditor.locator("#audit-table").wait_for()
    assert await auditor.locator("#audit-table tr[id^=event-]").count() > 0
    await auditor.fill("#filter-kind", "console.")
    await auditor.click("#audit-filter-submit")
    kinds = await auditor.locator("#audit-table td[data-kind]").evaluate_all(
        "cells => cells.map(c => c.dataset.kind)"
    )
    assert kinds and all(k.startswith("console.") for k in kinds)
    shown = await auditor.locator("#audit-table td[data-kind]").all_inner_texts()
    assert "Вход в консоль" in shown and not any("console." in t for t in shown)
    await auditor.click("#verify-chain")
    await auditor.locator("#chain-intact").wait_for()
    await screenshot(auditor, "admin-audit")


async def test_an_answer_with_a_file_travels_beside_it(nodes: Nodes, context, tmp_path) -> None:
    """KZ-MJ's operator answers with a scan chosen in the browser: the form streams it into the
    node (CSRF token first, as Chromium posts the fields in order), it travels beside the
    signed answer, and RU-FSSP's operator sees it listed with its title and downloads it."""
    ctx, _ = context
    request = await nodes.submit_request()
    cid = request["conversation_id"]
    scan = tmp_path / "akt-opisi.pdf"
    content = b"%PDF-1.7\n" + bytes(range(256)) * 12_000  # ~3 MB: many 64 KiB segments
    scan.write_bytes(content)
    kz = await sign_in(ctx, nodes.kz, "operator")
    await kz.goto(f"{nodes.kz.url}/conversations/{cid}")
    await kz.click("#action-respond")
    await kz.locator("#action-form").wait_for()
    await kz.fill("#Summary", "Запрос исполнен, опись имущества прилагается.")
    await kz.check("#Complete-yes")
    await kz.fill("#Information", "Имущество описано 01.12.2026.")
    await kz.fill("#AttachmentTitle", "Акт описи имущества")
    await kz.set_input_files("#Attachment", str(scan))
    await kz.click("#action-submit")
    await kz.locator("#flash").wait_for()
    assert "принят к отправке" in await kz.inner_text("#flash")

    ru = await sign_in(ctx, nodes.ru, "operator")
    await _until_state(ru, f"{nodes.ru.url}/conversations/{cid}", "answered")
    await ru.fill("#purpose", "Исполнительное производство № 7510-26, получение ответа.")
    await ru.click("#purpose-submit")
    await ru.locator("#timeline").wait_for()
    await ru.locator("#timeline a[id^=open-]", has_text=KIND_LABELS["Response"]).click()
    await ru.locator("#attachments-beside").wait_for()
    assert await ru.inner_text("#attachment-title-1") == "Акт описи имущества"
    async with ru.expect_download() as download_info:
        await ru.click("#download-attachment-1")
    downloaded = await (await download_info.value).path()
    assert downloaded is not None and downloaded.read_bytes() == content
    await screenshot(ru, "answer-with-file")

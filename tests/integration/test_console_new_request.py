"""A request opened from the console (CIS Art. 10–12; SC Art. 5), on real nodes and stores.

KZ-MJ's operator sends RU-FSSP a CIS request and KZ-VS's sends RU-VS a Supreme Courts' one,
each through ``/requests/new/{agreement}``: the form offers the directory's bodies of the other
state under that agreement, our body's name filled in; the node stores and queues the signed
Request and a new conversation opens. What the console cannot know — a rule of the agreement,
such as Art. 7's three-year income period — the node refuses, shown next to its field with
nothing stored; what the console can know (a required field, no subject asked) it names before
the node is asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa

from gateway.app.passwords import hash_password
from gateway.config import NodeConfig
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import Node
from gateway.exchange.service import Role
from gateway.store.tables import attachments, conversations, messages
from gateway.web.console import StoreUserDirectory
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import node_config
from tests.web.console.conftest import CHEAP_HASHER, PASSWORD

pytestmark = pytest.mark.asyncio(loop_scope="module")

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_CONVERSATION = re.compile(r"/conversations/([0-9a-f-]{36})$")


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def nodes(
    request: pytest.FixtureRequest, world: DemoWorld
) -> AsyncIterator[dict[str, NodeRuntime]]:
    """KZ-MJ (CIS) and KZ-VS (Supreme Courts), consoles on, delivery off, a clerk each."""
    running: dict[str, NodeRuntime] = {}
    try:
        for body in ("KZ-MJ", "KZ-VS"):
            url = ""
            if request.param == "postgresql":
                url = request.getfixturevalue("pg_schema")(f"new-request-{body.lower()}")
            path = node_config(world, body, f"new-request-{request.param}", database_url=url)
            runtime = NodeRuntime(Node.from_config(NodeConfig.from_toml(path)))
            running[body] = runtime
            await runtime.start(deliver=False, console=True)
            users = StoreUserDirectory(runtime.node.store)
            hashed = hash_password(PASSWORD, CHEAP_HASHER)
            await users.add("clerk", hashed, (Role.OPERATOR,), now=datetime.now(UTC))
        yield running
    finally:
        for runtime in running.values():
            await runtime.stop()


@contextlib.asynccontextmanager
async def _signed_in(runtime: NodeRuntime) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    console = f"http://127.0.0.1:{runtime.console_port}"
    async with aiohttp.ClientSession(console, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get("/login") as page:
            token = _CSRF.search(await page.text()).group(1)  # type: ignore[union-attr]
        login = {"username": "clerk", "password": PASSWORD, "csrf_token": token}
        async with http.post("/login", data=login, allow_redirects=False) as answer:
            assert answer.status == 303
        yield http, console


async def _send(
    runtime: NodeRuntime,
    agreement: str,
    values: dict[str, Any],
    files: tuple[tuple[str, str, bytes], ...] = (),
) -> tuple[str, int, str, str]:
    """The form as shown, and the answer to posting ``values`` with its token: status, page,
    and where it led (the new conversation's address, or the form's)."""
    async with _signed_in(runtime) as (http, _):
        async with http.get(f"/requests/new/{agreement}") as page:
            shown = await page.text()
            assert page.status == 200, shown[-2000:]
        form = aiohttp.FormData()
        form.add_field("csrf_token", _CSRF.search(shown).group(1))  # type: ignore[union-attr]
        for key, value in values.items():
            for one in value if isinstance(value, list) else [value]:
                form.add_field(key, one)
        for field, name, content in files:  # then the form is multipart, streamed in
            form.add_field(field, content, filename=name, content_type="application/pdf")
        async with http.post(f"/requests/new/{agreement}", data=form) as answer:
            return shown, answer.status, await answer.text(), str(answer.url.path)


CIS_REQUEST = {
    "Recipient": "RU-FSSP",
    "Confidential": "no",
    "RequestingAuthority": "Министерство юстиции Республики Казахстан",
    "Proceeding-Number": "2045/26/02001-ИП",
    "Proceeding-Opened": "2026-09-14",
    "EnforcementDocument-Title": "Исполнительный лист",
    "EnforcementDocument-Number": "ВС № 7718",
    "EnforcementDocument-Date": "2026-08-30",
    "EnforcementDocument-Issuer-Name": "Специализированный межрайонный экономический суд г. Алматы",
    "EnforcementDocument-Issuer-Kind": "court",
    "CreditorKind": "legal-entity",
    "Creditor-LegalEntity-Name": "ТОО «Степной логистический центр»",
    "Creditor-LegalEntity-RegisteredAddress": "050000, г. Алматы, пр. Абая, д. 1",
    "DebtorKind": "individual",
    "Debtor-Individual-Surname": "Примеров",
    "Debtor-Individual-Name": "Игорь",
    "Debtor-Individual-Patronymic": "Витальевич",
    "Debtor-Individual-Residence": "129090, г. Москва, ул. Образцовая, д. 1, кв. 101",
    "Debtor-Individual-BirthDate": "1981-05-14",
    "Debtor-Individual-BirthPlace": "г. Омск",
    "Debtor-Individual-OtherIdentifier": "ИНН: 770000000001\nИИН: 810514300001",
    "OperativePart": "Взыскать с Примерова И. В. в пользу ТОО «Степной логистический центр» "
    "задолженность 12 000 000 тенге.",
    "Content": "Просим сообщить о счетах и транспортных средствах должника.",
    "FactualCircumstances": "Имущество должника в Республике Казахстан не обнаружено.",
    "Assets-Kind": ["bank-accounts", "vehicles"],
    "Assets-Details": "По сведениям взыскателя, счёт в АО «Народный банк Казахстана».",
    "EmploymentAndIncome-Period-From": "2025-01-01",
    "EmploymentAndIncome-Period-To": "2026-09-30",
    "Explanations-Party": "debtor",
    "Explanations-Questions": "Где находится ваш автомобиль?\nЕсть ли у вас иные доходы?",
}


def _errors(page: str) -> list[str]:
    """What a refused form says, field by field (for the assertion's message)."""
    return re.findall(r'id="error-([^"]+)"[^>]*>(.*?)</', page, flags=re.S)


def _sent(page: str) -> str:
    """The message id the flash names."""
    return re.search(r"сообщение ([0-9a-f-]{36})", page).group(1)  # type: ignore[union-attr]


def _stored(runtime: NodeRuntime) -> tuple[int, ...]:
    """Conversations, messages and files held (sent or not): what a refused form must not add."""
    with runtime.node.store.read() as conn:
        count = sa.select(sa.func.count())
        return tuple(
            conn.execute(count.select_from(table)).scalar_one()
            for table in (conversations, messages, attachments)
        )


async def test_a_cis_request_sent_from_the_console_opens_a_conversation(
    nodes: dict[str, NodeRuntime],
) -> None:
    runtime = nodes["KZ-MJ"]
    async with _signed_in(runtime) as (http, _), http.get("/conversations") as listing:
        page = await listing.text()
    assert 'id="new-request-cis-enforcement"' in page
    assert 'id="new-request-ru-kz-supreme-courts"' not in page  # KZ-MJ is no court
    shown, status, answer, path = await _send(runtime, "cis-enforcement", CIS_REQUEST)
    assert '<option value="RU-FSSP"' in shown and '<option value="RU-VS"' not in shown
    assert "Министерство юстиции Республики Казахстан" in shown  # ours, filled in
    assert status == 200 and "Запрос принят к отправке" in answer, _errors(answer)
    conversation_id = _CONVERSATION.search(path).group(1)  # type: ignore[union-attr]
    with runtime.node.store.read() as conn:
        row = conn.execute(
            sa.select(conversations).where(conversations.c.conversation_id == conversation_id)
        ).one()
    assert (row.opening_kind, row.requesting_party, row.requested_party) == (
        "Request",
        "KZ-MJ",
        "RU-FSSP",
    )
    assert row.deadline is None  # runs from the day RU-FSSP receives it (Art. 12)
    (claim,) = [c for c in runtime.node.claim_due("test") if c.message_id == _sent(answer)]
    wire = runtime.node.outgoing(claim).wire.decode()
    for expected in (
        "<cis:RequestedAuthority>Федеральная служба судебных приставов</cis:RequestedAuthority>",
        "<c:Surname>Примеров</c:Surname>",
        "<c:Kind>ИИН</c:Kind><c:Value>810514300001</c:Value>",
        "<cis:Kind>bank-accounts</cis:Kind><cis:Kind>vehicles</cis:Kind><cis:Details>",
        "<cis:Party>debtor</cis:Party>",
    ):
        assert expected in wire, expected


async def test_an_income_period_over_three_years_is_refused_at_its_field(
    nodes: dict[str, NodeRuntime],
) -> None:
    """CIS Art. 7: the node's rule refuses it; the console names it at the period, keeps what
    was typed, and nothing is stored."""
    runtime = nodes["KZ-MJ"]
    before = _stored(runtime)
    too_long = CIS_REQUEST | {"EmploymentAndIncome-Period-From": "2020-01-01"}
    _, status, answer, _ = await _send(runtime, "cis-enforcement", too_long)
    assert status == 422, answer[-3000:]
    assert re.search(r'id="error-EmploymentAndIncome-Period-(From|To)">[^<]*ст\. 7', answer)
    assert 'value="2020-01-01"' in answer
    assert _stored(runtime) == before


async def test_what_the_console_can_know_is_named_before_the_node_is_asked(
    nodes: dict[str, NodeRuntime],
) -> None:
    runtime = nodes["KZ-MJ"]
    before = _stored(runtime)
    asked_nothing = {
        k: v
        for k, v in CIS_REQUEST.items()
        if not k.startswith(("Assets", "Employment", "Explanations", "Debtor-Individual-B"))
    }
    asked_nothing["Debtor-Individual-OtherIdentifier"] = "без вида"
    _, status, answer, _ = await _send(runtime, "cis-enforcement", asked_nothing)
    assert status == 422
    assert 'id="error-section-subjects"' in answer
    assert 'id="error-Debtor-Individual-BirthDate"' in answer  # the debtor's, CIS Art. 11.1 в)
    assert 'id="error-Debtor-Individual-OtherIdentifier"' in answer
    assert _stored(runtime) == before


SC_REQUEST = {
    "Recipient": "RU-VS",
    "Urgent": "yes",
    "RequestingParty": "Верховный Суд Республики Казахстан",
    "Topic": "case-law",
    "Basis": "Статьи 3 и 5 Соглашения о сотрудничестве.",
    "Purpose": "Обзор практики по трудовым спорам граждан ЕАЭС.",
    "Content": "Просим предоставить обзор практики за 2025 год.",
    "ExpectedBy": "2027-02-01",
    "SignedBy-Name": "Образцова Айгуль Сериковна",
    "SignedBy-Position": "Руководитель отдела международных связей",
}


async def test_a_supreme_courts_request_is_sent_urgent_to_the_other_court(
    nodes: dict[str, NodeRuntime],
) -> None:
    runtime = nodes["KZ-VS"]
    shown, status, answer, path = await _send(runtime, "ru-kz-supreme-courts", SC_REQUEST)
    assert '<option value="RU-VS"' in shown and 'id="Topic-case-law"' in shown
    assert status == 200 and "Запрос принят к отправке" in answer, _errors(answer)
    assert _CONVERSATION.search(path)  # the new conversation's page
    (claim,) = [c for c in runtime.node.claim_due("test") if c.message_id == _sent(answer)]
    wire = runtime.node.outgoing(claim).wire.decode()
    assert "<env:Urgency>urgent</env:Urgency>" in wire  # SC Art. 5.2
    assert "<sc:ExpectedBy>2027-02-01</sc:ExpectedBy>" in wire
    assert "<c:Position>Руководитель отдела международных связей</c:Position>" in wire


async def test_a_request_carries_a_copy_of_the_enforcement_document_beside_it(
    nodes: dict[str, NodeRuntime],
) -> None:
    """The form streamed with its file (multipart, the token first): the file is taken in as
    it comes, titled, and the request's signed header lists it with its digest; ticked boxes
    under one name all count."""
    runtime = nodes["KZ-MJ"]
    scan = b"%PDF-1.7 " + bytes(range(256)) * 4000
    titled = CIS_REQUEST | {"AttachmentTitle": "Копия исполнительного листа ВС № 7718"}
    scanned = (("Attachment", "vs-7718.pdf", scan),)
    _, status, answer, _ = await _send(runtime, "cis-enforcement", titled, scanned)
    assert status == 200 and "Запрос принят к отправке" in answer, _errors(answer)
    (claim,) = [c for c in runtime.node.claim_due("test") if c.message_id == _sent(answer)]
    wire = runtime.node.outgoing(claim).wire.decode()
    assert "<env:Name>vs-7718.pdf</env:Name>" in wire
    assert "<env:Title>Копия исполнительного листа ВС № 7718</env:Title>" in wire
    assert hashlib.sha256(scan).hexdigest() in wire and "bank-accounts" in wire
    assert "<cis:Kind>vehicles</cis:Kind>" in wire  # the second ticked box of the stream


async def test_a_court_s_document_in_kazakh_goes_with_its_translation_named_in_the_request(
    nodes: dict[str, NodeRuntime],
) -> None:
    """SC Art. 5.1: a document attached to the request in Kazakh carries the requesting
    party's Russian translation; the request's Documents name both. Without the translation
    the node refuses it at the file's field, and nothing is stored."""
    runtime = nodes["KZ-VS"]
    kazakh = SC_REQUEST | {"AttachmentLanguage": "kk", "AttachmentTitle": "Шешім"}
    original = ("Attachment", "sheshim.pdf", b"%PDF-1.7 kk")
    before = _stored(runtime)
    _, status, answer, _ = await _send(runtime, "ru-kz-supreme-courts", kazakh, (original,))
    assert status == 422 and 'id="error-Attachment"' in answer, _errors(answer)
    assert _stored(runtime) == before
    translated = (original, ("Translation", "reshenie.pdf", b"%PDF-1.7 ru"))
    _, status, answer, _ = await _send(runtime, "ru-kz-supreme-courts", kazakh, translated)
    assert status == 200 and "Запрос принят к отправке" in answer, _errors(answer)
    (claim,) = [c for c in runtime.node.claim_due("test") if c.message_id == _sent(answer)]
    wire = runtime.node.outgoing(claim).wire.decode()
    assert (
        "<sc:Document><sc:OriginalLanguage>kk</sc:OriginalLanguage>"
        "<sc:Original>sheshim.pdf</sc:Original><sc:Translation>reshenie.pdf</sc:Translation>"
    ) in wire
    assert "<env:TranslationOf>sheshim.pdf</env:TranslationOf>" in wire


async def test_a_request_carries_several_documents_each_with_its_own_language(
    nodes: dict[str, NodeRuntime],
) -> None:
    """The form takes up to three files, each with its title, language and translation: a
    Russian decision and a Kazakh one with its translation go in one request, listed in that
    order, each named in the request's Documents (SC Art. 5.1, 11). The Kazakh one without its
    translation is refused at its own field, and nothing is stored."""
    runtime = nodes["KZ-VS"]
    two = SC_REQUEST | {
        "AttachmentTitle": "Определение",
        "AttachmentLanguage": "ru",
        "AttachmentTitle2": "Шешім",
        "AttachmentLanguage2": "kk",
    }
    first = ("Attachment", "opredelenie.pdf", b"%PDF-1.7 ru-1")
    second = ("Attachment2", "sheshim.pdf", b"%PDF-1.7 kk")
    before = _stored(runtime)
    _, status, answer, _ = await _send(runtime, "ru-kz-supreme-courts", two, (first, second))
    assert status == 422 and 'id="error-Attachment2"' in answer, _errors(answer)
    assert 'id="error-Attachment"' not in answer
    assert _stored(runtime) == before
    files = (first, second, ("Translation2", "reshenie.pdf", b"%PDF-1.7 ru-2"))
    _, status, answer, _ = await _send(runtime, "ru-kz-supreme-courts", two, files)
    assert status == 200 and "Запрос принят к отправке" in answer, _errors(answer)
    (claim,) = [c for c in runtime.node.claim_due("test") if c.message_id == _sent(answer)]
    wire = runtime.node.outgoing(claim).wire.decode()
    assert re.findall(r"<env:Name>([^<]+)</env:Name>", wire) == [
        "opredelenie.pdf",
        "sheshim.pdf",
        "reshenie.pdf",
    ]
    assert "<env:Title>Шешім</env:Title>" in wire
    assert "<env:TranslationOf>sheshim.pdf</env:TranslationOf>" in wire
    assert (
        "<sc:Document><sc:OriginalLanguage>ru</sc:OriginalLanguage>"
        "<sc:Original>opredelenie.pdf</sc:Original></sc:Document>"
        "<sc:Document><sc:OriginalLanguage>kk</sc:OriginalLanguage>"
        "<sc:Original>sheshim.pdf</sc:Original><sc:Translation>reshenie.pdf</sc:Translation>"
        "</sc:Document>"
    ) in wire

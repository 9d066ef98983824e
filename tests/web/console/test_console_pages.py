"""The console's pages: dashboard, conversation list with keyset paging, a conversation, a
message, masking of confidential values and the purpose form (CIS Art. 9.1)."""

from __future__ import annotations

import hashlib
import html as html_lib
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from gateway.app.sessions import PURPOSE_VALID_FOR
from gateway.web.console import ExpiringKey, NodeIdentity, UndeliveredItem
from gateway.web.console.pages import PAGE_SIZE
from gateway.web.console.render import MASK
from tests.web.console.conftest import NOW, READ_PURPOSE, csrf_of, reading_as, seed_many, signed_in

_ROW = re.compile(r'<tr id="conversation-([0-9a-f-]{36})"')


def _row(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start : html.index("</tr>", start)]


# --- dashboard ---------------------------------------------------------------------------------


async def test_dashboard_counts_by_state(client, seeded) -> None:
    await signed_in(client, "operator1")
    html = await (await client.get("/")).text()
    assert "На исполнении" in _row(html, "count-in-progress")
    assert ">3</a>" in _row(html, "count-in-progress")  # cis, sc and the confidential one
    assert ">1</a>" in _row(html, "count-answered")


async def test_dashboard_highlights_deadlines(client, seeded) -> None:
    await signed_in(client, "operator1")
    html = await (await client.get("/")).text()
    # Today is Monday 23 Nov 2026. CIS counts Kazakh working days: due Wednesday 25 -> 2 left.
    near = _row(html, f"deadline-{seeded.cis}")
    assert 'class="near"' in near and "осталось 2 раб. дн." in near
    # SC counts calendar days: due Friday 20 -> 3 days late.
    late = _row(html, f"deadline-{seeded.sc}")
    assert 'class="overdue"' in late and "просрочен на 3 дн." in late
    # Due in January: not near. Answered: closed, its old due date no longer matters.
    assert f"deadline-{seeded.secret}" not in html
    assert f"deadline-{seeded.answered}" not in html
    assert html.index(f"deadline-{seeded.sc}") < html.index(f"deadline-{seeded.cis}")


async def test_dashboard_shows_injected_keys_and_outbox(make_client, seeded) -> None:
    async def keys():
        return [ExpiringKey("seal-2026", "seal", NOW + timedelta(days=12))]

    async def undelivered(actor):
        assert actor.name == "operator1"
        return [
            UndeliveredItem(
                seeded.cis_request, seeded.cis, "RU-FSSP", "failed", 7, None, "CONNECT_FAILED"
            )
        ]

    client = await make_client(expiring_keys=keys, undelivered=undelivered)
    await signed_in(client, "operator1")
    html = await (await client.get("/")).text()
    row = _row(html, f"undelivered-{seeded.cis_request}")
    assert "Не доставлен" in row and "узел получателя недоступен" in row and ">7<" in row
    assert 'id="keys-denied"' in html  # key expiry is for administrators and auditors
    await signed_in(client, "admin1")
    html = await (await client.get("/")).text()
    key = _row(html, "key-1")
    assert "seal-2026" in key and "05.12.2026" in key and "Электронная печать органа" in key


async def test_dashboard_for_a_role_without_conversations(client, service, seeded) -> None:
    await signed_in(client, "auditor1")
    service.calls.clear()
    response = await client.get("/")
    html = await response.text()
    assert response.status == 200
    assert 'id="counts-denied"' in html and 'id="deadlines-denied"' in html
    # Not asked at all: the node would refuse and record a refusal the user never tried.
    assert service.calls == [] and service.denied == []


# --- the list and its pages --------------------------------------------------------------------


async def test_list_pages_follow_the_cursor(client, service, seeded) -> None:
    many = seed_many(service, PAGE_SIZE * 2 + 7)
    await signed_in(client, "operator1")
    seen: list[str] = []
    url = "/conversations?state=submitted"
    pages = 0
    while url:
        response = await client.get(url)
        html = await response.text()
        assert response.status == 200
        ids = _ROW.findall(html)
        assert 0 < len(ids) <= PAGE_SIZE
        seen += ids
        pages += 1
        match = re.search(r'href="([^"]+)" id="next-page"', html)
        url = html_lib.unescape(match.group(1)) if match else ""
        if url:
            query = parse_qs(urlsplit(url).query)
            assert query["state"] == ["submitted"]  # filters carried along
            assert query["after"]  # the service's keyset cursor
        if pages > 1:
            assert 'id="first-page"' in html
    assert pages == 3
    assert seen == many  # every conversation once, newest first, none twice


async def test_list_filters_reach_the_service(client, seeded) -> None:
    await signed_in(client, "operator1")
    html = await (await client.get("/conversations?agreement=ru-kz-supreme-courts")).text()
    assert _ROW.findall(html) == [seeded.sc]
    html = await (await client.get("/conversations?confidential=yes")).text()
    assert _ROW.findall(html) == [seeded.secret]
    html = await (await client.get("/conversations?body=ru-vs&deadline_before=2026-12-01")).text()
    assert _ROW.findall(html) == [seeded.sc]
    # An empty form (every field "any") lists everything.
    empty = "agreement=&body=&state=&kind=&deadline_before=&confidential="
    html = await (await client.get(f"/conversations?{empty}")).text()
    assert len(_ROW.findall(html)) == 4


async def test_bad_filters_are_named_in_russian(client, service, seeded) -> None:
    await signed_in(client, "operator1")
    service.calls.clear()
    response = await client.get("/conversations?state=nonsense&deadline_before=31.12.2026")
    html = await response.text()
    assert response.status == 400
    assert 'id="error-state"' in html and 'id="error-deadline_before"' in html
    assert "list_conversations" not in service.calls
    response = await client.get("/conversations?after=%00%01")
    assert response.status == 400 and 'id="error-after"' in await response.text()


# --- one conversation --------------------------------------------------------------------------


async def test_conversation_timeline(client, service, seeded) -> None:
    token = await signed_in(client, "operator1")
    # Metadata without a purpose; the documents' links once one is stated (CIS Art. 9.1).
    response = await client.get(f"/conversations/{seeded.cis}")
    html = await response.text()
    assert response.status == 200
    assert 'id="purpose-form"' in html
    assert f'id="xml-{seeded.cis_request}"' not in html
    assert service.reads == []
    await client.post(
        f"/conversations/{seeded.cis}/purpose",
        data={"csrf_token": token, "purpose": READ_PURPOSE},
        allow_redirects=False,
    )
    html = await (await client.get(f"/conversations/{seeded.cis}")).text()
    assert 'id="purpose-form"' not in html
    row = _row(html, f"message-{seeded.cis_request}")
    assert "Запрос" in row and "Получен" in row and "Подписи действительны" in row
    assert f'id="xml-{seeded.cis_request}"' in row and f'id="pdf-{seeded.cis_request}"' in row
    assert 'id="summary-state" data-state="in-progress">На исполнении' in html
    assert "осталось 2 раб. дн." in html
    assert 'id="action-refuse"' in html


async def test_unknown_conversation_is_404(client, seeded) -> None:
    await signed_in(client, "operator1")
    response = await client.get("/conversations/00000000-0000-4000-8000-000000000000")
    assert response.status == 404
    response = await client.get("/conversations/not-a-uuid")
    assert response.status == 404


async def test_downloads(client, service, seeded) -> None:
    token = await signed_in(client, "operator1")
    base = f"/conversations/{seeded.cis}/messages/{seeded.cis_request}"
    assert (await client.get(f"{base}/xml")).status == 403  # no purpose stated: nothing read
    assert service.reads == []
    await client.post(
        f"/conversations/{seeded.cis}/purpose",
        data={"csrf_token": token, "purpose": READ_PURPOSE},
        allow_redirects=False,
    )
    xml = await client.get(f"{base}/xml")
    assert xml.status == 200 and xml.content_type == "application/xml"
    assert await xml.read() == service.messages[seeded.cis_request].xml
    assert xml.headers["Content-Disposition"] == (
        f'attachment; filename="{seeded.cis_request}.xml"'
    )
    pdf = await client.get(f"{base}/pdf")
    assert pdf.status == 200 and (await pdf.read()).startswith(b"%PDF")
    receipt = await client.get(f"{base}/receipt")
    assert receipt.status == 200 and await receipt.read() == b"<Receipt/>"


async def test_message_of_another_conversation_is_404(client, seeded) -> None:
    await signed_in(client, "operator1")
    response = await client.get(f"/conversations/{seeded.sc}/messages/{seeded.cis_request}")
    assert response.status == 404
    response = await client.get(f"/conversations/{seeded.sc}/messages/{seeded.cis_request}/xml")
    assert response.status == 404


# --- one message, masking and the purpose ------------------------------------------------------


async def test_message_shows_its_fields_in_russian(client, service, seeded) -> None:
    await signed_in(client, "operator1")
    url = f"/conversations/{seeded.cis}/messages/{seeded.cis_request}"
    locked = await (await client.get(url)).text()
    assert 'id="purpose-form"' in locked and "Должник" not in locked
    assert service.reads == []  # not even asked of the node without a purpose
    await reading_as(client, "operator1", seeded.cis)
    html = await (
        await client.get(f"/conversations/{seeded.cis}/messages/{seeded.cis_request}")
    ).text()
    assert 'id="message-body"' in html
    assert "Должник" in html and "Исполнительный документ" in html
    assert MASK not in html
    assert 'id="download-xml"' in html and 'id="download-receipt"' in html


async def test_confidential_conversation_is_locked_without_the_role(
    client, service, seeded
) -> None:
    """Not even its list of messages (kinds, times, parties, digests): the node refuses it."""
    await signed_in(client, "operator1")
    service.calls.clear()
    for url in (
        f"/conversations/{seeded.secret}",
        f"/conversations/{seeded.secret}/messages/{seeded.secret_request}",
    ):
        response = await client.get(url)
        html = await response.text()
        assert response.status == 403
        assert 'id="masked-content"' in html
        assert "Допуск к конфиденциальным документам" in html  # the role that is missing
        assert 'id="purpose-form"' not in html
        assert f'id="message-{seeded.secret_request}"' not in html
        assert 'id="download-xml"' not in html
        body = service.messages[seeded.secret_request].body["Request"]
        assert body["OperativePart"][:30] not in html
    assert "message" not in service.calls  # not even asked
    assert ("operator1", "reading a conversation (confidential)") in service.denied
    assert (await client.get(f"{url}/xml")).status == 403


async def test_reader_states_a_purpose_then_reads(client, service, audit, seeded) -> None:
    token = await signed_in(client, "reader1")
    url = f"/conversations/{seeded.secret}/messages/{seeded.secret_request}"
    html = await (await client.get(url)).text()
    assert 'id="masked-content"' in html
    assert 'id="purpose-form"' in html
    assert f'id="message-{seeded.secret_request}"' not in html
    body = service.messages[seeded.secret_request].body["Request"]
    assert body["OperativePart"][:30] not in html
    assert (await client.get(f"{url}/xml")).status == 403

    too_short = await client.post(
        f"/conversations/{seeded.secret}/purpose",
        data={"csrf_token": token, "purpose": "надо", "next": seeded.secret_request},
        allow_redirects=False,
    )
    assert too_short.status == 400 and 'id="error-purpose"' in await too_short.text()
    assert service.reads == []

    purpose = "Исполнительное производство № 1234/26/77001-ИП: проверка имущества должника"
    response = await client.post(
        f"/conversations/{seeded.secret}/purpose",
        data={"csrf_token": token, "purpose": purpose, "next": seeded.secret_request},
        allow_redirects=False,
    )
    assert response.status == 303 and response.headers["Location"] == url
    html = await (await client.get(url)).text()
    assert body["OperativePart"][:30] in html
    assert f'<td class="masked">{MASK}</td>' not in html
    assert (await client.get(f"{url}/xml")).status == 200
    reads = [(r.action, r.target, r.purpose) for r in service.reads]
    assert ("message", seeded.secret_request, purpose) in reads
    assert ("xml", seeded.secret_request, purpose) in reads
    [(actor, details)] = audit.of("console.purpose_stated")
    assert actor == "reader1" and details == {
        "conversation_id": seeded.secret,
        "purpose_sha256": hashlib.sha256(purpose.encode()).hexdigest(),
    }


async def test_purpose_covers_only_its_conversation(client, service, seeded) -> None:
    other = seed_many(service, 1)[0]
    token = await signed_in(client, "reader1")
    await client.post(
        f"/conversations/{other}/purpose",
        data={"csrf_token": token, "purpose": "Проверка другого производства № 1"},
    )
    html = await (
        await client.get(f"/conversations/{seeded.secret}/messages/{seeded.secret_request}")
    ).text()
    assert 'id="purpose-form"' in html


async def test_purpose_expires(client, clock, seeded) -> None:
    token = await signed_in(client, "reader1")
    url = f"/conversations/{seeded.secret}/messages/{seeded.secret_request}"
    await client.post(
        f"/conversations/{seeded.secret}/purpose",
        data={"csrf_token": token, "purpose": "Производство № 1234/26/77001-ИП, имущество"},
    )
    assert 'id="purpose-form"' not in await (await client.get(url)).text()
    clock.advance(PURPOSE_VALID_FOR - timedelta(minutes=1))
    assert 'id="purpose-form"' not in await (await client.get(url)).text()
    clock.advance(timedelta(minutes=2))  # the session is still alive (it was just used)
    assert 'id="purpose-form"' in await (await client.get(url)).text()


async def test_purpose_from_a_user_without_the_role_is_refused(client, audit, seeded) -> None:
    token = await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{seeded.secret}/purpose",
        data={"csrf_token": token, "purpose": "Производство № 1234/26/77001-ИП, имущество"},
        allow_redirects=False,
    )
    assert response.status == 403
    assert audit.of("console.purpose_stated") == []
    assert len(audit.of("console.purpose_refused")) == 1


async def test_confidential_conversation_opens_after_a_purpose(client, seeded) -> None:
    token = await signed_in(client, "reader1")
    url = f"/conversations/{seeded.secret}"
    html = await (await client.get(url)).text()
    assert 'id="masked-content"' in html and 'id="purpose-form"' in html
    await client.post(
        f"{url}/purpose",
        data={"csrf_token": token, "purpose": "Производство № 1234/26/77001-ИП, имущество"},
    )
    html = await (await client.get(url)).text()
    assert f'id="message-{seeded.secret_request}"' in html
    csrf_of(html)


async def test_the_node_and_its_zone_on_every_page(make_client, seeded) -> None:
    """Sign-in and every page name the node's body; times are in its zone, the zone named."""
    moscow = NodeIdentity.of("RU-FSSP", "Федеральная служба судебных приставов", "Europe/Moscow")
    client = await make_client(identity=moscow)
    login = await (await client.get("/login")).text()
    assert 'id="node-identity"' in login
    assert "Федеральная служба судебных приставов" in login and "RU-FSSP" in login
    assert "Москва, UTC+3" in login
    await reading_as(client, "operator1", seeded.cis)
    page = await (await client.get(f"/conversations/{seeded.cis}")).text()
    assert "Федеральная служба судебных приставов" in page
    # Opened 20 days before NOW (10:00 UTC): 13:00 in Moscow, and the page says so.
    opened = (NOW - timedelta(days=20)).strftime("%d.%m.%Y")
    assert f"{opened} 13:00 (Москва, UTC+3)" in page
    message = await (
        await client.get(f"/conversations/{seeded.cis}/messages/{seeded.cis_request}")
    ).text()
    # Document fields: dates in Russian form, codes by name, the request's text as text.
    assert "16.03.2026" in message and "2026-03-16" not in message
    assert ">Суд<" in message and ">court<" not in message
    assert 'data-path="Request/Content" data-type="text"' in message
    # No bytes inside a document: every file travels beside it (docs/attachments.md).
    assert 'data-type="binary"' not in message and "двоичные данные" not in message

"""The action forms: which actions each state and side offers (from the protocol's table), the
documents they build (valid against the real schemas), multipart uploads with their limit,
problems shown next to the field, and the refusals (wrong state, no role, no CSRF token)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest

from gateway.exchange.conversation import TRANSITIONS, State
from gateway.exchange.conversation import Role as Side
from gateway.exchange.service import ConversationView, MessageSummary
from gateway.model.problems import Problem
from gateway.model.profiles import PROFILES
from gateway.store import audit, disclosures
from gateway.web.console.actions import (
    SIDE_KINDS,
    SPECS,
    Upload,
    available_actions,
    build_document,
    choices_of,
    clean_file_name,
    clean_media_type,
    problems_by_field,
    read_action_form,
)
from gateway.xml.convert import json_to_xml
from gateway.xml.validate import validate
from tests.web.console.conftest import NOW, _summary, csrf_of, example, signed_in, uid

# One typed value per field name: what an operator would enter.
TYPED: dict[str, str] = {
    "Summary": "Запрос исполнен, сведения представлены в доступном объёме.",
    "Complete": "no",
    "Information": "Сведения о счетах должника: АО «Банк», счёт KZ000000000000000001.",
    "AttachmentTitle": "Выписка",
    "Question": "Укажите ИИН должника.\n\nУточните адрес регистрации.",
    "Reason": "Сведения запрошены у органов государственных доходов.",
    "ExpectedDate": "2027-01-29",
    "Mode": "conditions",
    "Condition": "Сведения используются только для учёта.\nНе раскрываются до 01.03.2027.",
    "Circumstances": "",
    "ConsultationsHeld": "yes",
    "Decision": "",
    "Comment": "С условиями согласны.",
    "ThirdPartyName": "Арбитражный управляющий Образцова М. С.",
    "ThirdPartyRole": "финансовый управляющий",
    "Purpose": "Включение сведений в конкурсную массу по делу № А40-000001/2026.",
    "ProvidedInMessageId": "",
    "ConsentRequestId": "",
    "DoubtAbout": "both",
    "Details": "Запрос поступил также по электронной почте с другого адреса.",
    "Confirmed": "yes",
    "Statement": "Подтверждаем, что запрос направлен Верховным Судом Российской Федерации.",
    "ConfirmedByName": "Образцов Пётр Петрович",
    "ConfirmedByPosition": "Начальник управления международного сотрудничества",
    "Topic": "both-topics",
    "Measures": "Сведения хранятся в зашифрованном виде; доступ — только у исполнителя.",
    "RetentionInformation": "Материалы исполнительного производства",
    "RetentionTerm": "5 лет после окончания производства",
    "RetentionLegalBasis": "",
    "Amount": "1 250 000,00",
    "Currency": "KZT",
    "Breakdown": "Перевод 340 страниц материалов дела.",
    "ProposedCondition": "Исполнение в части материалов дела — после согласования расходов.",
    "Answer": "Предлагаем разделить расходы на перевод поровну.",
    "CostCoverage": "shared",
    "CoverageTerms": "Каждая Сторона несёт половину расходов на перевод.",
    "ConsultationRequestId": "",
    "HeldOn": "2026-11-30",
    "Means": "video-conference",
    "Participants": "Примерова А. Б.; Образцов П. П.",
    "Outcome": "Условия исполнения согласованы.",
    "AgreedCondition": "Сведения не раскрываются взыскателю до 01.03.2027.",
}


def _message(
    kind: str, direction: str, *, at: datetime, cid: str, reply: str | None = None
) -> MessageSummary:
    return MessageSummary(
        message_id=uid(f"{cid} {kind} {direction} {at.isoformat()}"),
        conversation_id=cid,
        in_reply_to=reply,
        direction=direction,
        kind=kind,
        sender="X",
        recipient="Y",
        created=at,
        stored_at=at,
        confidential=False,
        document_sha256="00" * 32,
        delivery_state=None,
        verification="TOTAL_PASSED",
    )


def _view(agreement: str, state: str, side: Side, *extra: tuple[str, str]) -> ConversationView:
    cid = uid(f"view {agreement} {state} {side}")
    requesting, requested = (
        ("RU-FSSP", "KZ-MJ") if agreement == "cis-enforcement" else ("RU-VS", "KZ-VS")
    )
    summary = _summary(cid, agreement, requesting, requested, state=state)
    opening = "out" if side is Side.REQUESTING else "in"
    messages = [_message("Request", opening, at=NOW - timedelta(days=5), cid=cid)]
    for i, (kind, direction) in enumerate(extra):
        messages.append(_message(kind, direction, at=NOW - timedelta(days=4 - i), cid=cid))
    return ConversationView(summary, tuple(messages))


def _typed(spec_name: str, view: ConversationView) -> dict[str, str]:
    spec = SPECS[view.summary.agreement][spec_name]
    values = {f.name: TYPED.get(f.name, "") for f in spec.fields if f.widget != "file"}
    if "Decision" in values:
        values["Decision"] = {
            "PostponementDecision": "accept",
            "ConfidentialityDecision": "proceed",
            "ConsentDecision": "granted",
        }[spec.kind]
    if spec.kind == "ConsentDecision":
        values["ConsentRequestId"] = next(
            m.message_id for m in view.messages if m.kind == "ConsentRequest"
        )
        values["Reason"] = ""
    if spec.kind in ("ConsultationRequest", "ConsultationRecord"):
        values["Topic"] = "refusal"
        values["Circumstances"] = "Исполнение противоречит законодательству запрашиваемой Стороны."
    if spec.kind == "ConsultationAnswer":
        values["ConsultationRequestId"] = next(
            m.message_id for m in view.messages if m.kind == "ConsultationRequest"
        )
    return values


STATE_FOR: dict[str, tuple[str, Side, tuple[tuple[str, str], ...]]] = {
    "respond": ("in-progress", Side.REQUESTED, ()),
    "ask": ("in-progress", Side.REQUESTED, ()),
    "answer-questions": (
        "awaiting-additional-info",
        Side.REQUESTING,
        (("AdditionalInfoRequest", "in"),),
    ),
    "delay": ("in-progress", Side.REQUESTED, ()),
    "postpone": ("in-progress", Side.REQUESTED, ()),
    "confidentiality-notice": ("in-progress", Side.REQUESTED, ()),
    "postponement-decision": ("postponed", Side.REQUESTING, (("Postponement", "in"),)),
    "confidentiality-decision": (
        "confidentiality-hold",
        Side.REQUESTING,
        (("ConfidentialityNotice", "in"),),
    ),
    "consent-request": ("answered", Side.REQUESTING, (("Response", "in"),)),
    "consent-decision": (
        "answered",
        Side.REQUESTED,
        (("Response", "out"), ("ConsentRequest", "in")),
    ),
    "withdraw": ("in-progress", Side.REQUESTING, ()),
    "authenticity-request": ("in-progress", Side.REQUESTED, ()),
    "authenticity-confirm": (
        "awaiting-authenticity",
        Side.REQUESTING,
        (("AuthenticityConfirmationRequest", "in"),),
    ),
    "protection-inquiry": ("in-progress", Side.REQUESTING, ()),
    "consult": ("in-progress", Side.REQUESTED, ()),
    "consult-record": ("postponed", Side.REQUESTING, (("Postponement", "in"),)),
    "consult-answer": (
        "in-progress",
        Side.REQUESTING,
        (("ConsultationRequest", "in"),),
    ),
    "protection-answer": (
        "in-progress",
        Side.REQUESTED,
        (("ProtectionMeasuresInquiry", "in"),),
    ),
}

CASES = [(a, name) for a in PROFILES for name in SPECS[a]]


def test_every_action_has_a_test_state() -> None:
    assert {name for _, name in CASES} == set(STATE_FOR)


@pytest.mark.parametrize(("agreement", "name"), CASES)
def test_each_action_builds_a_schema_valid_document(agreement: str, name: str) -> None:
    state, side, extra = STATE_FOR[name]
    view = _view(agreement, state, side, *extra)
    spec = SPECS[agreement][name]
    assert spec in available_actions(view), f"{name} not offered in {state} to {side}"
    upload = Upload("vypiska.txt", uid("upload")) if spec.uploads else None
    uploads = {"Attachment": upload} if upload is not None else {}
    form = read_action_form(spec, view, _typed(name, view), uploads)
    assert form.errors == {}
    document = build_document(spec, view, form, NOW)
    problems = validate(json_to_xml({"header": document["header"], "body": document["body"]}))
    assert problems == (), [p.message_en for p in problems]
    header = document["header"]
    assert header["Kind"] == spec.kind and header["ConversationId"] == view.summary.conversation_id
    ours = (
        view.summary.requesting_party if side is Side.REQUESTING else view.summary.requested_party
    )
    assert header["Sender"] == ours and header["Recipient"] != ours
    # A file goes beside the XML, titled, never inside the body.
    assert "Attachments" not in document["body"][spec.kind]
    if upload is not None:
        title = TYPED["AttachmentTitle"]
        assert document["attachments"] == [{"id": upload.attachment_id, "title": title}]
    else:
        assert "attachments" not in document


def test_replies_point_at_what_they_answer() -> None:
    view = _view("cis-enforcement", "postponed", Side.REQUESTING, ("Postponement", "in"))
    spec = SPECS["cis-enforcement"]["postponement-decision"]
    form = read_action_form(spec, view, {"Decision": "decline", "Comment": ""}, None)
    document = build_document(spec, view, form, NOW)
    postponement = next(m for m in view.messages if m.kind == "Postponement")
    assert document["header"]["InReplyTo"] == postponement.message_id
    assert document["body"] == {"PostponementDecision": {"Decision": "decline"}}


def test_offered_actions_follow_the_protocol_table() -> None:
    """For every state and side: an action is offered iff the table has its kind (or one of
    its decisions) for that side and the agreement lets that side send it — never something the
    node would refuse (a CIS consent request comes from the requesting party only)."""
    for agreement in PROFILES:
        for state in State:
            for side in Side:
                extra = (
                    ("ConsentRequest", "in"),
                    ("ProtectionMeasuresInquiry", "in"),
                    ("ConsultationRequest", "in"),
                )
                view = _view(agreement, state.value, side, *extra)
                offered = {s.name for s in available_actions(view)}
                row = TRANSITIONS[state]
                for spec in SPECS[agreement].values():
                    keys = [f"{spec.kind}:{d}" for d in spec.decisions] or [spec.kind]
                    sender_ok = spec.kind in SIDE_KINDS or spec.sender is side
                    if spec.kind in SIDE_KINDS:  # the profile's direction: what the node takes
                        direction = PROFILES[agreement].kind(spec.kind).direction.value
                        sender_ok = direction in ("either", side.value)
                    # A form without a decision field may still send a kind the machine keys by
                    # a decision read from its content (AuthenticityConfirmation:confirmed).
                    by_content = not spec.decisions and any(
                        key.startswith(f"{spec.kind}:") and who is side for key, who in row
                    )
                    expected = sender_ok and (any((k, side) in row for k in keys) or by_content)
                    assert (spec.name in offered) == expected, (agreement, state, side, spec.name)


def test_protection_answer_only_while_an_inquiry_is_unanswered() -> None:
    asked = _view(
        "cis-enforcement", "in-progress", Side.REQUESTED, ("ProtectionMeasuresInquiry", "in")
    )
    assert "protection-answer" in {s.name for s in available_actions(asked)}
    answered = _view(
        "cis-enforcement",
        "in-progress",
        Side.REQUESTED,
        ("ProtectionMeasuresInquiry", "in"),
        ("ProtectionMeasuresAnswer", "out"),
    )
    inquiry = next(m for m in answered.messages if m.kind == "ProtectionMeasuresInquiry")
    reply = replace(answered.messages[-1], in_reply_to=inquiry.message_id)
    answered = replace(answered, messages=(*answered.messages[:-1], reply))
    assert "protection-answer" not in {s.name for s in available_actions(answered)}
    # Authenticity (SC Art. 5.3) is a supreme-courts form only.
    assert "authenticity-request" not in SPECS["cis-enforcement"]
    assert "protection-inquiry" not in SPECS["ru-kz-supreme-courts"]


def test_nothing_is_offered_on_closed_main_path() -> None:
    # CIS Art. 9.2: consent to disclose is asked by the party that received the information.
    view = _view("cis-enforcement", "refused", Side.REQUESTED)
    assert available_actions(view) == ()
    view = _view("cis-enforcement", "refused", Side.REQUESTING)
    assert {s.name for s in available_actions(view)} == {"consent-request"}
    view = _view("cis-enforcement", "rejected", Side.REQUESTING)
    assert available_actions(view) == ()


def test_sc_has_no_cis_only_actions() -> None:
    assert "postpone" not in SPECS["ru-kz-supreme-courts"]
    assert "confidentiality-notice" not in SPECS["ru-kz-supreme-courts"]
    assert "postpone" in SPECS["cis-enforcement"]


def test_form_errors_before_building() -> None:
    view = _view("cis-enforcement", "in-progress", Side.REQUESTED)
    spec = SPECS["cis-enforcement"]["delay"]
    form = read_action_form(spec, view, {"Reason": "  ", "ExpectedDate": "29.01.2027"}, None)
    assert set(form.errors) == {"Reason", "ExpectedDate"}
    assert "ГГГГ-ММ-ДД" in form.errors["ExpectedDate"][0]
    spec = SPECS["cis-enforcement"]["postpone"]
    form = read_action_form(
        spec, view, {"Reason": "Основание.", "Mode": "conditions", "ConsultationsHeld": "no"}, None
    )
    assert set(form.errors) == {"Condition"}
    form = read_action_form(
        spec, view, {"Reason": "x", "Mode": "bogus", "ConsultationsHeld": "no"}, None
    )
    assert "Mode" in form.errors


def test_decision_not_allowed_now_is_refused() -> None:
    view = _view("cis-enforcement", "in-progress", Side.REQUESTING)
    spec = SPECS["cis-enforcement"]["postponement-decision"]
    form = read_action_form(spec, view, {"Decision": "accept"}, None)
    assert "Decision" in form.errors


def test_problem_paths_map_to_fields() -> None:
    spec = SPECS["cis-enforcement"]["respond"]

    def problem(path: str) -> Problem:
        return Problem(code="X", path=path, message_ru="м", message_en="m")

    found = problems_by_field(
        spec,
        [
            problem("/Envelope/Body/Response/Results/Result[1]/Other/Details"),
            problem("/Envelope/Body/Response/Summary"),
            problem("/Envelope/Header/Attachments/Attachment/Language"),
            problem("/Envelope/Header/Attachments/Attachment[2]/TranslationOf"),
            problem("/Envelope/Header/Recipient"),
        ],
        {"Attachment": Upload("akt.pdf", "a1"), "Translation": Upload("akt-ru.pdf", "a2")},
    )
    assert set(found) == {"Information", "Summary", "Attachment", "Translation", ""}
    assert [p.path for p in found["Translation"]] == [
        "/Envelope/Header/Attachments/Attachment[2]/TranslationOf"
    ]
    # The header lists each slot's file, then its translation: entry n is the n-th file sent.
    two_slots = {
        "Attachment": Upload("akt.pdf", "a1"),
        "Attachment2": Upload("reshenie-kk.pdf", "a2"),
        "Translation2": Upload("reshenie-ru.pdf", "a3"),
    }
    listed = [f"/Envelope/Header/Attachments/Attachment[{n}]/Name" for n in (1, 2, 3)]
    by_file = problems_by_field(spec, [problem(path) for path in listed], two_slots)
    assert {name: [p.path for p in found] for name, found in by_file.items()} == {
        "Attachment": [listed[0]],
        "Attachment2": [listed[1]],
        "Translation2": [listed[2]],
    }
    delay = SPECS["ru-kz-supreme-courts"]["delay"]
    obstacle = [problem("/Envelope/Body/DelayNotice/Obstacle")]
    assert set(problems_by_field(delay, obstacle, {})) == {"Reason"}


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("C:\\Users\\ivanova\\выписка.pdf", "выписка.pdf"),
        ("../../etc/passwd", "passwd"),
        ('a"b<c>.txt', "a_b_c_.txt"),
        ("..hidden", "hidden"),
        ("", "file"),
        ("x\u202etxt.exe", "xtxt.exe"),
    ],
)
def test_file_names_are_made_bare(raw: str, clean: str) -> None:
    assert clean_file_name(raw) == clean


def test_media_types_are_plain_or_octet_stream() -> None:
    assert clean_media_type("application/pdf") == "application/pdf"
    assert clean_media_type("text/plain; charset=utf-8") == "text/plain"
    assert clean_media_type("text/html\r\nX-Evil: 1") == "application/octet-stream"
    assert clean_media_type(None) == "application/octet-stream"


# --- through the console -----------------------------------------------------------------------


def _form(
    token: str,
    values: dict[str, Any],
    upload: tuple[str, bytes, str] | None,
    translation: tuple[str, bytes, str] | None = None,
) -> Any:
    data = aiohttp.FormData()
    data.add_field("csrf_token", token)
    for key, value in values.items():
        data.add_field(key, value)
    for field_name, file in (("Attachment", upload), ("Translation", translation)):
        if file is not None:
            name, content, media_type = file
            data.add_field(field_name, content, filename=name, content_type=media_type)
    return data


async def test_conversation_page_lists_the_allowed_actions(client, seeded) -> None:
    await signed_in(client, "operator1")
    page = await (await client.get(f"/conversations/{seeded.cis}")).text()
    for name in ("respond", "ask", "delay", "postpone", "confidentiality-notice"):
        assert f'id="action-{name}"' in page
    assert 'id="action-withdraw"' not in page  # we are the requested party
    assert 'id="action-postponement-decision"' not in page
    # Answered, and we asked: only consent to pass the answer on (CIS Art. 9.2) remains.
    answered = await (await client.get(f"/conversations/{seeded.answered}")).text()
    assert 'id="action-consent-request"' in answered
    assert 'id="action-respond"' not in answered and 'id="action-withdraw"' not in answered


RESPONSE = {"Summary": "Запрос исполнен.", "Complete": "yes", "Information": "Сведения."}


async def test_response_with_an_attachment_is_submitted(client, service, seeded) -> None:
    """The file is streamed into the node, then listed, titled, beside the XML (the signed
    header's list), not put inside the body."""
    token = await signed_in(client, "operator1")
    page = await client.get(f"/conversations/{seeded.sc}/actions/respond")
    html = await page.text()
    assert page.status == 200 and 'enctype="multipart/form-data"' in html
    # Title and language come before the files: the files are the form's last parts.
    assert html.index('name="AttachmentTitle"') < html.index('name="AttachmentLanguage"')
    assert html.index('name="AttachmentLanguage"') < html.index('name="Attachment"')
    assert html.index('name="Attachment"') < html.index('name="Translation"')
    content = "Обзор судебной практики (демонстрация)\n".encode() * 50_000  # ~2 MB
    response = await client.post(
        f"/conversations/{seeded.sc}/actions/respond",
        data=_form(
            token,
            RESPONSE | {"AttachmentTitle": "Обзор практики"},
            ("obzor.txt", content, "text/plain"),
        ),
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    [document] = service.submitted
    [listed] = document["attachments"]
    assert listed["title"] == "Обзор практики"
    meta, sent = service.sent_uploads[listed["id"]]
    assert (meta.name, meta.media_type, sent) == ("obzor.txt", "text/plain", content)
    assert meta.language == "ru"  # the form's default: the working language
    assert "Attachments" not in document["body"]["Response"]
    stored = service.messages[document["header"]["MessageId"]]
    assert b"<env:Title>\xd0\x9e\xd0\xb1\xd0\xb7\xd0\xbe\xd1\x80 " in stored.xml
    assert document["header"]["InReplyTo"] == seeded.sc_request
    flash = await (await client.get(f"/conversations/{seeded.sc}")).text()
    assert 'id="flash"' in flash and "принят к отправке" in flash


async def test_a_file_in_kazakh_travels_with_its_russian_translation(
    client, service, seeded
) -> None:
    """SC Art. 11, CIS Art. 19: the file is uploaded in the language chosen before it, its
    translation in Russian, and the signed header lists the translation as naming the file."""
    token = await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{seeded.sc}/actions/respond",
        data=_form(
            token,
            RESPONSE | {"AttachmentTitle": "Решение суда", "AttachmentLanguage": "kk"},
            ("sheshim.pdf", b"%PDF-1.7 kk", "application/pdf"),
            ("reshenie-ru.pdf", b"%PDF-1.7 ru", "application/pdf"),
        ),
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    [document] = service.submitted
    original, translation = document["attachments"]
    assert original["title"] == "Решение суда" and "translation_of" not in original
    assert translation == {
        "id": translation["id"],
        "title": "Перевод на русский язык: Решение суда",
        "translation_of": "sheshim.pdf",
    }
    assert service.sent_uploads[original["id"]][0].language == "kk"
    assert service.sent_uploads[translation["id"]][0].language == "ru"
    stored = service.messages[document["header"]["MessageId"]].xml
    assert b"<env:TranslationOf>sheshim.pdf</env:TranslationOf>" in stored


@pytest.mark.parametrize(("agreement", "article"), [("sc", "ст. 11"), ("cis", "ст. 19")])
async def test_a_file_in_kazakh_without_translation_is_refused_at_its_field(
    client, service, seeded, agreement: str, article: str
) -> None:
    """The node's language rule refuses it; the console names it at the file's field, with
    the article and the form's ways to mend it, and keeps neither file."""
    token = await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{getattr(seeded, agreement)}/actions/respond",
        data=_form(
            token,
            RESPONSE | {"AttachmentLanguage": "kk"},
            ("sheshim.pdf", b"%PDF-1.7 kk", "application/pdf"),
        ),
    )
    assert response.status == 422
    html = await response.text()
    error = html.split('id="error-Attachment">', 1)[1].split("</span>", 1)[0]
    assert "не на русском языке" in error and article in error
    assert "«Перевод приложения на русский язык»" in error and "translation_of" not in error
    assert "выписку из реестра" in error and "register_extract" not in error
    assert '<option value="kk" selected>' in html  # the choice stays
    assert service.submitted == [] and service.uploads == {}


async def test_a_register_extract_in_kazakh_travels_without_translation(
    client, service, seeded
) -> None:
    """CIS Art. 5 para. 3: the operator marks the Kazakh file a register extract; the header
    lists it so and the node's language rule lets it go alone. The Supreme Courts' form, whose
    agreement has no such exemption, does not ask."""
    token = await signed_in(client, "operator1")
    cis_form = await (await client.get(f"/conversations/{seeded.cis}/actions/respond")).text()
    sc_form = await (await client.get(f"/conversations/{seeded.sc}/actions/respond")).text()
    assert 'id="RegisterExtract-yes"' in cis_form and "RegisterExtract" not in sc_form
    assert cis_form.index('name="RegisterExtract"') < cis_form.index('name="Attachment"')
    chosen = {"AttachmentLanguage": "kk", "RegisterExtract": "yes"}
    response = await client.post(
        f"/conversations/{seeded.cis}/actions/respond",
        data=_form(token, RESPONSE | chosen, ("vypiska.pdf", b"%PDF-1.7 kk", "application/pdf")),
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    [document] = service.submitted
    [listed] = document["attachments"]
    assert listed["register_extract"] is True and "translation_of" not in listed
    stored = service.messages[document["header"]["MessageId"]].xml
    assert b"<env:RegisterExtract>true</env:RegisterExtract>" in stored


async def test_a_translation_alone_is_refused_and_discarded(client, service, seeded) -> None:
    token = await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{seeded.sc}/actions/respond",
        data=_form(token, RESPONSE, None, ("perevod.pdf", b"%PDF-1.7", "application/pdf")),
    )
    assert response.status == 422
    html = await response.text()
    assert "вместе с самим приложением" in html.split('id="error-Translation">', 1)[1]
    assert service.calls[-2:] == ["upload_attachment", "discard_upload"]
    assert service.submitted == [] and service.uploads == {}


async def test_a_file_over_the_nodes_limit_is_named_at_its_field(client, service, seeded) -> None:
    token = await signed_in(client, "operator1")
    service.upload_limit = 1024 * 1024
    response = await client.post(
        f"/conversations/{seeded.sc}/actions/respond",
        data=_form(token, RESPONSE, ("big.bin", b"\0" * (1024 * 1024 + 1), "application/x")),
    )
    assert response.status == 422
    html = await response.text()
    error = html.split('id="error-Attachment">', 1)[1].split("</span>", 1)[0]
    assert "1 МБ" in error and "предела этого узла" in error
    assert "Запрос исполнен." in html  # what was typed stays
    assert service.submitted == [] and service.uploads == {}


async def test_a_refused_form_deletes_the_file_it_took_in(client, service, seeded) -> None:
    """The operator attaches the file again with the corrected form: the bytes taken in for
    the refused one do not wait for the one-day sweep."""
    token = await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{seeded.sc}/actions/respond",
        data=_form(token, RESPONSE | {"Summary": " "}, ("akt.pdf", b"%PDF-1.7", "application/pdf")),
    )
    assert response.status == 422 and 'id="error-Summary"' in await response.text()
    assert service.calls[-2:] == ["upload_attachment", "discard_upload"]
    assert service.uploads == {} and service.submitted == []


async def test_an_empty_file_is_named_and_nothing_is_kept(client, service, seeded) -> None:
    token = await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{seeded.sc}/actions/respond",
        data=_form(token, RESPONSE, ("empty.pdf", b"", "application/pdf")),
    )
    assert response.status == 422
    assert "Файл пуст." in await response.text()
    assert service.uploads == {} and service.submitted == []


async def test_a_streamed_form_needs_its_csrf_token_first(client, service, seeded) -> None:
    """No byte of a file is taken in before the token is checked: a form whose first part is
    not the token is refused (403) with nothing uploaded."""
    token = await signed_in(client, "operator1")
    data = aiohttp.FormData()
    data.add_field("Attachment", b"%PDF-1.7", filename="akt.pdf", content_type="application/pdf")
    data.add_field("csrf_token", token)
    for key, value in RESPONSE.items():
        data.add_field(key, value)
    url = f"/conversations/{seeded.sc}/actions/respond"
    response = await client.post(url, data=data)
    assert response.status == 403
    assert "upload_attachment" not in service.calls and service.submitted == []
    wrong = _form("x" * 40, RESPONSE, ("akt.pdf", b"%PDF-1.7", "application/pdf"))
    assert (await client.post(url, data=wrong)).status == 403
    assert "upload_attachment" not in service.calls


async def test_other_forms_keep_the_small_limit(client, seeded) -> None:
    token = await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{seeded.cis}/refuse",
        data={"csrf_token": token, "Circumstances": "x" * (200 * 1024)},
    )
    assert response.status == 413


async def test_service_problems_are_shown_next_to_the_field(client, service, seeded) -> None:
    token = await signed_in(client, "operator1")
    conditions = "\n".join(f"Условие {i}." for i in range(1, 22))
    response = await client.post(
        f"/conversations/{seeded.cis}/actions/postpone",
        # The schema allows 20 conditions (cis:Conditions); the console leaves that to it.
        data={
            "csrf_token": token,
            "Reason": "Основание.",
            "Mode": "conditions",
            "Condition": conditions,
            "ConsultationsHeld": "no",
        },
    )
    assert response.status == 422
    html = await response.text()
    assert "submit" in service.calls and service.submitted == []
    field_error = html.split('id="error-Condition">', 1)[1].split("</span>", 1)[0]
    assert field_error.strip()
    assert "Условие 21." in html  # what was typed stays in the form
    assert 'id="Mode-conditions" checked' in html


async def test_action_not_allowed_now_is_refused(client, service, seeded) -> None:
    token = await signed_in(client, "operator1")
    page = await client.get(f"/conversations/{seeded.cis}/actions/withdraw")
    assert page.status == 409
    response = await client.post(
        f"/conversations/{seeded.answered}/actions/respond",
        data={"csrf_token": token, "Summary": "x", "Complete": "yes", "Information": "y"},
    )
    assert response.status == 409
    assert service.submitted == []
    assert (await client.get(f"/conversations/{seeded.cis}/actions/no-such")).status == 404


async def test_actions_need_the_operator_role(client, service, seeded) -> None:
    token = await signed_in(client, "auditor1")
    response = await client.post(
        f"/conversations/{seeded.cis}/actions/delay",
        data={"csrf_token": token, "Reason": "Причина.", "ExpectedDate": "2027-01-29"},
    )
    assert response.status == 403
    assert service.submitted == []


async def test_action_without_csrf_token_is_refused(client, service, seeded, audit) -> None:
    await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{seeded.cis}/actions/delay",
        data={"Reason": "Причина.", "ExpectedDate": "2027-01-29"},
    )
    assert response.status == 403
    assert service.submitted == []
    assert audit.of("console.csrf_refused")


async def test_consent_decision_answers_the_pending_request(client, service, seeded) -> None:
    # RU-FSSP asked us (KZ-MJ) for consent after our answer: we may decide on it.
    answered = service.conversations[seeded.cis]
    service.conversations[seeded.cis] = replace(answered, state="answered")
    request = example("cis-enforcement.ConsentRequest")
    request["header"].update(
        MessageId=uid("consent"),
        ConversationId=seeded.cis,
        Created=(NOW - timedelta(hours=1)).isoformat(),
    )
    service.add_message(request, direction="in")
    token = await signed_in(client, "operator1")
    page = await (await client.get(f"/conversations/{seeded.cis}")).text()
    assert 'id="action-consent-decision"' in page
    form = await (await client.get(f"/conversations/{seeded.cis}/actions/consent-decision")).text()
    assert f'id="ConsentRequestId-{uid("consent")}"' in form
    response = await client.post(
        f"/conversations/{seeded.cis}/actions/consent-decision",
        data={
            "csrf_token": token,
            "ConsentRequestId": uid("consent"),
            "Decision": "refused",
            "Reason": "Сведения для служебного пользования.",
        },
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    [document] = service.submitted
    assert document["header"]["InReplyTo"] == uid("consent")
    assert document["body"]["ConsentDecision"]["Decision"] == "refused"


async def test_disclosure_form_records_or_names_the_refusal(
    make_client, seeded, node_acts, console_store, ring
) -> None:
    """Offered to a confidential reader once a document was received; the agreement's rule
    decides (gateway.app.disclosures.disclose, as ``gateway disclose`` and the API): an allowed
    disclosure is recorded, a refusal names the article and what to do."""
    client = await make_client(acts=node_acts)
    await signed_in(client, "operator1")  # may send, may not disclose
    page = await (await client.get(f"/conversations/{seeded.cis}")).text()
    assert 'id="action-disclose"' not in page
    assert (await client.get(f"/conversations/{seeded.cis}/actions/disclose")).status == 403
    await client.post("/logout", data={"csrf_token": csrf_of(page)})

    token = await signed_in(client, "reader1")
    page = await (await client.get(f"/conversations/{seeded.cis}")).text()
    assert 'id="action-disclose"' in page
    form = await (await client.get(f"/conversations/{seeded.cis}/actions/disclose")).text()
    assert f'value="{seeded.cis_request}"' in form  # the received request is offered
    typed = {
        "csrf_token": token,
        "MessageId": seeded.cis_request,
        "Recipient": "Образцов Иван Иванович",
        "Purpose": "Ознакомление должника с запросом по исполнительному производству.",
    }
    url = f"/conversations/{seeded.cis}/actions/disclose"
    refused = await client.post(url, data={**typed, "Category": "third-party"})
    assert refused.status == 409
    html = await refused.text()
    assert "ст. 9.2 Соглашения СНГ" in html and "Что сделать:" in html
    assert "Образцов Иван Иванович" in html  # what was typed stays in the form
    with console_store.read() as conn:
        assert disclosures.list_for_message(conn, seeded.cis_request) == []
    done = await client.post(url, data={**typed, "Category": "debtor"}, allow_redirects=False)
    assert done.status == 303
    with console_store.read() as conn:
        (record,) = disclosures.list_for_message(conn, seeded.cis_request)
        sealed = disclosures.open_sealed(conn, ring, record.disclosure_id, NOW)
        kinds = [(e.kind, e.actor) for e in audit.events(conn) if "disclos" in e.kind]
    assert (record.category, record.article, record.actor) == ("debtor", "CIS Art. 9.2", "reader1")
    assert sealed.recipient == "Образцов Иван Иванович"
    assert kinds == [("disclosure.refused", "reader1"), ("document.disclosed", "reader1")]
    shown = await (await client.get(f"/conversations/{seeded.cis}")).text()
    assert "Раскрытие записано" in shown and record.disclosure_id in shown


def test_consultations_are_offered_as_each_agreement_provides() -> None:
    # CIS Art. 13 para. 3, 15: the requested party consults before refusing or setting
    # conditions; SC Art. 9.2: either party may raise substantial costs.
    for agreement, side, offered in (
        ("cis-enforcement", Side.REQUESTED, True),
        ("cis-enforcement", Side.REQUESTING, False),
        ("ru-kz-supreme-courts", Side.REQUESTED, True),
        ("ru-kz-supreme-courts", Side.REQUESTING, True),
    ):
        names = {s.name for s in available_actions(_view(agreement, "in-progress", side))}
        assert ("consult" in names) is offered, (agreement, side)
        assert "consult-answer" not in names  # nothing to answer yet
    closed = _view("cis-enforcement", "refused", Side.REQUESTED)
    assert "consult" not in {s.name for s in available_actions(closed)}
    late = _view("cis-enforcement", "refused", Side.REQUESTING, ("ConsultationRequest", "in"))
    assert "consult-answer" in {s.name for s in available_actions(late)}


def test_consultation_forms_refuse_a_bad_amount_and_shared_costs_without_terms() -> None:
    view = _view("ru-kz-supreme-courts", "in-progress", Side.REQUESTED)
    spec = SPECS["ru-kz-supreme-courts"]["consult"]
    typed = {**_typed("consult", view), "Amount": "около миллиона"}
    assert set(read_action_form(spec, view, typed, None).errors) == {"Amount"}
    asked = _view(
        "ru-kz-supreme-courts", "in-progress", Side.REQUESTING, ("ConsultationRequest", "in")
    )
    spec = SPECS["ru-kz-supreme-courts"]["consult-answer"]
    typed = {**_typed("consult-answer", asked), "CoverageTerms": ""}
    assert set(read_action_form(spec, asked, typed, None).errors) == {"CoverageTerms"}
    typed["CostCoverage"] = "each-party-own"
    form = read_action_form(spec, asked, typed, None)
    assert form.errors == {}
    document = build_document(spec, asked, form, NOW)
    request = next(m for m in asked.messages if m.kind == "ConsultationRequest")
    assert document["header"]["InReplyTo"] == request.message_id


def test_a_consultation_record_settles_an_open_consultation_of_either_party() -> None:
    asked = _view("cis-enforcement", "in-progress", Side.REQUESTED, ("ConsultationRequest", "out"))
    spec = SPECS["cis-enforcement"]["consult-record"]
    assert spec in available_actions(asked)
    [(request_id, _)] = choices_of(spec, asked, spec.fields[0])
    typed = {**_typed("consult-record", asked), "ConsultationRequestId": request_id}
    form = read_action_form(spec, asked, typed, None)
    assert form.errors == {}
    document = build_document(spec, asked, form, NOW)
    assert document["header"]["InReplyTo"] == request_id
    assert validate(json_to_xml(document)) == ()
    closed = _view("cis-enforcement", "refused", Side.REQUESTED, ("ConsultationRequest", "out"))
    assert spec in available_actions(closed)  # held before the refusal, recorded after it


async def test_a_field_too_long_after_the_file_keeps_nothing_of_it(client, service, seeded) -> None:
    """A text field past its bound after the file came in: 413, and the file is deleted."""
    token = await signed_in(client, "operator1")
    data = aiohttp.FormData()
    data.add_field("csrf_token", token)
    data.add_field("Attachment", b"%PDF-1.7", filename="akt.pdf", content_type="application/pdf")
    data.add_field("Summary", "ж" * 40_000)  # 80 KB in UTF-8: over the 64 KiB a field may take
    response = await client.post(f"/conversations/{seeded.sc}/actions/respond", data=data)
    assert response.status == 413
    assert service.calls[-2:] == ["upload_attachment", "discard_upload"]
    assert service.uploads == {} and service.submitted == []


def test_the_console_rewords_only_codes_the_rules_raise() -> None:
    """A remedy in the form's words stands for a rule that exists (a renamed code would leave
    the node's API wording on the page unnoticed)."""
    from pathlib import Path

    from gateway.rules import content
    from gateway.web.console.actions import CONSOLE_REMEDIES_RU, in_form_words

    source = Path(content.__file__).read_text("utf-8")
    assert all(f'"{code}"' in source for code in CONSOLE_REMEDIES_RU)
    other = Problem(code="RULE_OTHER", path="/", message_ru="м", message_en="m", remedy_ru="r")
    assert in_form_words(other) is other

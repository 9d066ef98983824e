"""The refusal form, end to end: grounds from the agreement (CIS Art. 13, 25; SC Art. 6.2),
the JSON document built by the console, service.submit, problems shown next to the field."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from gateway.model.profiles import PROFILES
from gateway.store.attachments import AttachmentMeta
from gateway.web.console.refusal import EXTENTS, REFUSAL_GROUNDS, problems_by_field
from gateway.xml.convert import json_to_xml
from gateway.xml.schemas import PREFIXES, default_registry
from gateway.xml.validate import validate
from tests.web.console.conftest import reading_as, signed_in

PROFILE_NS = {"cis-enforcement": PREFIXES["cis"], "ru-kz-supreme-courts": PREFIXES["sc"]}


@pytest.mark.parametrize("agreement", list(PROFILES))
def test_grounds_are_the_schema_s(agreement: str) -> None:
    types = default_registry().xmlschema.maps.types
    enumeration = types[f"{{{PROFILE_NS[agreement]}}}RefusalGround"].enumeration
    assert [g.code for g in REFUSAL_GROUNDS[agreement]] == enumeration
    if agreement == "ru-kz-supreme-courts":
        extents = types[f"{{{PROFILE_NS[agreement]}}}RefusalExtent"].enumeration
        assert list(EXTENTS) == extents


async def test_form_offers_the_agreement_s_grounds(client, seeded) -> None:
    await signed_in(client, "operator1")
    cis = await (await client.get(f"/conversations/{seeded.cis}/refuse")).text()
    assert 'id="ground-non-application-declaration"' in cis  # CIS Art. 25
    assert "ст. 13, 25 Соглашения СНГ" in cis
    assert 'id="ground-public-order"' not in cis
    assert 'id="Circumstances"' in cis and 'id="consultations-yes"' in cis
    sc = await (await client.get(f"/conversations/{seeded.sc}/refuse")).text()
    assert 'id="ground-public-order"' in sc and 'id="ground-rights-violation"' in sc
    assert 'id="ground-non-application-declaration"' not in sc
    assert 'id="Reasons"' in sc and 'id="extent-partial"' in sc


async def test_cis_refusal_is_submitted(client, service, seeded) -> None:
    token = await signed_in(client, "operator1")
    circumstances = "Исполнительный документ выдан органом, о котором заявлено по статье 25."
    response = await client.post(
        f"/conversations/{seeded.cis}/refuse",
        data={
            "csrf_token": token,
            "Ground": ["non-application-declaration", "contrary-to-law"],
            "Circumstances": circumstances,
            "ConsultationsHeld": "yes",
        },
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"/conversations/{seeded.cis}"
    [document] = service.submitted
    assert validate(json_to_xml(document)) == ()
    header = document["header"]
    assert header["Kind"] == "Refusal" and header["Agreement"] == "cis-enforcement"
    assert header["ConversationId"] == seeded.cis
    assert header["InReplyTo"] == seeded.cis_request
    assert (header["Sender"], header["Recipient"]) == ("KZ-MJ", "RU-FSSP")
    assert header["Confidential"] is False
    assert document["body"] == {
        "Refusal": {
            "Ground": ["non-application-declaration", "contrary-to-law"],
            "Circumstances": circumstances,
            "ConsultationsHeld": True,
        }
    }
    html = await (await client.get(response.headers["Location"])).text()
    assert 'id="flash"' in html and header["MessageId"] in html
    assert "Отказано в исполнении" in html  # the new state


async def test_sc_partial_refusal_is_submitted(client, service, seeded) -> None:
    token = await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{seeded.sc}/refuse",
        data={
            "csrf_token": token,
            "Extent": "partial",
            "Ground": "rights-violation",
            "Reasons": "Передача сведений нарушит права третьих лиц.",
            "RefusedPart": "Сведения о третьих лицах.",
        },
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    [document] = service.submitted
    assert validate(json_to_xml(document)) == ()
    assert document["header"]["Sender"] == "KZ-VS"
    assert document["body"]["Refusal"] == {
        "Extent": "partial",
        "Ground": ["rights-violation"],
        "Reasons": "Передача сведений нарушит права третьих лиц.",
        "RefusedPart": "Сведения о третьих лицах.",
    }


async def test_missing_choices_are_named_before_submitting(client, service, seeded) -> None:
    token = await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{seeded.cis}/refuse",
        data={"csrf_token": token, "Circumstances": "Причина изложена."},
    )
    html = await response.text()
    assert response.status == 422
    assert 'id="error-Ground"' in html and 'id="error-ConsultationsHeld"' in html
    assert "Причина изложена." in html  # what was typed is kept
    assert service.submitted == [] and "submit" not in service.calls


async def test_ground_not_of_the_agreement_is_refused(client, service, seeded) -> None:
    token = await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{seeded.cis}/refuse",
        data={
            "csrf_token": token,
            "Ground": "public-order",
            "Circumstances": "Текст.",
            "ConsultationsHeld": "no",
        },
    )
    assert response.status == 422 and 'id="error-Ground"' in await response.text()
    assert service.submitted == []


async def test_service_problems_are_shown_next_to_the_field(client, service, seeded) -> None:
    token = await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{seeded.cis}/refuse",
        data={
            "csrf_token": token,
            "Ground": "security",
            "Circumstances": "   ",
            "ConsultationsHeld": "no",
        },
    )
    html = await response.text()
    assert response.status == 422
    assert "submit" in service.calls and service.submitted == []
    field_error = html.split('id="error-Circumstances">', 1)[1].split("</span>", 1)[0]
    assert "непустой текст" in field_error  # the schema's Russian message, from the service
    assert 'id="ground-security" checked' in html


def test_problem_paths_map_to_fields() -> None:
    from gateway.model.problems import Problem

    problems = [
        Problem("A", "/Envelope/Body/Refusal/Ground[2]", "а", "a"),
        Problem("B", "/Envelope/Body/Refusal/ReturnedDocuments/FileName", "б", "b"),
        Problem("C", "/Envelope/Header/InReplyTo", "в", "c"),
        Problem("D", "/Envelope/Header/Attachments/Attachment[1]/Language", "г", "d"),
    ]
    by_field = problems_by_field(problems)
    assert [p.code for p in by_field["Ground"]] == ["A"]
    # The files a refusal lists are the documents it returns (CIS Art. 13).
    assert [p.code for p in by_field["ReturnedDocuments"]] == ["B", "D"]
    assert [p.code for p in by_field[""]] == ["C"]


async def test_refusal_needs_the_operator_role(client, service, seeded) -> None:
    token = await signed_in(client, "auditor1")
    assert (await client.get(f"/conversations/{seeded.cis}/refuse")).status == 403
    response = await client.post(
        f"/conversations/{seeded.cis}/refuse",
        data={
            "csrf_token": token,
            "Ground": "security",
            "Circumstances": "Текст.",
            "ConsultationsHeld": "no",
        },
    )
    assert response.status == 403 and "Оператор" in await response.text()
    assert service.submitted == []


async def test_no_refusal_of_a_closed_or_own_request(client, seeded) -> None:
    await signed_in(client, "operator1")
    response = await client.get(f"/conversations/{seeded.answered}/refuse")
    assert response.status == 409
    html = await (await client.get(f"/conversations/{seeded.answered}")).text()
    assert 'id="action-refuse"' not in html


# --- the documents returned with a CIS refusal (Art. 13 para. 2) ------------------------------

SCAN = b"%PDF-1.7 scan of the writ" * 40


def _request_with_files(service, seeded) -> None:
    """The seeded CIS request as if it came with a writ and an inventory beside it."""
    listed = [
        {"Name": "writ.pdf", "Title": "Исполнительный лист", "MediaType": "application/pdf"},
        {"Name": "inventory.pdf", "MediaType": "application/pdf"},
    ]
    for number, item in enumerate(listed, start=1):
        content = SCAN * number
        item.update(Size=len(content), Sha256=hashlib.sha256(content).hexdigest())
        meta = AttachmentMeta(item["Name"], "application/pdf", None)
        service.received_files[seeded.cis_request, number] = (meta, content)
    service.messages[seeded.cis_request].header["Attachments"] = {"Attachment": listed}


REFUSAL = {"Ground": "security", "Circumstances": "Ущерб безопасности.", "ConsultationsHeld": "no"}


async def test_the_request_s_files_are_offered_once_a_purpose_is_stated(
    client, service, seeded
) -> None:
    _request_with_files(service, seeded)
    await signed_in(client, "operator1")
    locked = await (await client.get(f"/conversations/{seeded.cis}/refuse")).text()
    assert 'id="returned-locked"' in locked and 'id="purpose-form"' in locked
    assert "writ.pdf" not in locked  # a file's name is the request's content (CIS Art. 9.1)
    await reading_as(client, "operator1", seeded.cis)
    html = await (await client.get(f"/conversations/{seeded.cis}/refuse")).text()
    assert 'id="returned-1" checked' in html and 'id="returned-2" checked' in html
    assert "Исполнительный лист" in html and "inventory.pdf" in html
    assert 'id="purpose-form"' not in html
    sc = await (await client.get(f"/conversations/{seeded.sc}/refuse")).text()
    assert 'id="field-ReturnedDocuments"' not in sc  # SC Art. 6.2 returns nothing


async def test_a_confidential_request_s_files_name_the_role_that_may_return_them(
    client, service, seeded
) -> None:
    """A request sent confidential in an open conversation: the operator, having stated a
    purpose, is told which role may read (and so return) its files, not asked again."""
    _request_with_files(service, seeded)
    stored = service.messages[seeded.cis_request]
    secret = dataclasses.replace(stored.summary, confidential=True)
    service.messages[seeded.cis_request] = dataclasses.replace(stored, summary=secret)
    await reading_as(client, "operator1", seeded.cis)
    html = await (await client.get(f"/conversations/{seeded.cis}/refuse")).text()
    assert 'id="returned-locked"' in html and "с ролью" in html
    assert 'id="purpose-form"' not in html and "writ.pdf" not in html


async def test_the_ticked_files_go_back_with_the_refusal(client, service, seeded) -> None:
    _request_with_files(service, seeded)
    token = await reading_as(client, "operator1", seeded.cis)
    response = await client.post(
        f"/conversations/{seeded.cis}/refuse",
        data={"csrf_token": token, **REFUSAL, "Returned": ["2"]},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    [document] = service.submitted
    assert document["body"]["Refusal"]["ReturnedDocuments"] == {"FileName": ["inventory.pdf"]}
    [listed] = document["attachments"]
    assert listed["title"] == "inventory.pdf"
    assert service.sent_uploads[listed["id"]] == service.received_files[seeded.cis_request, 2]
    assert service.uploads == {}  # the double judged it with the header list it signs


async def test_a_refused_refusal_deletes_the_copies_it_took(client, service, seeded) -> None:
    _request_with_files(service, seeded)
    token = await reading_as(client, "operator1", seeded.cis)
    response = await client.post(
        f"/conversations/{seeded.cis}/refuse",
        data={"csrf_token": token, **REFUSAL, "Circumstances": " ", "Returned": ["1", "2"]},
    )
    html = await response.text()
    assert response.status == 422 and 'id="error-Circumstances"' in html
    assert 'id="returned-1" checked' in html and 'id="returned-2" checked' in html
    assert service.calls.count("return_attachment") == 2
    assert service.calls.count("discard_upload") == 2 and service.uploads == {}


async def test_a_file_not_of_the_request_is_refused_at_its_field(client, service, seeded) -> None:
    _request_with_files(service, seeded)
    token = await reading_as(client, "operator1", seeded.cis)
    response = await client.post(
        f"/conversations/{seeded.cis}/refuse",
        data={"csrf_token": token, **REFUSAL, "Returned": ["1", "7"]},
    )
    html = await response.text()
    assert response.status == 422 and 'id="error-ReturnedDocuments"' in html
    assert "return_attachment" not in service.calls and service.submitted == []

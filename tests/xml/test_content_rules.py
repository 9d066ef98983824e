"""Content rules at their edges, and the typed header they read."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from gateway.model.envelope import Header, Urgency
from gateway.model.problems import DocumentRejected
from gateway.rules.content import check_content
from gateway.xml.convert import json_to_xml
from gateway.xml.header import read_header
from gateway.xml.validate import validate
from tests.xml.helpers import VALID, load_json

REQUEST = load_json(VALID / "cis-enforcement.Request.json")
SC_REQUEST = load_json(VALID / "ru-kz-supreme-courts.Request.json")
SC_DOCUMENTS = load_json(VALID / "ru-kz-supreme-courts.Request-documents.json")
"""A court's request with a document in Kazakh and its translation, beside the XML."""


def _codes(document: dict) -> list[str]:
    root = json_to_xml(document)
    assert validate(root) == ()
    return [p.code for p in check_content(root, read_header(root))]


def _with_income_period(start: str, end: str) -> dict:
    document = copy.deepcopy(REQUEST)
    for subject in document["body"]["Request"]["Subjects"]["Subject"]:
        if "EmploymentAndIncome" in subject:
            subject["EmploymentAndIncome"]["Period"] = {"From": start, "To": end}
    return document


@pytest.mark.parametrize(
    ("start", "end", "codes"),
    [
        ("2023-11-01", "2026-10-31", []),  # exactly three years
        ("2023-11-01", "2026-11-01", ["RULE_INCOME_PERIOD_TOO_LONG"]),  # one day more
        ("2024-02-29", "2027-02-28", []),  # from a leap day: three years end on 28 Feb
        ("2024-02-29", "2027-03-01", ["RULE_INCOME_PERIOD_TOO_LONG"]),
        ("2026-01-01", "2026-01-01", []),  # a single day
        ("2026-01-02", "2026-01-01", ["RULE_INCOME_PERIOD_REVERSED"]),
    ],
)
def test_income_period_cap_of_article_7(start: str, end: str, codes: list[str]) -> None:
    assert _codes(_with_income_period(start, end)) == codes


def test_income_period_problem_names_article_and_last_allowed_day() -> None:
    root = json_to_xml(_with_income_period("2023-11-01", "2026-12-31"))
    (problem,) = check_content(root, read_header(root))
    assert problem.article == "CIS Art. 7"
    assert "2026-10-31" in problem.remedy_ru
    assert problem.path.endswith("/EmploymentAndIncome/Period")


def test_property_identified_by_identifier_alone_passes() -> None:
    document = copy.deepcopy(REQUEST)
    for subject in document["body"]["Request"]["Subjects"]["Subject"]:
        location = subject.get("Location")
        if location and location["Target"] == "property":
            location["Property"] = [{"Identifier": [{"Kind": "VIN", "Value": "JTNB11HK103000001"}]}]
    assert _codes(document) == []


def test_questions_rule_applies_to_every_explanations_subject() -> None:
    document = copy.deepcopy(REQUEST)
    subjects = document["body"]["Request"]["Subjects"]["Subject"]
    subjects.append({"Explanations": {"Party": "creditor", "Questions": None}})
    assert _codes(document) == ["RULE_QUESTIONS_MISSING"]


def test_several_problems_are_all_reported() -> None:
    document = _with_income_period("2020-01-01", "2026-01-01")
    document["header"]["Language"] = "en"
    document["header"]["Recipient"] = document["header"]["Sender"]
    assert _codes(document) == [
        "RULE_LANGUAGE",
        "RULE_SENDER_IS_RECIPIENT",
        "RULE_INCOME_PERIOD_TOO_LONG",
    ]


def test_russian_original_needs_no_translation_but_kazakh_does() -> None:
    document = copy.deepcopy(SC_DOCUMENTS)
    first = document["body"]["Request"]["Documents"]["Document"][0]
    del first["Translation"]
    assert _codes(document) == ["RULE_TRANSLATION_MISSING"]
    first["OriginalLanguage"] = "ru"
    assert _codes(document) == []


ORAL = load_json(VALID / "ru-kz-supreme-courts.Request-oral.json")


@pytest.mark.parametrize(
    ("made_on", "asked_on", "created", "codes"),
    [
        ("2026-11-23", "2026-11-23", "2026-11-23T09:30:00+03:00", []),  # all on one day
        ("2026-11-20", "2026-11-23", "2026-11-24T09:30:00+03:00", []),
        ("2026-11-24", "2026-11-23", "2026-11-24T09:30:00+03:00", ["RULE_ORAL_REQUEST_DATES"]),
        ("2026-11-23", "2026-11-25", "2026-11-24T09:30:00+03:00", ["RULE_ORAL_REQUEST_DATES"]),
        # Created is read in the sender's own offset: 23:30 in Moscow is still the 23rd there.
        ("2026-11-23", "2026-11-23", "2026-11-23T23:30:00+03:00", []),
        ("2026-11-24", "2026-11-24", "2026-11-23T23:30:00+03:00", ["RULE_ORAL_REQUEST_DATES"]),
    ],
)
def test_oral_request_then_its_written_confirmation(
    made_on: str, asked_on: str, created: str, codes: list[str]
) -> None:
    """SC Art. 5.1 para. 2: oral request, then the requested party asks, then it is written."""
    document = copy.deepcopy(ORAL)
    document["header"]["Created"] = created
    oral = document["body"]["Request"]["ConfirmsOralRequest"]
    oral.update(MadeOn=made_on, ConfirmationAskedOn=asked_on)
    assert _codes(document) == codes


def test_oral_request_dates_problem_names_the_field_and_article() -> None:
    document = copy.deepcopy(ORAL)
    document["body"]["Request"]["ConfirmsOralRequest"]["MadeOn"] = "2026-11-25"
    root = json_to_xml(document)
    [problem] = check_content(root, read_header(root))
    assert problem.path == "/Envelope/Body/Request/ConfirmsOralRequest/MadeOn"
    assert problem.article == "SC Art. 5.1"
    assert "2026-11-25" in problem.message_ru


def test_read_header_types() -> None:
    root = json_to_xml(REQUEST)
    header = read_header(root)
    assert isinstance(header, Header)
    assert header.created == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert header.created.utcoffset() == timedelta(hours=3)
    assert header.requested_deadline == date(2026, 12, 21)
    assert header.in_reply_to is None
    assert header.confidential is False
    assert header.urgency is Urgency.NORMAL
    assert (header.agreement, header.kind, header.sender, header.recipient) == (
        "cis-enforcement",
        "Request",
        "RU-FSSP",
        "KZ-MJ",
    )
    assert header.message_id == REQUEST["header"]["MessageId"]
    with pytest.raises(AttributeError):
        header.kind = "Response"  # type: ignore[misc]


def test_read_header_of_a_reply() -> None:
    document = load_json(VALID / "cis-enforcement.Response.json")
    header = read_header(json_to_xml(document))
    assert header.in_reply_to == document["header"]["InReplyTo"]
    assert header.requested_deadline is None
    assert header.created.tzinfo is not None
    assert header.created.utcoffset() == timezone(timedelta(hours=5)).utcoffset(None)


def test_read_header_refuses_a_tree_without_header() -> None:
    root = json_to_xml(REQUEST)
    root.remove(root[0])
    with pytest.raises(ValueError, match="Header"):
        read_header(root)


def _named(name: str, **extra: object) -> dict:
    return {"Name": name, **extra}


def _cis_problems(*files: dict) -> list[tuple[str, str, str]]:
    """(code, article, last step of the path) for the CIS request listing ``files``."""
    return [(code, article, path.rsplit("/", 1)[-1]) for code, article, path in _beside(*files)]


def test_attachment_in_another_language_needs_its_russian_translation() -> None:
    original = _named("akt-kk.pdf", Language="kk")
    assert _cis_problems(original) == [
        ("RULE_ATTACHMENT_TRANSLATION_MISSING", "CIS Art. 19", "Language")
    ]
    translation = _named("akt-ru.pdf", Language="ru", TranslationOf="akt-kk.pdf")
    assert _cis_problems(original, translation) == []
    # Without Language a translation is taken as Russian, the agreement's language.
    implicit = _named("akt-ru.pdf", TranslationOf="akt-kk.pdf")
    assert _cis_problems(original, implicit) == []


@pytest.mark.parametrize(
    ("translation", "codes"),
    [
        # names itself
        (
            {"Language": "ru", "TranslationOf": "akt-ru.pdf"},
            ["RULE_ATTACHMENT_TRANSLATION_TARGET", "RULE_ATTACHMENT_TRANSLATION_MISSING"],
        ),
        # names no attachment of the list
        (
            {"Language": "ru", "TranslationOf": "other.pdf"},
            ["RULE_ATTACHMENT_TRANSLATION_TARGET", "RULE_ATTACHMENT_TRANSLATION_MISSING"],
        ),
        # a "translation" that is not in Russian
        (
            {"Language": "en", "TranslationOf": "akt-kk.pdf"},
            [
                "RULE_ATTACHMENT_TRANSLATION_TARGET",
                "RULE_ATTACHMENT_TRANSLATION_MISSING",
                "RULE_ATTACHMENT_TRANSLATION_MISSING",
            ],
        ),
    ],
)
def test_a_translation_must_name_another_attachment_and_be_russian(translation, codes) -> None:
    original = _named("akt-kk.pdf", Language="kk")
    found = _cis_problems(original, _named("akt-ru.pdf", **translation))
    assert [code for code, _, _ in found] == codes


COST_ANSWER = load_json(VALID / "ru-kz-supreme-courts.ConsultationAnswer.json")


@pytest.mark.parametrize(
    ("coverage", "terms", "codes"),
    [
        ("shared", "", ["RULE_COST_COVERAGE_TERMS"]),
        ("requesting-party", "", ["RULE_COST_COVERAGE_TERMS"]),
        ("requesting-party", "Запрашивающая Сторона возмещает расходы на перевод.", []),
        ("each-party-own", "", []),  # SC Art. 9.1's own rule needs no terms
        ("not-agreed", "", []),
        ("", "", []),
    ],
)
def test_costs_other_than_each_party_s_own_state_their_terms(
    coverage: str, terms: str, codes: list[str]
) -> None:
    """SC Art. 9: each party bears its own costs unless they agree otherwise in the case."""
    document = copy.deepcopy(COST_ANSWER)
    answer = document["body"]["ConsultationAnswer"]
    answer.pop("CoverageTerms")
    answer.pop("CostCoverage")
    if coverage:
        answer["CostCoverage"] = coverage
    if terms:
        answer["CoverageTerms"] = terms
    assert _codes(document) == codes


def test_cost_coverage_problem_names_the_field_and_article() -> None:
    document = copy.deepcopy(COST_ANSWER)
    document["body"]["ConsultationAnswer"].pop("CoverageTerms")
    root = json_to_xml(document)
    [problem] = check_content(root, read_header(root))
    assert problem.path == "/Envelope/Body/ConsultationAnswer/CoverageTerms"
    assert problem.article == "SC Art. 9"
    assert "shared" in problem.message_ru


def test_a_consultation_record_departing_from_art_9_1_states_its_terms() -> None:
    document = load_json(VALID / "ru-kz-supreme-courts.ConsultationRecord.json")
    assert _codes(document) == []
    document["body"]["ConsultationRecord"].pop("CoverageTerms")
    assert _codes(document) == ["RULE_COST_COVERAGE_TERMS"]


# --- files beside the XML: the signed header's list obeys the same language rule -------------


def _beside(*files: dict, agreement: dict = REQUEST) -> list[tuple[str, str, str]]:
    """(code, article, path) of the content problems of ``agreement``'s example with ``files``
    listed beside the XML in its header (name, size and digest made up: the list is what is
    judged here, the parts are checked on delivery)."""
    document = copy.deepcopy(agreement)
    document["header"]["Attachments"] = {
        "Attachment": [
            {"MediaType": "application/pdf", "Size": 1, "Sha256": "0" * 64, **item}
            for item in files
        ]
    }
    root = json_to_xml(document)
    assert validate(root) == ()
    return [(p.code, p.article, p.path) for p in check_content(root, read_header(root))]


def test_a_file_beside_the_xml_in_another_language_needs_its_russian_translation() -> None:
    """CIS Art. 19, SC Art. 11 do not depend on how a file travels: a Kazakh scan beside the
    XML is refused without its Russian translation, named at its header entry."""
    original = {"Name": "akt-kk.pdf", "Title": "Акт (на казахском)", "Language": "kk"}
    assert _beside(original) == [
        (
            "RULE_ATTACHMENT_TRANSLATION_MISSING",
            "CIS Art. 19",
            "/Envelope/Header/Attachments/Attachment/Language",  # one: no index, as paths write
        )
    ]
    assert _beside(original, agreement=SC_REQUEST)[0][:2] == (
        "RULE_ATTACHMENT_TRANSLATION_MISSING",
        "SC Art. 11",
    )
    translation = {"Name": "akt-ru.pdf", "TranslationOf": "akt-kk.pdf"}
    assert _beside(original, translation) == []
    assert _beside(original, {**translation, "TranslationOf": "other.pdf"}) == [
        (
            "RULE_ATTACHMENT_TRANSLATION_TARGET",
            "CIS Art. 19",
            "/Envelope/Header/Attachments/Attachment[2]/TranslationOf",
        ),
        (
            "RULE_ATTACHMENT_TRANSLATION_MISSING",
            "CIS Art. 19",
            "/Envelope/Header/Attachments/Attachment[1]/Language",
        ),
    ]


def test_a_register_extract_beside_the_xml_travels_without_translation_under_cis_only() -> None:
    extract = {"Name": "vypiska-kk.pdf", "Language": "kk", "RegisterExtract": True}
    assert _beside(extract) == []  # CIS Art. 5 para. 3
    # The courts' agreement has no such exception (SC Art. 11).
    assert [code for code, _, _ in _beside(extract, agreement=SC_REQUEST)] == [
        "RULE_ATTACHMENT_TRANSLATION_MISSING"
    ]


def test_two_files_beside_the_xml_with_one_name_are_refused() -> None:
    assert _beside({"Name": "same.pdf"}, {"Name": "same.pdf"}) == [
        (
            "RULE_ATTACHMENT_NAME_REPEATED",
            "CIS Art. 19",
            "/Envelope/Header/Attachments/Attachment[2]/Name",
        )
    ]


def test_a_file_beside_the_xml_and_its_title_read_back_from_the_header() -> None:
    document = copy.deepcopy(REQUEST)
    document["header"]["Attachments"] = {
        "Attachment": [
            {"Name": "akt.pdf", "Title": "Акт описи имущества", "MediaType": "application/pdf"}
            | {"Language": "ru", "TranslationOf": "akt-kk.pdf", "RegisterExtract": True}
            | {"Size": 7, "Sha256": "a" * 64}
        ]
    }
    (ref,) = read_header(json_to_xml(document)).attachments
    assert (ref.name, ref.title, ref.translation_of, ref.register_extract) == (
        "akt.pdf",
        "Акт описи имущества",
        "akt-kk.pdf",
        True,
    )
    plain = {"Name": "b.pdf", "MediaType": "application/pdf", "Size": 1, "Sha256": "b" * 64}
    document["header"]["Attachments"] = {"Attachment": [plain]}
    (ref,) = read_header(json_to_xml(document)).attachments
    assert (ref.title, ref.translation_of, ref.register_extract) == (None, None, False)


def test_a_file_the_body_names_travels_beside_it() -> None:
    """A court document, its translation (SC Art. 5.1) or a returned document (CIS Art. 13) is
    a name in the body: one no file beside the XML carries is refused, at the name."""
    document = copy.deepcopy(SC_DOCUMENTS)
    first = document["body"]["Request"]["Documents"]["Document"][0]
    assert _codes(document) == []
    first["Translation"] = "perevod-drugoy.txt"
    root = json_to_xml(document)
    (problem,) = check_content(root, read_header(root))
    assert (problem.code, problem.path) == (
        "RULE_FILE_NOT_LISTED",
        "/Envelope/Body/Request/Documents/Document[1]/Translation",
    )
    assert "perevod-drugoy.txt" in problem.message_ru and "attachments" in problem.remedy_ru
    refusal = load_json(VALID / "cis-enforcement.Refusal-returned-documents.json")
    assert _codes(refusal) == []
    refusal["header"].pop("Attachments")
    assert set(_codes(refusal)) == {"RULE_FILE_NOT_LISTED"}


def test_a_file_put_inside_the_body_is_refused_with_where_it_goes() -> None:
    """The first wave's inline attachments are gone: a case system still sending one is told to
    upload the file and list it beside the XML."""
    document = load_json(VALID / "cis-enforcement.Response.json")
    inline = {"Title": "Скан", "FileName": "a.pdf", "Content": "JVBERi0xLjQK"}
    document["body"]["Response"]["Attachments"] = {"Attachment": [inline]}
    with pytest.raises(DocumentRejected) as refused:
        json_to_xml(document)
    (problem,) = refused.value.problems
    assert (problem.code, problem.path) == ("JSON_UNKNOWN_FIELD", "/body/Response/Attachments")
    assert "POST /api/v1/attachments" in problem.remedy_ru


def test_every_file_name_a_body_can_carry_is_checked() -> None:
    """A body element typed as a file name (c:FileName, c:FileNames) that RULE_FILE_NOT_LISTED
    does not look at would let a document name a file that never travels."""
    from lxml import etree

    from gateway.rules.content import FILE_REFERENCES
    from gateway.schemas import SCHEMA_DIR

    xs = "{http://www.w3.org/2001/XMLSchema}"
    typed = {
        (profile, element.get("name"))
        for profile in ("cis-enforcement", "ru-kz-supreme-courts")
        for element in etree.parse(str(SCHEMA_DIR / f"{profile}.xsd")).iter(f"{xs}element")
        if element.get("type") in ("c:FileName", "c:FileNames")
    }
    checked = {etree.QName(step).localname for path in FILE_REFERENCES for step in path.split("/")}
    assert typed and {name for _, name in typed} <= checked, typed

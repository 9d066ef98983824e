"""The new request form held to the schema: every field fills an element the XSD has, every
choice is one of its codes, a filled form builds a document the XSD accepts, and the node's
problems land at the field that made them. (The form served and sent, on real nodes:
tests/integration/test_console_new_request.py.)"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.model.problems import Problem
from gateway.model.profiles import PROFILES
from gateway.web.console.actions import Upload
from gateway.web.console.request_form import (
    FIELDS,
    Recipient,
    build_request,
    element_path,
    problems_by_field,
    read_request_form,
)
from gateway.xml.convert import json_to_xml
from gateway.xml.schemas import PREFIXES, default_registry
from gateway.xml.validate import validate
from tests.integration.test_console_new_request import CIS_REQUEST

NAMESPACE = {"cis-enforcement": PREFIXES["cis"], "ru-kz-supreme-courts": PREFIXES["sc"]}
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
SC_REQUEST = {
    "Recipient": "RU-VS",
    "Urgent": "no",
    "Confidential": "yes",
    "RequestingParty": "Верховный Суд Республики Казахстан",
    "Topic": "statistics",
    "Basis": "Статья 3 Соглашения.",
    "Purpose": "Сравнительный анализ.",
    "Content": "Просим предоставить статистику рассмотрения дел за 2025 год.",
    "ExpectedBy": "2027-01-29",
    "SignedBy-Name": "Образцова А. С.",
    "SignedBy-Position": "Руководитель отдела",
    "ConfirmsOralRequest-MadeOn": "2026-12-01",
    "ConfirmsOralRequest-Means": "telephone",
    "ConfirmsOralRequest-MadeTo": "Управление международного сотрудничества, дежурный",
    "ConfirmsOralRequest-ConfirmationAskedOn": "2026-12-02",
}
RECIPIENT = {
    "cis-enforcement": Recipient("RU-FSSP", "Федеральная служба судебных приставов"),
    "ru-kz-supreme-courts": Recipient("RU-VS", "Верховный Суд Российской Федерации"),
}


def _element(agreement: str, path: str) -> Any:
    """The XSD element at ``path`` below the agreement's ``Request``, or None."""
    element = default_registry().xmlschema.maps.elements[f"{{{NAMESPACE[agreement]}}}Request"]
    for step in path.split("/"):
        children = (
            element.type.content.iter_elements() if element.type.has_complex_content() else ()
        )
        element = next((c for c in children if c.local_name == step), None)
        if element is None:
            return None
    return element


@pytest.mark.parametrize("agreement", list(PROFILES))
def test_every_field_fills_an_element_of_the_schema_and_offers_its_codes(agreement: str) -> None:
    coded = []
    for field in FIELDS[agreement]:
        path = element_path(field.name)
        if path is None:
            continue
        element = _element(agreement, path)
        assert element is not None, f"{field.name}: no element {path} in the {agreement} XSD"
        enumeration = getattr(element.type, "enumeration", None)
        if field.choices and enumeration:
            assert {code for code, _ in field.choices} <= set(enumeration), field.name
            coded.append(field.name)
    assert (
        coded
        == {
            "cis-enforcement": [
                "EnforcementDocument-Issuer-Kind",
                "Assets-Kind",
                "Explanations-Party",
            ],
            "ru-kz-supreme-courts": ["Topic", "ConfirmsOralRequest-Means"],
        }[agreement]
    )


@pytest.mark.parametrize(
    ("agreement", "posted"),
    [("cis-enforcement", CIS_REQUEST), ("ru-kz-supreme-courts", SC_REQUEST)],
)
def test_a_filled_form_builds_a_request_the_schema_accepts(
    agreement: str, posted: dict[str, Any]
) -> None:
    posted = {k: ",".join(v) if isinstance(v, list) else v for k, v in posted.items()}
    form = read_request_form(agreement, posted, [RECIPIENT[agreement]])
    assert form.errors == {}
    document = build_request(
        agreement, form, sender="KZ-MJ", recipient=RECIPIENT[agreement], now=NOW
    )
    assert validate(json_to_xml(document)) == ()
    request = document["body"]["Request"]
    requested = request.get("RequestedAuthority") or request.get("RequestedParty")
    assert requested == RECIPIENT[agreement].name  # left empty: the directory's name
    if "ConfirmsOralRequest-Means" in posted:  # SC Art. 5.1 para. 2, after Documents' place
        assert request["ConfirmsOralRequest"]["MadeOn"] == "2026-12-01"


def test_problems_land_at_the_field_that_made_them() -> None:
    paths = {
        "/Envelope/Body/Request/Debtor/Individual/Surname": "Debtor-Individual-Surname",
        "/Envelope/Body/Request/Subjects/Subject[3]/EmploymentAndIncome/Period": (
            "EmploymentAndIncome-Period-From"
        ),
        "/Envelope/Body/Request/Subjects/Subject[1]/Assets/Kind[2]": "Assets-Kind",
        "/Envelope/Body/Request/Subjects/Subject[2]/Location/Property[1]/Identifier": (
            "Location-Property"
        ),
        "/Envelope/Body/Request/Subjects": "section-subjects",
        "/Envelope/Header/Confidential": "Confidential",
        "/Envelope/Header/InReplyTo": "",
    }
    problems = [Problem(f"C{n}", path, "р", "e") for n, path in enumerate(paths)]
    by_field = problems_by_field("cis-enforcement", problems, {})
    assert {
        field: path for field, found in by_field.items() for path in [p.path for p in found]
    } == {field: path for path, field in paths.items()}
    header = [Problem("D", "/Envelope/Header/RequestedDeadline", "р", "e")]
    assert list(problems_by_field("ru-kz-supreme-courts", header, {})) == ["ExpectedBy"]
    # SC Art. 5.1: Documents/Document[n] is the n-th file sent, its Translation that slot's.
    sent = {"Attachment": Upload("a.pdf", "1"), "Attachment3": Upload("c-kk.pdf", "3")}
    documents = [
        Problem("E", "/Envelope/Body/Request/Documents/Document[2]/Original", "р", "e"),
        Problem("F", "/Envelope/Body/Request/Documents/Document[2]/Translation", "р", "e"),
    ]
    assert {
        name: [p.code for p in found]
        for name, found in problems_by_field("ru-kz-supreme-courts", documents, sent).items()
    } == {"Attachment3": ["E"], "Translation3": ["F"]}


def test_each_property_is_sent_with_the_data_that_identify_it() -> None:
    """CIS Art. 8 para. 2: a property-location request names the property "including the data
    that identify it": after its description, `;`-separated `kind: value` pairs become the
    schema's ``Identifier`` elements (a Russian cadastral number with its colons among them),
    and the content rule finds the property identified."""
    from gateway.rules.content import check_property_identified

    posted = {k: ",".join(v) if isinstance(v, list) else v for k, v in CIS_REQUEST.items()}
    posted["Location-Property"] = (
        "Автомобиль Toyota Camry 2018 г.; VIN: JTNB11HK103456789; госномер: 123ABC02\n"
        "; кадастровый номер: 77:01:0001001:1234\n"
        "Доля в уставном капитале ТОО «Ромашка»"
    )
    agreement = "cis-enforcement"
    form = read_request_form(agreement, posted, [RECIPIENT[agreement]])
    assert form.errors == {}
    document = build_request(
        agreement, form, sender="KZ-MJ", recipient=RECIPIENT[agreement], now=NOW
    )
    (location,) = [
        s["Location"] for s in document["body"]["Request"]["Subjects"]["Subject"] if "Location" in s
    ]
    assert location["Target"] == "property"
    assert location["Property"] == [
        {
            "Description": "Автомобиль Toyota Camry 2018 г.",
            "Identifier": [
                {"Kind": "VIN", "Value": "JTNB11HK103456789"},
                {"Kind": "госномер", "Value": "123ABC02"},
            ],
        },
        {"Identifier": [{"Kind": "кадастровый номер", "Value": "77:01:0001001:1234"}]},
        {"Description": "Доля в уставном капитале ТОО «Ромашка»"},
    ]
    assert validate(json_to_xml(document)) == ()
    assert (
        check_property_identified(
            json_to_xml(document).find(".//{*}Request")  # type: ignore[arg-type]
        )
        == []
    )


def test_a_property_line_that_is_not_description_then_identifiers_is_named() -> None:
    posted = {k: ",".join(v) if isinstance(v, list) else v for k, v in CIS_REQUEST.items()}
    agreement = "cis-enforcement"
    too_many = "; ".join(f"номер {n}: A{n}" for n in range(11))
    posted["Location-Property"] = f"Квартира; ул. Ленина, д. 1\nГараж; {too_many}"
    form = read_request_form(agreement, posted, [RECIPIENT[agreement]])
    assert form.errors["Location-Property"] == (
        "Строка 1: «ул. Ленина, д. 1» — после «;» пишутся данные вида «вид: значение» (например "
        "«VIN: JTNB11HK103456789»); точку с запятой в описании замените запятой.",
        "Строка 2: не больше 10 идентифицирующих данных на одно имущество.",
    )


def test_the_form_s_identifier_limit_is_the_schema_s() -> None:
    """The form's own message for too many identifiers uses the XSD's maxOccurs, not a copy
    that could drift from it."""
    from gateway.web.console.request_form import MAX_PROPERTY_IDENTIFIERS

    identification = default_registry().xmlschema.maps.types[
        f"{{{PREFIXES['cis']}}}PropertyIdentification"
    ]
    limits = {e.local_name: e.max_occurs for e in identification.content.iter_elements()}
    assert limits["Identifier"] == MAX_PROPERTY_IDENTIFIERS

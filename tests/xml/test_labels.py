"""The labelled model of documents (gateway/xml/labels.py): every element and enumeration of the
schemas has Russian words, and leaf types come from the XSD, not from element names."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.model.zones import zone_label
from gateway.schemas import SCHEMA_DIR
from gateway.xml.labels import (
    CODES_RU,
    LABELS_RU,
    FieldType,
    child_declaration,
    field_type,
    format_value,
    kind_declaration,
    label_for,
)

DOCUMENT_SCHEMAS = ("envelope", "common", "cis-enforcement", "ru-kz-supreme-courts")


def _schema_text() -> str:
    return "".join((SCHEMA_DIR / f"{name}.xsd").read_text("utf-8") for name in DOCUMENT_SCHEMAS)


def test_every_element_of_the_schemas_has_a_russian_label() -> None:
    names = set(re.findall(r'<xs:(?:element|attribute) name="(\w+)"', _schema_text()))
    unlabelled = sorted(n for n in names if label_for(n) == n)
    assert names and unlabelled == []
    latin = {n for n in names & set(LABELS_RU) if not re.search("[а-яА-ЯЁё]", LABELS_RU[n])}
    assert latin == {"Vin", "Sha256"}  # VIN and SHA-256 are read as they are written


def test_every_enumeration_of_the_schemas_has_a_russian_name() -> None:
    codes = set(re.findall(r'<xs:enumeration value="([^"]+)"', _schema_text()))
    assert codes and sorted(codes - set(CODES_RU)) == []


def _at(agreement: str, kind: str, *path: str):
    decl = kind_declaration(agreement, kind)
    for name in path:
        decl = child_declaration(decl, name)
    assert decl is not None, path
    return decl


@pytest.mark.parametrize(
    ("agreement", "kind", "path", "expected"),
    [
        ("cis-enforcement", "Request", ("Content",), FieldType.TEXT),
        ("ru-kz-supreme-courts", "Request", ("Content",), FieldType.TEXT),
        (
            "cis-enforcement",
            "Response",
            ("Results", "Result", "EmploymentAndIncome", "Income", "Amount", "Amount"),
            FieldType.NUMBER,
        ),
        ("ru-kz-supreme-courts", "Request", ("Documents", "Document", "Original"), FieldType.TEXT),
        ("cis-enforcement", "Request", ("Proceeding", "Opened"), FieldType.DATE),
        ("cis-enforcement", "Request", ("EnforcementDocument", "Issuer", "Kind"), FieldType.CODE),
        (
            "cis-enforcement",
            "Request",
            ("Subjects", "Subject", "Documents", "From"),
            FieldType.TEXT,
        ),
    ],
)
def test_types_come_from_the_schema(
    agreement: str, kind: str, path: tuple[str, ...], expected: FieldType
) -> None:
    assert field_type(_at(agreement, kind, *path)) is expected


def test_labels_by_context() -> None:
    assert label_for("Name", "Individual") == "Имя"
    assert label_for("Name", "Issuer") == "Наименование"
    assert label_for("Name", "SignedBy") == "Ф. И. О."
    assert label_for("From", "Documents") != "С"
    assert label_for("Content", "Request") == "Содержание запроса"


def test_values_read_in_russian() -> None:
    assert format_value("2026-03-16", FieldType.DATE) == "16.03.2026"
    assert format_value("court", FieldType.CODE) == "суд"
    assert format_value("court", FieldType.CODE, with_code=True) == "суд (court)"
    assert format_value("kk", FieldType.LANGUAGE) == "казахский"
    assert format_value(False, FieldType.BOOLEAN) == "нет"
    moscow = format_value(
        "2026-11-23T05:19:00Z",
        FieldType.DATETIME,
        timezone=ZoneInfo("Europe/Moscow"),
        zone_name="Москва",
    )
    assert moscow == "23.11.2026 08:19:00 (Москва, UTC+3)"
    # Text typed as text stays as sent, even when it looks like a code.
    assert format_value("court", FieldType.TEXT) == "court"


def test_zone_label_names_the_offset_in_force() -> None:
    almaty = datetime(2026, 12, 5, 8, 19, tzinfo=UTC).astimezone(ZoneInfo("Asia/Almaty"))
    assert zone_label("Алматы", almaty) == "Алматы, UTC+5"
    assert zone_label("UTC", datetime(2026, 12, 5, tzinfo=UTC)) == "UTC"

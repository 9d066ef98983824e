"""Schema validation with reasons a person can act on.

libxml2 decides (fast); only when it says "invalid" does xmlschema walk the tree again to name
each problem: a stable ``SCHEMA_*`` code, the path of the field without namespaces, a Russian
message for the operator and what to do. Messages never repeat the offending value: a
confidential document's content must not leak into logs through its errors (DESIGN.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from gateway.model.problems import Problem
from gateway.model.profiles import ENVELOPE_NAMESPACE
from gateway.xml.paths import element_path
from gateway.xml.schemas import SchemaRegistry, default_registry

if TYPE_CHECKING:
    import xmlschema

ENVELOPE_TAG = f"{{{ENVELOPE_NAMESPACE}}}Envelope"

MAX_REPORTED_PROBLEMS = 20
"""A broken document can produce thousands of errors; the first twenty say what is wrong and
keep a rejection small."""

SCHEMA_CODES: dict[str, str] = {
    "SCHEMA_ROOT": "Корневой элемент должен быть env:Envelope.",
    "SCHEMA_MISSING_ELEMENT": "Не хватает обязательного элемента.",
    "SCHEMA_UNEXPECTED_ELEMENT": (
        "Элемент здесь не предусмотрен схемой (или стоит не на своём месте)."
    ),
    "SCHEMA_MISSING_ATTRIBUTE": "Не хватает обязательного атрибута.",
    "SCHEMA_UNEXPECTED_ATTRIBUTE": "Атрибут не предусмотрен схемой.",
    "SCHEMA_PATTERN": "Значение не соответствует формату поля.",
    "SCHEMA_ENUMERATION": "Значение не из списка допустимых.",
    "SCHEMA_LENGTH": "Длина значения вне допустимых пределов.",
    "SCHEMA_RANGE": "Значение вне допустимого диапазона.",
    "SCHEMA_TYPE": "Значение не является значением нужного типа (дата, число, логическое…).",
    "SCHEMA_DUPLICATE": "Значение повторяется, хотя должно быть уникальным.",
    "SCHEMA_TYPE_SUBSTITUTION": "Подмена типа элемента через xsi:type запрещена.",
    "SCHEMA_INVALID": "Документ не соответствует схеме.",
}
"""Every code :func:`validate` can produce, with its Russian meaning (docs/documents.md)."""

FORMATS_RU: dict[str, str] = {
    "BodyId": "идентификатор органа: код государства, дефис, имя (RU-FSSP)",
    "Uuid": "UUID строчными буквами (0b0e7a8c-1f6e-4c8f-9a55-3f0e1c2d4b61)",
    "DateTimeWithZone": "дата и время с часовым поясом (2026-11-23T10:00:00+03:00 или …Z)",
    "Date": "дата ГГГГ-ММ-ДД без часового пояса",
    "Line": "одна непустая строка без пробелов в начале и в конце и без двойных пробелов",
    "ShortLine": "одна непустая строка без пробелов в начале и в конце и без двойных пробелов",
    "FileName": 'имя файла без папок и без символов / \\ : * ? " < > |',
    "Text": "непустой текст",
    "LongText": "непустой текст",
    "Code": "код из заглавных латинских букв, цифр и _ (SCHEMA_PATTERN)",
    "Sha256": "64 шестнадцатеричные цифры строчными буквами",
    "MediaType": "тип содержимого строчными буквами (application/pdf)",
    "LanguageCode": "код языка ISO 639 строчными буквами (ru)",
    "IdentifierValue": "номер: буквы, цифры, пробел, - / . : №; до 64 знаков",
    "Amount": "сумма с двумя знаками после точки (1250.00)",
    "CurrencyCode": "код валюты ISO 4217 (RUB, KZT)",
    "KindName": "имя вида сообщения латиницей (Request)",
}
"""Human descriptions of the patterned types, by local type name, for SCHEMA_PATTERN."""

_FACET_CODES = {
    "XsdPatternFacets": "SCHEMA_PATTERN",
    "XsdEnumerationFacets": "SCHEMA_ENUMERATION",
    "XsdLengthFacet": "SCHEMA_LENGTH",
    "XsdMinLengthFacet": "SCHEMA_LENGTH",
    "XsdMaxLengthFacet": "SCHEMA_LENGTH",
    "XsdMinInclusiveFacet": "SCHEMA_RANGE",
    "XsdMaxInclusiveFacet": "SCHEMA_RANGE",
    "XsdMinExclusiveFacet": "SCHEMA_RANGE",
    "XsdMaxExclusiveFacet": "SCHEMA_RANGE",
    "XsdTotalDigitsFacet": "SCHEMA_RANGE",
    "XsdFractionDigitsFacet": "SCHEMA_RANGE",
    "XsdUnique": "SCHEMA_DUPLICATE",
    "XsdKey": "SCHEMA_DUPLICATE",
    "XsdAnyElement": "SCHEMA_UNEXPECTED_ELEMENT",
    "XMLSchema10": "SCHEMA_ROOT",
}


def validate(root: etree._Element, registry: SchemaRegistry | None = None) -> tuple[Problem, ...]:
    """Check a parsed envelope against ``gateway/schemas/envelope.xsd``; empty when it is valid."""
    registry = registry or default_registry(explain=False)
    if root.tag != ENVELOPE_TAG:
        # Any global element is a valid root to XSD 1.0 (a bare cis:Request would pass
        # xmllint); only an envelope is a document of the exchange.
        return (
            Problem(
                code="SCHEMA_ROOT",
                path=element_path(root),
                message_ru=SCHEMA_CODES["SCHEMA_ROOT"],
                message_en=f"root element is {root.tag}, not {ENVELOPE_TAG}",
                remedy_ru="Передайте документ в конверте env:Envelope (docs/architecture.md).",
            ),
        )
    if registry.is_valid(root):
        return ()
    import xmlschema  # only an invalid document needs explaining

    problems: list[Problem] = []
    resource = xmlschema.XMLResource(root, allow="none")
    for error in registry.xmlschema.iter_errors(resource, use_location_hints=False):
        problems.append(_problem(error))
        if len(problems) >= MAX_REPORTED_PROBLEMS:
            break
    if not problems:
        # libxml2 and xmlschema disagree: libxml2 decides, and its message is all we have.
        details = "; ".join(registry.lxml_errors(root)[:3])
        problems.append(
            Problem(
                code="SCHEMA_INVALID",
                path="/",
                message_ru=f"{SCHEMA_CODES['SCHEMA_INVALID']} ({details})",
                message_en=f"not valid against envelope.xsd: {details}",
                remedy_ru="Проверьте документ командой "
                "xmllint --schema gateway/schemas/envelope.xsd.",
            )
        )
    return tuple(problems)


def _local(tag: str | None) -> str:
    if not tag:
        return ""
    return tag.rpartition("}")[2]


def _path(error: xmlschema.XMLSchemaValidationError) -> str:
    elem = error.elem
    if isinstance(elem, etree._Element):
        return element_path(elem)
    return str(error.path or "/")


def _problem(error: xmlschema.XMLSchemaValidationError) -> Problem:
    import xmlschema

    path = _path(error)
    validator = type(error.validator).__name__
    reason = str(error.reason or "")
    detail_ru = ""
    if isinstance(error, xmlschema.XMLSchemaChildrenValidationError):
        if error.invalid_tag is None:
            code = "SCHEMA_MISSING_ELEMENT"
            expected = [_local(getattr(e, "name", None)) for e in (error.expected or [])]
            names = ", ".join(n for n in expected if n)
            detail_ru = f" Ожидается: {names}." if names else ""
            remedy = "Добавьте недостающий элемент."
        else:
            code = "SCHEMA_UNEXPECTED_ELEMENT"
            path = f"{path}/{_local(error.invalid_tag)}"
            expected = [_local(getattr(e, "name", None)) for e in (error.expected or [])]
            names = ", ".join(n for n in expected if n)
            detail_ru = f" Здесь ожидается: {names}." if names else ""
            remedy = "Удалите элемент или поставьте его на место, указанное схемой."
        en = reason
    elif validator == "XsdAttributeGroup":
        if "missing" in reason:
            code, remedy = "SCHEMA_MISSING_ATTRIBUTE", "Добавьте атрибут."
        else:
            code, remedy = "SCHEMA_UNEXPECTED_ATTRIBUTE", "Удалите атрибут."
        en = reason
    elif reason.endswith("is blocked"):
        # blockDefault="#all" in our XSDs: xsi:type must not widen what a field may hold.
        code, en = "SCHEMA_TYPE_SUBSTITUTION", "xsi:type substitution is blocked"
        remedy = "Удалите атрибут xsi:type."
    elif reason.startswith("duplicated value"):
        code, en = "SCHEMA_DUPLICATE", "duplicated value where the schema requires unique ones"
        remedy = "Удалите повтор."
    elif validator in _FACET_CODES:
        code = _FACET_CODES[validator]
        en = _facet_text(error)
        remedy = "Исправьте значение по описанию поля в схеме."
        if code == "SCHEMA_PATTERN":
            type_name = _local(getattr(getattr(error.validator, "parent", None), "name", None))
            if type_name in FORMATS_RU:
                detail_ru = f" Ожидается: {FORMATS_RU[type_name]}."
        elif code == "SCHEMA_ENUMERATION":
            values = getattr(error.validator, "enumeration", None) or []
            detail_ru = f" Допустимо: {', '.join(map(str, values))}."
        elif code == "SCHEMA_ROOT":
            remedy = "Передайте документ в конверте env:Envelope."
    elif isinstance(error, xmlschema.XMLSchemaDecodeError):
        code = "SCHEMA_TYPE"
        type_name = _local(getattr(error.validator, "name", None)) or "?"
        detail_ru = f" Ожидается тип xs:{type_name}."
        en = f"value is not a valid xs:{type_name}"
        remedy = "Запишите значение в формате XML Schema (даты: ГГГГ-ММ-ДД)."
    else:
        code = "SCHEMA_INVALID"
        en = reason
        remedy = "Исправьте документ по схеме."
    return Problem(
        code=code,
        path=path,
        message_ru=f"{SCHEMA_CODES[code]}{detail_ru}",
        message_en=f"{path}: {en}",
        remedy_ru=remedy,
    )


def _facet_text(error: xmlschema.XMLSchemaValidationError) -> str:
    # The facets' own reasons name the constraint but not the value, except enumerations of
    # attributes ("attribute Id='x': …"); drop anything before the colon to be safe.
    reason = str(error.reason or "")
    return reason.split(": ", 1)[1] if reason.startswith("attribute ") else reason

"""JSON ⇄ XML conversion, driven by the XSD.

JSON → XML: :func:`json_to_xml` builds the tree with lxml from a plan compiled once from the
schema (gateway.xml.builder); xmlschema's encoder (:func:`json_to_xml_reference`) defines the
result and reports the problems of input the plan refuses. XML → JSON: xmlschema.

The JSON shape (what a body's case system sends to its local node; docs/documents.md)::

    {
      "header": {"MessageId": "…", "ConversationId": "…", "Agreement": "cis-enforcement",
                 "Kind": "Request", …},
      "body": {"Request": {…}}
    }

* keys are the XSD element names without namespaces; the namespace of each element is
  restored from the schema (the body's from the header's ``Agreement``);
* an element that may repeat (``maxOccurs`` > 1) is always a list, even with one item;
* ``xs:boolean`` → true/false, ``xs:long`` → number, everything else (dates, amounts,
  identifiers, base64) → string, exactly as written in XML;
* an empty element (a complex type whose children are all absent) → ``null``;
* the ``Id`` attributes of ``Header`` and ``Body`` and the ``Signatures`` are not part of the
  JSON: conversion is for unsigned documents; signing adds the signatures afterwards.

Round trips are exact: XML → JSON → XML gives the same canonical XML, and JSON → XML → JSON
gives equal JSON, for every document the schema accepts in canonical form (booleans written
``true``/``false``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import xmlschema
from lxml import etree
from xmlschema.validators import XsdComplexType, XsdElement, XsdGroup

from gateway.model.problems import DocumentRejected, Problem
from gateway.model.profiles import ENVELOPE_NAMESPACE, PROFILES
from gateway.xml.builder import build
from gateway.xml.schemas import PREFIXES, PROFILE_PREFIX, SchemaRegistry, default_registry

JsonDocument = dict[str, Any]

_ENV = f"{{{ENVELOPE_NAMESPACE}}}"


def xml_to_json(root: etree._Element, registry: SchemaRegistry | None = None) -> JsonDocument:
    """The JSON form of a schema-valid envelope (signatures, if any, are left out).

    Validate first (:func:`gateway.xml.validate.validate`): an invalid tree raises
    ``DocumentRejected`` with ``SCHEMA_INVALID``.
    """
    registry = registry or default_registry()
    unsigned = copy.deepcopy(root)
    for signatures in unsigned.findall(f"{_ENV}Signatures"):
        unsigned.remove(signatures)
    try:
        decoded = registry.xmlschema.to_dict(
            xmlschema.XMLResource(unsigned, allow="none"),
            strip_namespaces=True,
            decimal_type=str,
            validation="strict",
            use_location_hints=False,  # never load a schema the document points to
        )
    except xmlschema.XMLSchemaValidationError as error:
        raise DocumentRejected(
            [
                Problem(
                    code="SCHEMA_INVALID",
                    path=str(error.path or "/"),
                    message_ru="Документ не соответствует схеме; преобразование в JSON невозможно.",
                    # No reason text: it may quote a (confidential) value.
                    message_en="not schema-valid, cannot convert; run validate for details",
                    remedy_ru="Проверьте документ командой gateway validate.",
                )
            ]
        ) from None
    # Strict validation raised on any error, so to_dict returned the decoded mapping alone.
    assert isinstance(decoded, dict)
    header = {k: v for k, v in decoded["Header"].items() if not k.startswith("@")}
    body = {k: v for k, v in decoded["Body"].items() if not k.startswith("@")}
    return {"header": header, "body": body}


def json_to_xml(
    document: Mapping[str, Any], registry: SchemaRegistry | None = None
) -> etree._Element:
    """Build the envelope element from its JSON form.

    Raises ``DocumentRejected`` with ``JSON_*`` problems when the JSON does not have the shape
    (unknown agreement, kind or field; see docs/documents.md). The result is not yet
    schema-validated: run :func:`gateway.xml.validate.validate` on it.

    The tree is built with lxml from the plan compiled once from the XSD
    (:mod:`gateway.xml.builder`, ~50× faster than xmlschema's encoder); input the plan cannot
    map with certainty goes to :func:`json_to_xml_reference`, which builds it or names the
    problems. Both give the same bytes for every document the plan builds.
    """
    registry = registry or default_registry()
    root = build(registry.document_plan, document)
    return root if root is not None else json_to_xml_reference(document, registry)


def json_to_xml_reference(
    document: Mapping[str, Any], registry: SchemaRegistry | None = None
) -> etree._Element:
    """:func:`json_to_xml` by xmlschema's encoder: the definition of the conversion.

    Slow (pure Python, ~4.5 ms for 10 KB). :func:`json_to_xml` calls it for input its fast
    builder refuses, so that every problem is reported with its path; tests compare the two.
    """
    registry = registry or default_registry()
    problems: list[Problem] = []
    header, body, agreement, kind = _split(document, problems)
    if problems:
        raise DocumentRejected(problems)
    profile = PROFILES[agreement]
    kind_element = registry.kind_element(profile, kind)
    if kind_element is None:
        raise DocumentRejected(
            [
                _json_problem(
                    "JSON_UNKNOWN_KIND",
                    f"/body/{kind}",
                    f"«{kind}» не является видом сообщения соглашения {agreement}; "
                    f"допустимы: {', '.join(profile.kinds)}.",
                    f"{kind!r} is not a message kind of {agreement}",
                    "Укажите вид сообщения из перечня соглашения.",
                )
            ]
        )
    envelope = registry.envelope_element()
    header_element = _child(envelope, "Header")
    data = {
        f"{_ENV}Header": {"@Id": "header", **_qualify(header, header_element, "/header", problems)},
        f"{_ENV}Body": {
            "@Id": "body",
            kind_element.name: _qualify(body[kind], kind_element, f"/body/{kind}", problems),
        },
    }
    if problems:
        raise DocumentRejected(problems)
    encoded = registry.xmlschema.encode(
        data, path=envelope.name, validation="lax", decimal_type=str
    )
    # A lax encoding returns (tree, errors). Its errors are reported by validating the result,
    # with paths into the XML.
    assert isinstance(encoded, tuple)
    encoded = encoded[0]
    return _with_prefixes(encoded, PROFILE_PREFIX[agreement])


def to_bytes(root: etree._Element, *, pretty: bool = False) -> bytes:
    """Serialise with an XML declaration, UTF-8. Never pretty-print a signed document."""
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=pretty)
    return data


def canonical(root: etree._Element) -> bytes:
    """Exclusive C14N of a tree, ignoring whitespace between elements: for comparing."""
    stripped = copy.deepcopy(root)
    for node in stripped.iter():
        if len(node) and node.text is not None and not node.text.strip():
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None
    data: bytes = etree.tostring(stripped, method="c14n", exclusive=True)
    return data


def _split(
    document: Mapping[str, Any], problems: list[Problem]
) -> tuple[dict[str, Any], dict[str, Any], str, str]:
    if not isinstance(document, Mapping) or set(document) != {"header", "body"}:
        problems.append(
            _json_problem(
                "JSON_SHAPE",
                "/",
                "Документ JSON должен быть объектом ровно с двумя полями: header и body.",
                "the JSON document must be an object with exactly 'header' and 'body'",
                "См. docs/documents.md, раздел «JSON».",
            )
        )
        return {}, {}, "", ""
    header, body = document["header"], document["body"]
    if not isinstance(header, Mapping):
        problems.append(
            _json_problem(
                "JSON_SHAPE",
                "/header",
                "Поле header должно быть объектом.",
                "'header' must be an object",
                "См. docs/documents.md.",
            )
        )
        return {}, {}, "", ""
    if not isinstance(body, Mapping) or len(body) != 1:
        problems.append(
            _json_problem(
                "JSON_SHAPE",
                "/body",
                "Поле body должно быть объектом ровно с одним полем — видом сообщения.",
                "'body' must be an object with exactly one key, the message kind",
                'Например: "body": {"Request": {…}}.',
            )
        )
        return {}, {}, "", ""
    agreement = header.get("Agreement")
    if agreement not in PROFILES:
        problems.append(
            _json_problem(
                "JSON_UNKNOWN_AGREEMENT",
                "/header/Agreement",
                f"Неизвестное соглашение {agreement!r}; допустимы: {', '.join(PROFILES)}.",
                f"unknown agreement {agreement!r}",
                "Укажите cis-enforcement или ru-kz-supreme-courts.",
            )
        )
        return {}, {}, "", ""
    (kind,) = body
    return dict(header), dict(body), str(agreement), str(kind)


def _child(element: XsdElement, name: str) -> XsdElement:
    for child in _element_children(element):
        if child.local_name == name:
            return child
    raise KeyError(name)


def _element_children(element: XsdElement) -> list[XsdElement]:
    """The child elements a complex type's content declares (none for a simple type)."""
    xsd_type = element.type
    if not isinstance(xsd_type, XsdComplexType) or not isinstance(xsd_type.content, XsdGroup):
        return []
    return [c for c in xsd_type.content.iter_elements() if isinstance(c, XsdElement)]


def _qualify(value: Any, element: XsdElement, path: str, problems: list[Problem]) -> Any:
    """Give every key of ``value`` its element's namespace, as the schema declares it."""
    if isinstance(value, list):
        return [
            _qualify(item, element, f"{path}[{i + 1}]", problems) for i, item in enumerate(value)
        ]
    xsd_type = element.type
    if not isinstance(value, Mapping):
        if value is not None or xsd_type.is_simple():
            _check_json_type(value, xsd_type, path, problems)
        return value
    if not isinstance(xsd_type, XsdComplexType) or not isinstance(xsd_type.content, XsdGroup):
        problems.append(
            _json_problem(
                "JSON_EXPECTED_VALUE",
                path,
                "Здесь ожидается значение (строка, число или true/false), а не объект.",
                "a value is expected here, not an object",
                "Замените объект значением.",
            )
        )
        return None
    children = {child.local_name: child for child in _element_children(element)}
    qualified: dict[str, Any] = {}
    for key, item in value.items():
        child = children.get(key)
        if child is None:
            problems.append(
                _json_problem(
                    "JSON_UNKNOWN_FIELD",
                    f"{path}/{key}",
                    f"Поле «{key}» не предусмотрено схемой; допустимы: {', '.join(children)}.",
                    f"field {key!r} is not in the schema here",
                    _FILES_BESIDE
                    if key == "Attachments"
                    else "Удалите поле или исправьте его имя (регистр букв важен).",
                )
            )
            continue
        qualified[child.name] = _qualify(item, child, f"{path}/{key}", problems)
    return qualified


_FILES_BESIDE = (
    "Файлы не передаются внутри документа: загрузите каждый (POST /api/v1/attachments) и "
    "перечислите их в поле attachments рядом с header и body (docs/attachments.md)."
)
"""What a case system that still puts files in the body is told (the first wave's inline
attachments are gone from the schema)."""

_XS = "{http://www.w3.org/2001/XMLSchema}"


def _check_json_type(value: Any, xsd_type: Any, path: str, problems: list[Problem]) -> None:
    """Booleans as true/false, integers as numbers, everything else as strings: the one JSON
    form of each value, so that JSON → XML → JSON gives back what was sent."""
    if not xsd_type.is_simple():
        if not xsd_type.has_simple_content():
            return
        xsd_type = xsd_type.content
    maps = xsd_type.maps
    if xsd_type.is_derived(maps.types[f"{_XS}boolean"]):
        expected, json_type, ok = "true/false", "boolean", isinstance(value, bool)
    elif xsd_type.is_derived(maps.types[f"{_XS}integer"]):
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected, json_type = "число", "number"
    else:
        expected, json_type, ok = "строка", "string", isinstance(value, str)
    if not ok:
        problems.append(
            _json_problem(
                "JSON_TYPE",
                path,
                f"Здесь ожидается значение типа «{expected}».",
                f"expected a JSON {json_type} here",
                "Запишите значение в указанном виде (даты и суммы — строками).",
            )
        )


def _with_prefixes(encoded: Any, profile_prefix: str) -> etree._Element:
    """Rebuild the encoded tree as lxml, with our prefixes declared once on the root."""
    nsmap = {p: PREFIXES[p] for p in ("env", "c", profile_prefix)}
    root = etree.Element(encoded.tag, dict(encoded.attrib), nsmap=nsmap)
    _copy_children(encoded, root)
    return root


def _copy_children(source: Any, target: etree._Element) -> None:
    # Our schemas have no mixed content: text belongs to leaves only; xmlschema's indentation
    # between elements is dropped so that the output is canonical.
    if len(source) == 0:
        target.text = source.text
    for child in source:
        node = etree.SubElement(target, child.tag, dict(child.attrib))
        _copy_children(child, node)


def _json_problem(code: str, path: str, ru: str, en: str, remedy: str) -> Problem:
    return Problem(code=code, path=path, message_ru=ru, message_en=en, remedy_ru=remedy)

"""Documents on their own, before any node sees them: check one (hardened parse, schema, the
agreements' content rules) or convert a JSON document to the XML envelope and check it
(``gateway validate``, ``gateway convert``; docs/documents.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from gateway.model.envelope import Header
from gateway.model.problems import DocumentRejected, Problem
from gateway.model.profiles import PROFILES
from gateway.rules.content import check_content
from gateway.xml.convert import json_to_xml, to_bytes
from gateway.xml.header import read_header
from gateway.xml.parsing import parse_untrusted
from gateway.xml.validate import validate


@dataclass(frozen=True, slots=True)
class DocumentCheck:
    """Outcome of checking one document: schema first, then the content rules."""

    problems: tuple[Problem, ...]
    header: Header | None = None
    """Read only when the document passed the schema."""

    @property
    def valid(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def check_tree(root: etree._Element) -> DocumentCheck:
    """Schema, then (if the schema passes) the content rules."""
    problems = validate(root)
    if problems:
        return DocumentCheck(problems)
    header = read_header(root)
    return DocumentCheck(check_content(root, header), header)


def check_bytes(data: bytes) -> DocumentCheck:
    """Parse (hardened), then :func:`check_tree`."""
    try:
        root = parse_untrusted(data)
    except DocumentRejected as rejected:
        return DocumentCheck(rejected.problems)
    return check_tree(root)


@dataclass(frozen=True, slots=True)
class Conversion:
    """A JSON document converted: the XML (pretty-printed) when it is valid, else the problems."""

    problems: tuple[Problem, ...]
    xml: bytes | None = None


def convert(kind_argument: str, document: Any) -> Conversion:
    """The parsed JSON ``document``, said to be of ``kind_argument``, as a checked XML envelope."""
    mismatch = kind_mismatch(kind_argument, document)
    if mismatch:
        return Conversion((mismatch,))
    try:
        root = json_to_xml(document)
    except DocumentRejected as rejected:
        return Conversion(rejected.problems)
    result = check_tree(root)
    if not result.valid:
        return Conversion(result.problems)
    return Conversion(result.problems, to_bytes(root, pretty=True))


def kind_mismatch(kind_argument: str, document: Any) -> Problem | None:
    """A problem when the JSON document is not of the kind asked for (``Request`` or
    ``cis-enforcement:Request``); None when it is."""
    agreement, _, kind = kind_argument.rpartition(":")
    header = document.get("header") if isinstance(document, dict) else None
    body = document.get("body") if isinstance(document, dict) else None
    header = header if isinstance(header, dict) else {}
    body_kinds = list(body) if isinstance(body, dict) else []
    wrong: list[str] = []
    if agreement and agreement not in PROFILES:
        wrong.append(f"неизвестное соглашение «{agreement}» (допустимы: {', '.join(PROFILES)})")
    if agreement and header.get("Agreement") != agreement:
        wrong.append(f"в header.Agreement указано «{header.get('Agreement')}»")
    if header.get("Kind") != kind:
        wrong.append(f"в header.Kind указано «{header.get('Kind')}»")
    if body_kinds != [kind]:
        wrong.append(f"в body — {', '.join(body_kinds) or 'ничего'}")
    if not wrong:
        return None
    return Problem(
        code="JSON_KIND_MISMATCH",
        path="/header/Kind",
        message_ru=f"Ожидался документ вида «{kind_argument}», но " + "; ".join(wrong) + ".",
        message_en=f"expected kind {kind_argument!r}; the JSON says otherwise",
        remedy_ru="Укажите в команде вид, совпадающий с header.Kind и ключом body.",
    )

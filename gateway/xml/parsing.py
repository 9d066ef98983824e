"""Hardened parsing: the only way XML enters the gateway.

Every document from a peer, a file or the local API is hostile until proven otherwise. It goes
through :func:`parse_untrusted`, which

* refuses anything larger than :data:`MAX_DOCUMENT_BYTES` before parsing a byte;
* accepts UTF-8 only (one encoding: no UTF-16/32 tricks around the byte checks below);
* refuses any DOCTYPE or entity declaration outright (no DTD means no XXE, no billion laughs,
  no external DTD fetch) — checked on the raw bytes and again on the parsed tree;
* parses with lxml set to ``resolve_entities=False, no_network=True, load_dtd=False,
  huge_tree=False`` (FACTS.md: lxml < 6.1 resolved entities in iterparse, CVE-2026-41066);
* streams the document through a pull parser, counting depth and elements, and stops at the
  first limit it crosses, so a hostile document costs at most the bytes read so far;
* refuses processing instructions (nothing in our schemas uses them; ``xml-stylesheet`` and
  friends are instructions to somebody else's software).

A refusal raises :class:`~gateway.model.problems.DocumentRejected` with one ``XML_*`` problem.
"""

from __future__ import annotations

import re

from lxml import etree

from gateway.model.problems import DocumentRejected, Problem

MAX_DOCUMENT_BYTES = 24 * 1024 * 1024
"""24 MiB: a request with two full-size attachments (7,000,000 bytes each, base64 ≈ 9.3 MB) plus
its text. Anything larger is refused before parsing, so memory stays bounded per message."""

MAX_DEPTH = 40
"""Our deepest legitimate path is a XAdES signature inside the envelope, about 12 levels
(Envelope/Signatures/Seal/Signature/Object/QualifyingProperties/SignedProperties/…). 40 leaves
room for growth and stops recursion bombs long before libxml2's own limit of 256."""

MAX_ELEMENTS = 20_000
"""A full answer (100 accounts, 100 incomes, two signatures) has well under 5,000 elements;
20,000 bounds the tree's memory and the validator's work."""

CHUNK_BYTES = 64 * 1024
"""Bytes fed to the pull parser at a time: limits are checked between chunks, so a hostile
document is stopped after at most one chunk past the limit."""

_FORBIDDEN_DECLARATIONS = (b"<!DOCTYPE", b"<!ENTITY")
_FOREIGN_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")
_ENTITY_REFERENCE = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});)")
"""An ``&`` that does not start one of XML's five predefined entities or a character reference.
Without a DTD no other entity can be declared; libxml2's push parser reports such a reference
only as a vague "no element found", so it is caught here with a clear code."""
_DECLARED_ENCODING = re.compile(
    rb"^(?:\xef\xbb\xbf)?<\?xml[^>]{0,200}?encoding=[\"']([A-Za-z0-9._\-]+)"
)


def _rejected(code: str, message_ru: str, message_en: str, remedy_ru: str) -> DocumentRejected:
    return DocumentRejected(
        [
            Problem(
                code=code,
                path="/",
                message_ru=message_ru,
                message_en=message_en,
                remedy_ru=remedy_ru,
            )
        ]
    )


def _parser() -> etree.XMLPullParser:
    return etree.XMLPullParser(
        events=("start", "end", "pi"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        encoding="utf-8",
    )


def parse_untrusted(data: bytes) -> etree._Element:
    """Parse bytes from outside into an lxml element, or raise ``DocumentRejected`` (``XML_*``).

    The result has no DTD, no entities and no processing instructions, and stays within
    :data:`MAX_DOCUMENT_BYTES`, :data:`MAX_DEPTH` and :data:`MAX_ELEMENTS`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"parse_untrusted takes bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _rejected(
            "XML_TOO_LARGE",
            f"Документ больше допустимого размера ({len(data)} байт при пределе "
            f"{MAX_DOCUMENT_BYTES}).",
            f"document of {len(data)} bytes exceeds the limit of {MAX_DOCUMENT_BYTES}",
            "Уменьшите вложения или передайте их отдельными сообщениями.",
        )
    if not data.strip():
        raise _rejected(
            "XML_MALFORMED",
            "Документ пуст.",
            "empty document",
            "Передайте XML-документ.",
        )
    declared = _DECLARED_ENCODING.match(data)
    if data.startswith(_FOREIGN_BOMS) or (
        declared and declared.group(1).lower() not in (b"utf-8", b"utf8")
    ):
        raise _rejected(
            "XML_ENCODING_UNSUPPORTED",
            "Документ должен быть в кодировке UTF-8.",
            "only UTF-8 documents are accepted",
            "Сохраните документ в UTF-8.",
        )
    if any(marker in data for marker in _FORBIDDEN_DECLARATIONS):
        raise _rejected(
            "XML_DOCTYPE_FORBIDDEN",
            "Документ содержит объявление DOCTYPE или ENTITY; они запрещены.",
            "DOCTYPE and entity declarations are forbidden",
            "Удалите объявление DOCTYPE: документы проверяются только по XSD.",
        )
    undeclared = _ENTITY_REFERENCE.search(data)
    if undeclared:
        line = data.count(b"\n", 0, undeclared.start()) + 1
        raise _rejected(
            "XML_ENTITY_FORBIDDEN",
            f"Строка {line}: ссылка на сущность (&…;), которая не объявлена, или знак «&» без "
            "экранирования; допускаются только стандартные сущности XML (&amp; &lt; &gt; "
            "&quot; &apos;) и числовые ссылки.",
            f"line {line}: undeclared entity reference or unescaped '&'",
            "Замените ссылку на сущность самим текстом, а знак «&» запишите как &amp;.",
        )
    return _parse_stream(data)


def _parse_stream(data: bytes) -> etree._Element:
    parser = _parser()
    depth = 0
    elements = 0
    try:
        for offset in range(0, len(data), CHUNK_BYTES):
            parser.feed(data[offset : offset + CHUNK_BYTES])
            for event, node in parser.read_events():
                if event == "start":
                    depth += 1
                    elements += 1
                    if depth > MAX_DEPTH:
                        raise _too_deep()
                    if elements > MAX_ELEMENTS:
                        raise _too_many()
                elif event == "end":
                    depth -= 1
                else:
                    raise _rejected(
                        "XML_PROCESSING_INSTRUCTION",
                        "Документ содержит инструкцию обработки (<?…?>); они запрещены.",
                        f"processing instruction {node.target!r} is forbidden",
                        "Удалите инструкции обработки из документа.",
                    )
        root = parser.close()
    except etree.XMLSyntaxError as error:
        raise _syntax_rejection(error) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _rejected(
            "XML_DOCTYPE_FORBIDDEN",
            "Документ содержит объявление DOCTYPE; оно запрещено.",
            "DOCTYPE is forbidden",
            "Удалите объявление DOCTYPE.",
        )
    return root


def _too_deep() -> DocumentRejected:
    return _rejected(
        "XML_TOO_DEEP",
        f"Вложенность элементов больше допустимой ({MAX_DEPTH}).",
        f"element nesting exceeds {MAX_DEPTH} levels",
        "Проверьте структуру документа по схеме.",
    )


def _too_many() -> DocumentRejected:
    return _rejected(
        "XML_TOO_MANY_ELEMENTS",
        f"Документ содержит больше {MAX_ELEMENTS} элементов.",
        f"document has more than {MAX_ELEMENTS} elements",
        "Разделите сведения на несколько сообщений.",
    )


def _syntax_rejection(error: etree.XMLSyntaxError) -> DocumentRejected:
    text = str(error)
    line = getattr(error, "lineno", 0) or 0
    if "depth" in text.lower():
        return _too_deep()
    if "Entity" in text or "entity" in text:
        return _rejected(
            "XML_ENTITY_FORBIDDEN",
            f"Документ ссылается на сущность (&…;), которая не объявлена (строка {line}); "
            "допускаются только стандартные сущности XML.",
            f"undeclared entity reference at line {line}: {text}",
            "Замените ссылку на сущность самим текстом.",
        )
    if "huge" in text.lower() or "too long" in text.lower():
        return _rejected(
            "XML_TOO_LARGE",
            f"Текст элемента длиннее допустимого (строка {line}).",
            f"text node too large at line {line}: {text}",
            "Уменьшите вложение.",
        )
    return _rejected(
        "XML_MALFORMED",
        f"Документ не является корректным XML (строка {line}): {text}",
        f"not well-formed XML at line {line}: {text}",
        "Проверьте документ XML-редактором или командой xmllint --noout.",
    )

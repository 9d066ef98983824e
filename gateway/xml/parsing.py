"""Hardened parsing: the only way XML enters the gateway.

Every document from a peer, a file or the local API is hostile until proven otherwise. It goes
through :func:`parse_untrusted`, which

* refuses anything larger than :data:`MAX_DOCUMENT_BYTES` before parsing a byte;
* accepts UTF-8 only (one encoding: no UTF-16/32 tricks around the byte checks below);
* refuses any DOCTYPE or entity declaration outright (no DTD means no XXE, no billion laughs,
  no external DTD fetch) — checked on the raw bytes and again on the parsed tree;
* refuses an element with more than :data:`MAX_ATTRIBUTES_PER_ELEMENT` attributes on the raw
  bytes of a document larger than :data:`CROWDED_TAG_SCAN_BYTES`: libxml2 reads a whole start
  tag before it reports anything, so one 16 MiB start tag would otherwise cost hundreds of
  megabytes before any check of ours ran;
* parses with lxml set to ``resolve_entities=False, no_network=True, load_dtd=False,
  huge_tree=False`` (FACTS.md: lxml < 6.1 resolved entities in iterparse, CVE-2026-41066);
* streams the document through a pull parser, counting depth, elements and attributes,
  and stops at the first limit it crosses, so a hostile document costs at most the tree of the
  bytes read so far (one :data:`CHUNK_BYTES` past the limit);
* refuses any comment and any processing instruction (the XML declaration is not one) at the
  parser's first event for it, anywhere in the document (before the root, inside, after it).
  Comments because every signature here uses canonical XML *without comments*: a comment placed
  inside signed text leaves the signature valid while splitting the text every reader of the tree
  sees (FACTS.md). Processing instructions because nothing in our schemas uses them;
  ``xml-stylesheet`` and friends are instructions to somebody else's software. The parser's
  events are exact (a ``<!--`` inside CDATA is text) and cost nothing when there is none; a
  document of comments is refused within its first chunk.

The byte checks run on each chunk just before the parser gets it, so a hostile document is
refused where its fault is, without a pass over all of it first. They look at raw bytes and can
be wrong only inside a CDATA section (there ``<!DOCTYPE`` or a tag are text): such a document is
refused although libxml2 would take it. Our documents never hold CDATA. An undeclared entity
(which libxml2's push parser reports only vaguely) is looked for once the parser has failed.

A refusal raises :class:`~gateway.model.problems.DocumentRejected` with one ``XML_*`` problem.
The limits are listed in docs/protocol.md (a test keeps that table equal to the constants).
"""

from __future__ import annotations

import itertools
import re

from lxml import etree

from gateway.model import limits
from gateway.model.problems import DocumentRejected, Problem

MAX_DOCUMENT_BYTES = limits.MAX_XML_BYTES
"""16 MiB (``gateway.model.limits.MAX_XML_BYTES``: the larger of a peer's message and the
depositary's directory), refused before parsing, so memory stays bounded per document. It also
bounds the document's text: text never takes more bytes in the tree than in the document (no
entities; character references only shrink), so no count of its own is needed."""

MAX_DEPTH = 40
"""Our deepest legitimate path is a XAdES signature inside the envelope, about 12 levels
(Envelope/Signatures/Seal/Signature/Object/QualifyingProperties/SignedProperties/…). 40 leaves
room for growth and stops recursion bombs long before libxml2's own limit of 256."""

MAX_ELEMENTS = 20_000
"""A full answer (100 accounts, 100 incomes, two signatures) has well under 5,000 elements;
20,000 bounds the tree's memory and the validator's work."""

MAX_ATTRIBUTES_PER_ELEMENT = 32
"""Attributes plus namespace declarations on one element. Ours carry at most 3 (the envelope's
three ``xmlns:``; ``Id``; ``Algorithm``); another stack's XAdES may declare a few more prefixes
on one element. 32 is ten times that, and with :data:`MAX_ELEMENTS` caps what one start tag can
make libxml2 allocate (each attribute is two tree nodes, ~300 bytes, against 5 bytes of input)."""

MAX_ATTRIBUTES = 20_000
"""Attributes plus namespace declarations in the whole document. A signed message has about 50;
a directory of 1,000 bodies about 12,000. Without it 20,000 elements of 32 attributes each would
be 640,000 attribute nodes (~200 MB) out of a 16 MiB document; with it, at most ~6 MB."""

MAX_ATTRIBUTE_BYTES = 1024 * 1024
"""Bytes of attribute names and values (namespace prefixes and URIs included) in the whole
document. Our attributes hold ids, codes and algorithm URIs: a message has under 2 KB, the
largest directory under 0.5 MB. Base64 content belongs in text, where the schema bounds it."""

CROWDED_TAG_SCAN_BYTES = 64 * 1024
"""Documents larger than this are scanned for a start tag with too many attributes before they
are parsed. A smaller one cannot hold a start tag of more than ~13,000 attributes (~4 MB of
tree), which the count on the parser's events then refuses; skipping the scan saves ~0.1 ms on
each ordinary message (a quarter of its parse)."""

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
_CROWDED_START_TAG = re.compile(
    rb"<[^\s<>/!?]++(?:\s++[^\s<>/=\"']++\s*+=\s*+(?:\"[^\"<]*+\"|'[^'<]*+'))"
    rb"{%d}" % (MAX_ATTRIBUTES_PER_ELEMENT + 1)
)
"""A start tag with more than MAX_ATTRIBUTES_PER_ELEMENT attributes (``xmlns`` ones included).
The bounded repeat stops matching one past the limit however long the tag, a value may not hold
``<`` (XML forbids it), so a scan never runs past the next tag, and possessive quantifiers never
backtrack: linear in the document (~0.3 µs per tag, ~0.5 µs per attribute)."""


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
        # "comment" and "pi" to refuse them at the first one; "start-ns" to count declarations.
        events=("start", "end", "start-ns", "comment", "pi"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        encoding="utf-8",
    )


def parse_untrusted(data: bytes) -> etree._Element:
    """Parse bytes from outside into an lxml element, or raise ``DocumentRejected`` (``XML_*``).

    The result has no DTD, no entities, no comments and no processing instructions, and stays
    within every limit of this module (docs/protocol.md lists them with their codes).
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
    if not data or data.isspace():  # isspace stops at the first other byte; strip() would copy
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
    return _parse_stream(data)


def _line(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _check_chunk(data: bytes, start: int, scan_tags: bool) -> None:
    """Refuse on the bytes, before libxml2 sees the chunk at ``start``: a DOCTYPE or ENTITY
    declaration (no DTD ever reaches the parser), and, when ``scan_tags``, a start tag crowded
    with attributes that begins in this chunk.

    Checked chunk by chunk, just ahead of the parser, so that a hostile document is refused as
    soon as the parser or the scan meets the fault, not after a pass over all of it. A crowded
    tag is looked for one chunk beyond its own: a tag whose first attributes take more than that
    has large values, costing the tree about their bytes, and the count on the parser's events
    refuses it.
    """
    end = start + CHUNK_BYTES
    overlap = max(len(m) for m in _FORBIDDEN_DECLARATIONS) - 1  # a marker across the boundary
    if any(data.find(m, max(0, start - overlap), end) >= 0 for m in _FORBIDDEN_DECLARATIONS):
        raise _rejected(
            "XML_DOCTYPE_FORBIDDEN",
            "Документ содержит объявление DOCTYPE или ENTITY; они запрещены.",
            "DOCTYPE and entity declarations are forbidden",
            "Удалите объявление DOCTYPE: документы проверяются только по XSD.",
        )
    if scan_tags:
        crowded = _CROWDED_START_TAG.search(data, start, end + CHUNK_BYTES)
        if crowded and crowded.start() < end:
            raise _crowded_element(_line(data, crowded.start()))


def _undeclared_entity(data: bytes) -> DocumentRejected | None:
    """The clear refusal for an undeclared entity or a bare ``&``, looked for only once libxml2
    has failed (it then reports one vaguely, as "no element found"): no cost on success."""
    undeclared = _ENTITY_REFERENCE.search(data)
    if undeclared is None:
        return None
    line = _line(data, undeclared.start())
    return _rejected(
        "XML_ENTITY_FORBIDDEN",
        f"Строка {line}: ссылка на сущность (&…;), которая не объявлена, или знак «&» без "
        "экранирования; допускаются только стандартные сущности XML (&amp; &lt; &gt; "
        "&quot; &apos;) и числовые ссылки.",
        f"line {line}: undeclared entity reference or unescaped '&'",
        "Замените ссылку на сущность самим текстом, а знак «&» запишите как &amp;.",
    )


def _utf8_len(text: str | None) -> int:
    if not text:
        return 0
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _parse_stream(data: bytes) -> etree._Element:
    """Feed ``data`` to the pull parser chunk by chunk, checking every limit on its events.

    One loop with local counters: it runs once per element of every received document, so it
    avoids a call per event; what is rare (a refusal, a big document's byte counts) is not
    inline.
    """
    parser = _parser()
    # Neither text nor attributes take more bytes in the tree than in the document (no entities;
    # character references only shrink): a byte count that cannot reach its limit is not kept.
    count_attribute_bytes = len(data) > MAX_ATTRIBUTE_BYTES
    scan_tags = len(data) > CROWDED_TAG_SCAN_BYTES
    depth = elements = attributes = attribute_bytes = 0
    declared = 0  # namespace declarations since the last start tag: they belong to the next one
    try:
        for offset in itertools.chain(range(0, len(data), CHUNK_BYTES), [len(data)]):
            if offset < len(data):
                _check_chunk(data, offset, scan_tags)
                parser.feed(data[offset : offset + CHUNK_BYTES])
            else:
                root = parser.close()  # and what came after the root's end (a last comment)
            for event, node in parser.read_events():
                if event == "start":
                    depth += 1
                    elements += 1
                    if depth > MAX_DEPTH:
                        raise _too_deep()
                    if elements > MAX_ELEMENTS:
                        raise _too_many()
                    here = len(node.attrib) + declared
                    declared = 0
                    if here > MAX_ATTRIBUTES_PER_ELEMENT:
                        raise _crowded_element(node.sourceline or 0)
                    attributes += here
                    if attributes > MAX_ATTRIBUTES:
                        raise _too_many_attributes()
                    if count_attribute_bytes and here:
                        attribute_bytes += _attribute_bytes(node)
                        if attribute_bytes > MAX_ATTRIBUTE_BYTES:
                            raise _attributes_too_large()
                elif event == "end":
                    depth -= 1
                elif event == "start-ns":
                    declared += 1
                    if count_attribute_bytes:
                        prefix, uri = node
                        attribute_bytes += _utf8_len(prefix) + _utf8_len(uri)
                elif event == "comment":
                    raise _comment(node.sourceline or 0)
                else:
                    raise _instruction(node.sourceline or 0)
    except etree.XMLSyntaxError as error:
        raise (_undeclared_entity(data) or _syntax_rejection(error)) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _rejected(
            "XML_DOCTYPE_FORBIDDEN",
            "Документ содержит объявление DOCTYPE; оно запрещено.",
            "DOCTYPE is forbidden",
            "Удалите объявление DOCTYPE.",
        )
    return root


def _attribute_bytes(element: etree._Element) -> int:
    return sum(_utf8_len(name) + _utf8_len(value) for name, value in element.attrib.items())


def _comment(line: int) -> DocumentRejected:
    return _rejected(
        "XML_COMMENT",
        f"Строка {line}: документ содержит комментарий (<!-- … -->); комментарии запрещены: "
        "подпись их не охватывает, и текст с комментарием читался бы не так, как подписан.",
        f"line {line}: comments are forbidden (canonical XML without comments ignores them)",
        "Удалите комментарии из документа и подпишите его заново.",
    )


def _instruction(line: int) -> DocumentRejected:
    return _rejected(
        "XML_PROCESSING_INSTRUCTION",
        f"Строка {line}: документ содержит инструкцию обработки (<?…?>); они запрещены "
        "(объявление <?xml …?> в самом начале документа допускается).",
        f"line {line}: processing instructions are forbidden",
        "Удалите инструкции обработки из документа.",
    )


def _crowded_element(line: int) -> DocumentRejected:
    return _rejected(
        "XML_TOO_MANY_ATTRIBUTES_ON_ELEMENT",
        f"Строка {line}: у элемента больше {MAX_ATTRIBUTES_PER_ELEMENT} атрибутов и "
        "объявлений пространств имён.",
        f"line {line}: an element has more than {MAX_ATTRIBUTES_PER_ELEMENT} attributes",
        "Проверьте структуру документа по схеме; сведения передаются в элементах.",
    )


def _too_many_attributes() -> DocumentRejected:
    return _rejected(
        "XML_TOO_MANY_ATTRIBUTES",
        f"Документ содержит больше {MAX_ATTRIBUTES} атрибутов и объявлений пространств имён.",
        f"document has more than {MAX_ATTRIBUTES} attributes",
        "Проверьте структуру документа по схеме; сведения передаются в элементах.",
    )


def _attributes_too_large() -> DocumentRejected:
    return _rejected(
        "XML_ATTRIBUTES_TOO_LARGE",
        f"Атрибуты документа занимают больше {MAX_ATTRIBUTE_BYTES} байт.",
        f"attribute names and values exceed {MAX_ATTRIBUTE_BYTES} bytes",
        "Передавайте сведения и вложения в элементах, а не в атрибутах.",
    )


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

"""Hostile XML is refused fast, with a clear code; nothing is fetched, nothing expanded."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from gateway.model.problems import DocumentRejected
from gateway.xml import parsing
from gateway.xml.parsing import (
    MAX_ATTRIBUTE_BYTES,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_PER_ELEMENT,
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_ELEMENTS,
    parse_untrusted,
)
from tests.xml.helpers import VALID

# A refusal must cost bounded work. It is measured in what the real parser was given and what
# the limit checks read from it (bytes fed, events consumed), not in CPU time, which varies with
# the machine and what ran before: each assertion below fails if its protection is removed.


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'<!ENTITY x "fetched">')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[str]:
    """A loopback HTTP server that records any request: an external fetch would show here."""
    _Recorder.hits = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _CountingParser:
    """The real pull parser, counting the bytes fed to it and the events the limit checks
    consumed from it (what "refused within its first chunk" or "at the first comment" means,
    without timing anything)."""

    def __init__(self, parser: object) -> None:
        self.parser = parser
        self.fed = 0
        self.events: list[str] = []

    def feed(self, data: bytes) -> None:
        self.fed += len(data)
        self.parser.feed(data)  # type: ignore[attr-defined]

    def read_events(self) -> Iterator[tuple[str, object]]:
        for event, node in self.parser.read_events():  # type: ignore[attr-defined]
            self.events.append(event)
            yield event, node

    def close(self) -> object:
        return self.parser.close()  # type: ignore[attr-defined]


@dataclass
class _Work:
    """What one parse_untrusted call made the real parser do."""

    parsers: list[_CountingParser] = field(default_factory=list)

    @property
    def fed(self) -> int:
        return sum(p.fed for p in self.parsers)

    @property
    def events(self) -> list[str]:
        return [event for p in self.parsers for event in p.events]


def _rejected(data: bytes) -> tuple[DocumentRejected, _Work]:
    work = _Work()
    real = parsing._parser

    def counting() -> _CountingParser:
        work.parsers.append(_CountingParser(real()))
        return work.parsers[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parsing, "_parser", counting)
        with pytest.raises(DocumentRejected) as caught:
            parse_untrusted(data)
    return caught.value, work


def test_external_entity_is_refused_and_not_fetched(listener: str) -> None:
    data = (
        f'<?xml version="1.0"?>\n<!DOCTYPE foo [<!ENTITY xxe SYSTEM "{listener}/secret">]>\n'
        "<foo>&xxe;</foo>"
    ).encode()
    error, work = _rejected(data)
    assert error.code == "XML_DOCTYPE_FORBIDDEN"
    assert "DOCTYPE" in error.problems[0].message_ru
    assert work.fed == 0  # refused on the bytes: libxml2 never saw the declaration
    assert _Recorder.hits == []


def test_local_file_entity_is_refused() -> None:
    data = b'<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>'
    error, _ = _rejected(data)
    assert error.code == "XML_DOCTYPE_FORBIDDEN"
    assert "root:" not in str(error)


def test_billion_laughs_is_refused_fast() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    data = f'<?xml version="1.0"?><!DOCTYPE lolz [{"".join(entities)}]><lolz>&lol9;</lolz>'
    error, work = _rejected(data.encode())
    assert error.code == "XML_DOCTYPE_FORBIDDEN"
    assert work.fed == 0  # nothing expanded: the parser was given not one byte


def test_external_dtd_is_refused_and_not_fetched(listener: str) -> None:
    data = f'<?xml version="1.0"?><!DOCTYPE foo SYSTEM "{listener}/evil.dtd"><foo/>'.encode()
    error, work = _rejected(data)
    assert error.code == "XML_DOCTYPE_FORBIDDEN"
    assert work.fed == 0
    assert _Recorder.hits == []


def test_doctype_in_utf16_cannot_slip_past_the_byte_check() -> None:
    data = '<!DOCTYPE foo [<!ENTITY x "y">]><foo>&x;</foo>'.encode("utf-16")
    error, _ = _rejected(data)
    assert error.code == "XML_ENCODING_UNSUPPORTED"


def test_oversized_document_is_refused_before_parsing() -> None:
    data = b"<a>" + b"x" * MAX_DOCUMENT_BYTES + b"</a>"
    error, work = _rejected(data)
    assert error.code == "XML_TOO_LARGE"
    assert str(MAX_DOCUMENT_BYTES) in error.problems[0].message_ru
    assert work.parsers == []  # no parser was even made


def test_ten_thousand_deep_nesting_is_refused_fast() -> None:
    data = b"<a>" * 10_000 + b"</a>" * 10_000
    error, work = _rejected(data)
    assert error.code == "XML_TOO_DEEP"
    assert str(MAX_DEPTH) in error.problems[0].message_ru
    assert work.fed == parsing.CHUNK_BYTES < len(data)  # refused within the first chunk


def test_depth_limit_is_exact() -> None:
    assert parse_untrusted(b"<a>" * MAX_DEPTH + b"</a>" * MAX_DEPTH) is not None
    error, _ = _rejected(b"<a>" * (MAX_DEPTH + 1) + b"</a>" * (MAX_DEPTH + 1))
    assert error.code == "XML_TOO_DEEP"


def test_too_many_elements_is_refused_fast() -> None:
    data = b"<a>" + b"<b/>" * (MAX_ELEMENTS + 1) + b"</a>"
    error, work = _rejected(data)
    assert error.code == "XML_TOO_MANY_ELEMENTS"
    # Refused at the first start tag over the limit: no event past it was read.
    assert work.events.count("start") == MAX_ELEMENTS + 1
    assert work.events[-1] == "start"


def test_huge_text_node_is_refused() -> None:
    # libxml2 caps a text node at 10,000,000 bytes without huge_tree, under our own size limit.
    assert MAX_DOCUMENT_BYTES > 10_500_000 + 7
    data = b"<a>" + b"x" * 10_500_000 + b"</a>"
    error, work = _rejected(data)
    assert error.code == "XML_TOO_LARGE"
    # libxml2 stops at its cap, within a chunk of it, not at the end of the node.
    assert work.fed <= 10_000_000 + parsing.CHUNK_BYTES < len(data)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "XML_MALFORMED"),
        (b"<a><b></a>", "XML_MALFORMED"),
        (b"not xml at all", "XML_MALFORMED"),
        (b'<?xml-stylesheet href="x.xsl"?><a/>', "XML_PROCESSING_INSTRUCTION"),
        (b"<a><?php system('id'); ?></a>", "XML_PROCESSING_INSTRUCTION"),
        (b"<a>&nbsp;</a>", "XML_ENTITY_FORBIDDEN"),
        (b"<a>Tom & Jerry</a>", "XML_ENTITY_FORBIDDEN"),
        (b'<?xml version="1.0" encoding="ISO-8859-5"?><a/>', "XML_ENCODING_UNSUPPORTED"),
        (b"<a>\xff\xfe</a>", "XML_MALFORMED"),
    ],
)
def test_malformed_input_gets_its_code(data: bytes, code: str) -> None:
    error, work = _rejected(data)
    assert error.code == code
    assert error.problems[0].remedy_ru
    assert len(work.parsers) <= 1 and work.fed <= len(data)  # one pass, each byte at most once


def test_predefined_and_character_references_are_fine() -> None:
    root = parse_untrusted(b"<a>&lt;&amp;&gt;&quot;&apos;&#1046;&#x416;</a>")
    assert root.text == "<&>\"'ЖЖ"


def test_utf8_bom_and_declaration_are_fine() -> None:
    root = parse_untrusted(b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?><a>\xd0\x96</a>')
    assert root.text == "Ж"


def test_valid_example_parses_fast() -> None:
    data = (VALID / "cis-enforcement.Response.xml").read_bytes()
    started = time.process_time()
    for _ in range(50):
        root = parse_untrusted(data)
    assert (time.process_time() - started) / 50 < 0.01
    assert root.tag == "{urn:cis-exchange:envelope:1}Envelope"


def test_parse_takes_bytes_only() -> None:
    with pytest.raises(TypeError):
        parse_untrusted("<a/>")  # type: ignore[arg-type]


def test_schema_location_hints_are_never_followed(listener: str) -> None:
    from gateway.xml.convert import xml_to_json
    from gateway.xml.validate import validate

    data = (VALID / "cis-enforcement.Withdrawal.xml").read_bytes()
    hint = (
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation='
        f'"urn:cis-exchange:envelope:1 {listener}/evil.xsd"'
    )
    data = data.replace(
        b'xmlns:env="urn:cis-exchange:envelope:1"',
        b'xmlns:env="urn:cis-exchange:envelope:1"' + hint.encode(),
        1,
    )
    root = parse_untrusted(data)
    assert validate(root) == ()
    assert xml_to_json(root)["body"]["Withdrawal"]
    broken = parse_untrusted(data.replace(b"<env:Urgency>normal", b"<env:Urgency>asap"))
    assert [p.code for p in validate(broken)] == ["SCHEMA_ENUMERATION"]
    assert _Recorder.hits == []


# --- comments and processing instructions: refused wherever they are ---

SIGNED_TEXT = b"<a><b Id='body'><c>184512/26/77039</c></b></a>"


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"<!-- before the root -->\n<a/>", 1),
        (b'<?xml version="1.0" encoding="UTF-8"?>\n<!--x-->\n<a/>', 2),
        (b"<a>\n<b/><!-- between elements --></a>", 2),
        (SIGNED_TEXT.replace(b"26/", b"26<!---->/"), 1),
        (b"<a/>\n\n<!-- after the root -->", 3),
        (b"<a/><!---->", 1),
    ],
    ids=["prolog", "after-declaration", "between-elements", "inside-text", "after-root", "empty"],
)
def test_a_comment_anywhere_is_refused_with_its_line(data: bytes, line: int) -> None:
    error, work = _rejected(data)
    assert error.code == "XML_COMMENT"
    assert error.problems[0].message_ru.startswith(f"Строка {line}:")
    assert "подпись их не охватывает" in error.problems[0].message_ru
    assert error.problems[0].remedy_ru
    assert work.events[-1] == "comment"  # refused at the comment's event, nothing read after


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml-stylesheet href="x.xsl"?><a/>',
        b"<a><b>text<?php system('id'); ?></b></a>",
        b"<a/><?after the root?>",
        b'  <?xml version="1.0"?><a/>',  # a declaration not at the very start is an instruction
    ],
    ids=["prolog", "inside-text", "after-root", "late-declaration"],
)
def test_a_processing_instruction_anywhere_is_refused(data: bytes) -> None:
    error, _ = _rejected(data)
    assert error.code in {"XML_PROCESSING_INSTRUCTION", "XML_MALFORMED"}
    if not data.startswith(b"  "):
        assert error.code == "XML_PROCESSING_INSTRUCTION"
        assert error.problems[0].message_ru.startswith("Строка 1:")


def test_comment_and_instruction_lookalikes_inside_cdata_are_text() -> None:
    root = parse_untrusted(b"<a><![CDATA[<!-- not a comment --> <?not an instruction?>]]></a>")
    assert root.text == "<!-- not a comment --> <?not an instruction?>"


def test_a_document_of_comments_is_refused_within_its_first_chunk() -> None:
    data = b"<a>" + b"<!---->" * ((MAX_DOCUMENT_BYTES - 7) // 7) + b"</a>"
    error, work = _rejected(data)
    assert error.code == "XML_COMMENT"
    assert [p.fed for p in work.parsers] == [parsing.CHUNK_BYTES]  # 64 KiB of 16 MiB read
    assert work.events == ["start", "comment"]


# --- attributes and text ---


def _element_with(attributes: int) -> bytes:
    return b"<b" + b"".join(b' a%d="v"' % i for i in range(attributes)) + b"/>"


@pytest.mark.parametrize("padding", [0, 100_000], ids=["small-document", "scanned-document"])
def test_attributes_per_element_limit_is_exact(padding: int) -> None:
    """Below CROWDED_TAG_SCAN_BYTES the parser's events count; above it the byte scan does."""
    filler = b"<c>" + b"x" * padding + b"</c>"
    fine = b"<a>" + filler + _element_with(MAX_ATTRIBUTES_PER_ELEMENT) + b"</a>"
    assert len(parse_untrusted(fine)) == 2
    data = b"<a>" + filler + b"\n" + _element_with(MAX_ATTRIBUTES_PER_ELEMENT + 1) + b"</a>"
    error, work = _rejected(data)
    assert error.code == "XML_TOO_MANY_ATTRIBUTES_ON_ELEMENT"
    assert error.problems[0].message_ru.startswith("Строка 2:")
    crowded = data.index(b"\n") + 1
    if padding:  # the byte scan refused it before the parser was given the tag
        assert work.fed < crowded
    else:  # the parser's event for the tag refused it: the last one read
        assert work.events == ["start", "start", "end", "start"]


def test_namespace_declarations_count_as_attributes() -> None:
    declarations = b"".join(b' xmlns:p%d="urn:x"' % i for i in range(MAX_ATTRIBUTES_PER_ELEMENT))
    error, _ = _rejected(b"<a" + declarations + b' b="1"/>')
    assert error.code == "XML_TOO_MANY_ATTRIBUTES_ON_ELEMENT"


def test_one_start_tag_of_sixteen_mebibytes_is_refused_before_parsing() -> None:
    attributes = b"".join(b" a%07x=''" % i for i in range((MAX_DOCUMENT_BYTES - 4) // 12))
    assert MAX_DOCUMENT_BYTES - 16 < len(attributes) + 4 <= MAX_DOCUMENT_BYTES
    error, work = _rejected(b"<a" + attributes + b"/>")
    assert error.code == "XML_TOO_MANY_ATTRIBUTES_ON_ELEMENT"
    assert work.fed == 0  # the byte scan refused it: libxml2 never read the 16 MiB tag


def test_total_attributes_limit() -> None:
    per = MAX_ATTRIBUTES_PER_ELEMENT
    elements = MAX_ATTRIBUTES // per + 1
    error, work = _rejected(b"<a>" + _element_with(per) * elements + b"</a>")
    assert error.code == "XML_TOO_MANY_ATTRIBUTES"
    assert str(MAX_ATTRIBUTES) in error.problems[0].message_ru
    # Refused at the start tag that crosses the limit (the root's, then one per element).
    assert work.events.count("start") == 1 + elements
    assert work.events[-1] == "start"


def test_total_attribute_bytes_limit() -> None:
    value = b"v" * (MAX_ATTRIBUTE_BYTES // 4)
    fine = b"<a>" + b'<b x="' + value + b'"/>' + b"</a>"
    assert parse_untrusted(fine) is not None
    error, _ = _rejected(b"<a>" + (b'<b x="' + value + b'"/>') * 5 + b"</a>")
    assert error.code == "XML_ATTRIBUTES_TOO_LARGE"
    assert error.problems[0].remedy_ru


def test_text_is_bounded_by_the_document_size() -> None:
    # No count of its own: text never takes more bytes in the tree than in the document.
    piece = b"<b>" + b"x" * (3 * 1024 * 1024) + b"</b>"
    pieces = (MAX_DOCUMENT_BYTES - 7) // len(piece)
    fits = b"<a>" + piece * pieces + b"</a>"
    assert len(fits) > MAX_DOCUMENT_BYTES - len(piece)
    assert len(parse_untrusted(fits)) == pieces
    error, work = _rejected(b"<a>" + piece * (pieces + 1) + b"</a>")
    assert error.code == "XML_TOO_LARGE" and work.fed == 0


# --- checks made chunk by chunk, just ahead of the parser ---


def test_a_doctype_across_a_chunk_boundary_is_refused() -> None:
    # A prolog of white space is allowed: the declaration comes after the first chunk.
    head = b"\n" * (parsing.CHUNK_BYTES - 4)
    data = head + b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'
    assert data.index(b"<!DOCTYPE") < parsing.CHUNK_BYTES < data.index(b"<!DOCTYPE") + 9
    error, _ = _rejected(data)
    assert error.code == "XML_DOCTYPE_FORBIDDEN"


def test_a_crowded_tag_across_a_chunk_boundary_is_refused_before_parsing() -> None:
    tag = _element_with(MAX_ATTRIBUTES_PER_ELEMENT + 1)
    filler = b"<c>" + b"x" * (2 * parsing.CHUNK_BYTES - len(tag) // 2) + b"</c>"
    data = b"<a>" + filler + tag + b"</a>"
    start = data.index(tag)
    assert start // parsing.CHUNK_BYTES != (start + len(tag)) // parsing.CHUNK_BYTES
    error, _ = _rejected(data)
    assert error.code == "XML_TOO_MANY_ATTRIBUTES_ON_ELEMENT"


def test_an_undeclared_entity_after_the_first_chunk_gets_its_own_code() -> None:
    data = b"<a>" + b"<b>x</b>" * 10_000 + b"<b>&nbsp;</b></a>"
    error, _ = _rejected(data)
    assert error.code == "XML_ENTITY_FORBIDDEN"
    assert "&amp;" in error.problems[0].remedy_ru

"""Hostile XML is refused fast, with a clear code; nothing is fetched, nothing expanded."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest

from gateway.model.problems import DocumentRejected
from gateway.xml import parsing
from gateway.xml.parsing import MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_ELEMENTS, parse_untrusted
from tests.xml.helpers import VALID

FAST_SECONDS = 0.5
"""'Well under a second' on a 2-core CI machine."""


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


def _rejected(data: bytes) -> tuple[DocumentRejected, float]:
    started = time.perf_counter()
    with pytest.raises(DocumentRejected) as caught:
        parse_untrusted(data)
    return caught.value, time.perf_counter() - started


def test_external_entity_is_refused_and_not_fetched(listener: str) -> None:
    data = (
        f'<?xml version="1.0"?>\n<!DOCTYPE foo [<!ENTITY xxe SYSTEM "{listener}/secret">]>\n'
        "<foo>&xxe;</foo>"
    ).encode()
    error, seconds = _rejected(data)
    assert error.code == "XML_DOCTYPE_FORBIDDEN"
    assert "DOCTYPE" in error.problems[0].message_ru
    assert seconds < FAST_SECONDS
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
    error, seconds = _rejected(data.encode())
    assert error.code == "XML_DOCTYPE_FORBIDDEN"
    assert seconds < FAST_SECONDS


def test_external_dtd_is_refused_and_not_fetched(listener: str) -> None:
    data = f'<?xml version="1.0"?><!DOCTYPE foo SYSTEM "{listener}/evil.dtd"><foo/>'.encode()
    error, seconds = _rejected(data)
    assert error.code == "XML_DOCTYPE_FORBIDDEN"
    assert seconds < FAST_SECONDS
    assert _Recorder.hits == []


def test_doctype_in_utf16_cannot_slip_past_the_byte_check() -> None:
    data = '<!DOCTYPE foo [<!ENTITY x "y">]><foo>&x;</foo>'.encode("utf-16")
    error, _ = _rejected(data)
    assert error.code == "XML_ENCODING_UNSUPPORTED"


def test_oversized_document_is_refused_before_parsing() -> None:
    data = b"<a>" + b"x" * MAX_DOCUMENT_BYTES + b"</a>"
    error, seconds = _rejected(data)
    assert error.code == "XML_TOO_LARGE"
    assert str(MAX_DOCUMENT_BYTES) in error.problems[0].message_ru
    assert seconds < FAST_SECONDS


def test_ten_thousand_deep_nesting_is_refused_fast() -> None:
    data = b"<a>" * 10_000 + b"</a>" * 10_000
    error, seconds = _rejected(data)
    assert error.code == "XML_TOO_DEEP"
    assert str(MAX_DEPTH) in error.problems[0].message_ru
    assert seconds < FAST_SECONDS


def test_depth_limit_is_exact() -> None:
    assert parse_untrusted(b"<a>" * MAX_DEPTH + b"</a>" * MAX_DEPTH) is not None
    error, _ = _rejected(b"<a>" * (MAX_DEPTH + 1) + b"</a>" * (MAX_DEPTH + 1))
    assert error.code == "XML_TOO_DEEP"


def test_too_many_elements_is_refused_fast() -> None:
    data = b"<a>" + b"<b/>" * (MAX_ELEMENTS + 1) + b"</a>"
    error, seconds = _rejected(data)
    assert error.code == "XML_TOO_MANY_ELEMENTS"
    assert seconds < FAST_SECONDS


def test_huge_text_node_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # libxml2 caps a text node at 10,000,000 bytes without huge_tree; raise our own size limit
    # for this test so that libxml2's cap is what trips.
    monkeypatch.setattr(parsing, "MAX_DOCUMENT_BYTES", 12_000_000)
    data = b"<a>" + b"x" * 10_500_000 + b"</a>"
    error, seconds = _rejected(data)
    assert error.code == "XML_TOO_LARGE"
    assert seconds < 2 * FAST_SECONDS


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
    error, seconds = _rejected(data)
    assert error.code == code
    assert error.problems[0].remedy_ru
    assert seconds < FAST_SECONDS


def test_predefined_and_character_references_are_fine() -> None:
    root = parse_untrusted(b"<a>&lt;&amp;&gt;&quot;&apos;&#1046;&#x416;</a>")
    assert root.text == "<&>\"'ЖЖ"


def test_utf8_bom_and_declaration_are_fine() -> None:
    root = parse_untrusted(b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?><a>\xd0\x96</a>')
    assert root.text == "Ж"


def test_valid_example_parses_fast() -> None:
    data = (VALID / "cis-enforcement.Response.xml").read_bytes()
    started = time.perf_counter()
    for _ in range(50):
        root = parse_untrusted(data)
    assert (time.perf_counter() - started) / 50 < 0.01
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

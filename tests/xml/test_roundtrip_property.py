"""Property tests: JSON ⇄ XML round trips are exact for generated documents of every kind.

Documents are generated from the valid examples by varying, within the schema's types, what a
case system would vary: free-text values (Cyrillic, Latin, XML-special characters, line
breaks), booleans, which optional elements are present and how many repeated items there are.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xmlschema.validators import XsdElement

from gateway.model.profiles import COMMON_NAMESPACE, PROFILES
from gateway.xml.convert import canonical, json_to_xml, to_bytes, xml_to_json
from gateway.xml.parsing import parse_untrusted
from gateway.xml.schemas import default_registry
from gateway.xml.validate import validate
from tests.xml.helpers import load_json, valid_json_files

_REGISTRY = default_registry()
_C = f"{{{COMMON_NAMESPACE}}}"

_LETTERS = (
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
    "әғқңөұүһіӘҒҚҢӨҰҮҺІ"  # Kazakh letters appear in names and addresses
    "abcxyzABCXYZ0123456789"
    "<>&\"'«»№—–-.,;:!?()[]/\\%$#@*+=_~`^{}|"
    "€𝔸😀"  # astral characters: lengths are counted in code points on both sides
)
_word = st.text(alphabet=_LETTERS, min_size=1, max_size=12)


def _line(max_size: int) -> st.SearchStrategy[str]:
    return (
        st.lists(_word, min_size=1, max_size=8).map(" ".join).filter(lambda s: len(s) <= max_size)
    )


_text = st.builds(
    lambda lead, lines, sep, trail: lead + sep.join(lines) + trail,
    st.sampled_from(["", " ", "\n", "\t"]),
    st.lists(_line(120), min_size=1, max_size=4),
    st.sampled_from(["\n", "\n\n", " ", "\n\t"]),
    st.sampled_from(["", "\n", "  "]),
)

_GENERATED: dict[str, st.SearchStrategy[str]] = {
    f"{_C}Line": _line(500),
    f"{_C}ShortLine": _line(100),
    f"{_C}Text": _text,
    f"{_C}LongText": _text,
}


def _children(element: XsdElement) -> dict[str, XsdElement]:
    content = element.type.content
    return {
        child.local_name: child
        for child in content.iter_elements()
        if isinstance(child, XsdElement)
    }


def _vary(draw: Any, value: Any, element: XsdElement) -> Any:
    if isinstance(value, list):
        keep = draw(st.integers(min_value=max(1, element.min_occurs), max_value=len(value)))
        return [_vary(draw, item, element) for item in value[:keep]]
    if isinstance(value, dict):
        children = _children(element)
        varied: dict[str, Any] = {}
        for key, item in value.items():
            child = children[key]
            if child.min_occurs == 0 and draw(st.booleans()):
                continue
            varied[key] = _vary(draw, item, child)
        return varied or None
    if isinstance(value, bool):
        return draw(st.booleans())
    if isinstance(value, str) and element.type.name in _GENERATED:
        return draw(_GENERATED[element.type.name])
    return value


def _vary_document(draw: Any, document: dict[str, Any]) -> dict[str, Any]:
    header = document["header"]
    ((kind, body),) = document["body"].items()
    envelope = _REGISTRY.envelope_element()
    header_element = _children(envelope)["Header"]
    kind_element = _REGISTRY.kind_element(PROFILES[header["Agreement"]], kind)
    return {
        "header": _vary(draw, header, header_element),
        "body": {kind: _vary(draw, body, kind_element)},
    }


@pytest.mark.parametrize("path", valid_json_files(), ids=lambda p: p.stem)
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_round_trip_is_exact(path, data: st.DataObject) -> None:
    document = _vary_document(data.draw, load_json(path))

    root = json_to_xml(document)
    assert validate(root) == ()
    assert xml_to_json(root) == document  # JSON → XML → JSON

    wire = to_bytes(root)
    received = parse_untrusted(wire)  # through the hardened parser, as a peer's bytes
    back = xml_to_json(received)
    assert back == document
    assert canonical(json_to_xml(back)) == canonical(received)  # XML → JSON → XML
    assert to_bytes(json_to_xml(back)) == wire

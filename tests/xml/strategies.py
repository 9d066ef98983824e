"""Hypothesis strategies for documents of every kind, shared by the round-trip and the
fast-builder tests.

Documents are generated from the valid examples by varying, within the schema's types, what a
case system would vary: free-text values (Cyrillic, Latin, XML-special characters, line
breaks), booleans, which optional elements are present and how many repeated items there are.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from xmlschema.validators import XsdElement

from gateway.model.profiles import COMMON_NAMESPACE, PROFILES
from gateway.xml.schemas import default_registry

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


def children_of(element: XsdElement) -> dict[str, XsdElement]:
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
        children = children_of(element)
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


def vary_document(draw: Any, document: dict[str, Any]) -> dict[str, Any]:
    """A variation of a valid example that stays valid (``draw``: ``st.data().draw``)."""
    header = document["header"]
    ((kind, body),) = document["body"].items()
    envelope = _REGISTRY.envelope_element()
    header_element = children_of(envelope)["Header"]
    kind_element = _REGISTRY.kind_element(PROFILES[header["Agreement"]], kind)
    return {
        "header": _vary(draw, header, header_element),
        "body": {kind: _vary(draw, body, kind_element)},
    }

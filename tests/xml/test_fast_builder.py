"""The fast JSON → XML builder writes, to the byte, what xmlschema's encoder (the reference)
writes; input it cannot map goes to the reference, so errors are reported as before."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gateway.model.problems import DocumentRejected
from gateway.xml.builder import (
    ComplexPlan,
    _quick_base64,
    _quick_date,
    _quick_date_time,
    _quick_hex,
    build,
)
from gateway.xml.convert import json_to_xml, json_to_xml_reference, to_bytes
from gateway.xml.schemas import default_registry
from tests.xml.helpers import INVALID, load_json, valid_json_files
from tests.xml.strategies import vary_document

_REGISTRY = default_registry()
_PLAN = _REGISTRY.document_plan
_XS = "{http://www.w3.org/2001/XMLSchema}"
_SETTINGS = settings(
    max_examples=25,  # per kind: 33 kinds, each example also runs xmlschema's encoder
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _fast_bytes(document: Any) -> bytes:
    root = build(_PLAN, document)
    assert root is not None, "the fast builder refused a valid document"
    return to_bytes(root)


def _outcome(convert: Any, document: Any) -> tuple[str, Any]:
    """What a converter makes of a document: its bytes, its problems or its exception type."""
    try:
        return "xml", to_bytes(convert(document))
    except DocumentRejected as rejected:
        return "rejected", rejected.problems
    except Exception as error:  # the reference's own failures on odd input (TypeError, …)
        return "error", type(error)


def test_every_kind_is_built_without_the_reference() -> None:
    # An unsupported type anywhere under a kind would send all its documents to the slow path.
    seen: set[int] = set()

    def walk(plan: Any, where: str) -> None:
        if not isinstance(plan, ComplexPlan) or id(plan) in seen:
            return
        seen.add(id(plan))
        assert plan.unsupported is None, f"{where}: {plan.unsupported}"
        for name, child in plan.children.items():
            walk(child.content, f"{where}/{name}")

    walk(_PLAN.header, "header")
    for (agreement, kind), child in _PLAN.kinds.items():
        walk(child.content, f"{agreement}/{kind}")
    assert ("cis-enforcement", "Request") in _PLAN.kinds
    assert ("ru-kz-supreme-courts", "Request") in _PLAN.kinds


@pytest.mark.parametrize("path", valid_json_files(), ids=lambda p: p.stem)
def test_valid_example_is_built_as_the_reference_builds_it(path) -> None:
    document = load_json(path)
    reference = to_bytes(json_to_xml_reference(document))
    assert _fast_bytes(document) == reference
    assert to_bytes(json_to_xml(document)) == reference


@pytest.mark.parametrize("path", valid_json_files(), ids=lambda p: p.stem)
@_SETTINGS
@given(data=st.data())
def test_generated_document_is_built_as_the_reference_builds_it(path, data) -> None:
    document = vary_document(data.draw, load_json(path))
    assert _fast_bytes(document) == to_bytes(json_to_xml_reference(document))


def _set(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    node = changed
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return changed


_REQUEST = load_json(INVALID.parent / "valid" / "cis-enforcement.Request.json")
_DEBTOR = ("body", "Request", "Debtor", "Individual")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        # normalised like xmlschema: dates collapse their whitespace, strings keep theirs
        (("header", "Created"), " 2026-11-23T10:00:00Z\n"),
        (("header", "RequestedDeadline"), "\t2026-12-21 "),
        (("header", "Sender"), " RU-FSSP "),
        (("body", "Request", "OtherInformation"), "  две\n\nстроки  "),
        (("body", "Request", "OtherInformation"), "<&>\"' ]]> &amp;"),
        (("header", "Created"), "2026-11-23T10:00:00.123456+14:00"),
        # invalid values the reference still writes as text; validation reports them
        (("header", "Created"), "2026-11-23T10:00:00"),
        (("header", "MessageId"), "not-a-uuid"),
        (("header", "Urgency"), "soon"),
        ((*_DEBTOR, "OtherIdentifier"), [{"Kind": "ИНН", "Value": "1"}] * 11),
        # values xmlschema refuses to convert, wrong JSON types, wrong shapes: the reference
        (("header", "Created"), "2026-02-30T10:00:00Z"),
        (("header", "RequestedDeadline"), "2026-1-1"),
        (("header", "RequestedDeadline"), "0000-01-01"),
        (("header", "Confidential"), "false"),
        (("header", "Confidential"), None),
        (("header", "Sender"), 7),
        (("header", "Unknown"), "x"),
        ((*_DEBTOR, "PlaceOfStudy"), "МГУ"),  # both branches of a choice
        ((*_DEBTOR, "OtherIdentifier"), []),
        ((*_DEBTOR, "OtherIdentifier"), {"Kind": "ИНН", "Value": "1"}),
        ((*_DEBTOR, "Surname"), ["Примеров"]),
        (("body", "Request", "Subjects"), None),
        (("body", "Request", "Subjects"), {}),
        (("body", "Request", "OtherInformation"), "control \x01 character"),
    ],
)
def test_edge_input_gives_what_the_reference_gives(path: tuple[Any, ...], value: Any) -> None:
    document = _set(_REQUEST, path, value)
    assert _outcome(json_to_xml, document) == _outcome(json_to_xml_reference, document)


def test_a_missing_required_field_is_reported_as_the_reference_reports_it() -> None:
    document = copy.deepcopy(_REQUEST)
    del document["header"]["Sender"]
    del document["body"]["Request"]["Debtor"]["Individual"]["Surname"]
    assert build(_PLAN, document) is None
    assert _outcome(json_to_xml, document) == _outcome(json_to_xml_reference, document)


@pytest.mark.parametrize("path", sorted(INVALID.glob("*.json")), ids=lambda p: p.stem)
def test_invalid_json_example_gives_the_references_problems(path) -> None:
    document = load_json(path)
    outcome = _outcome(json_to_xml, document)
    assert outcome == _outcome(json_to_xml_reference, document)


_ODD_TEXT = st.text(alphabet=" \t\n0123456789-:TZ.+abcAZ/=ё", max_size=30)
_EDGE_TEXT = st.sampled_from(
    [
        *("", " ", "2026-01-01", " 2026-01-01 ", "2026-11-23T10:00:00Z", "1250.00", " 1250.00 "),
        *("1E3", "QUJD", "QU JD", "true", " RU-FSSP ", "a\tb\nc", "\u00a0x\u00a0", "\u2003"),
    ]
)
_ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    _ODD_TEXT,
    _EDGE_TEXT,
    st.lists(_ODD_TEXT, max_size=2),
    st.just({}),
    st.dictionaries(st.sampled_from(["Kind", "Value", "Name", "x"]), _ODD_TEXT, max_size=2),
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if len(path) >= 2 else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _mutate(draw: Any, document: dict[str, Any]) -> dict[str, Any]:
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(document)))
        action = draw(st.sampled_from(["retext", "retext", "replace", "delete", "add", "wrap"]))
        node = document
        for step in path[:-1]:
            node = node[step]
        key = path[-1]
        if action == "retext" and isinstance(node[key], str):
            # Same JSON type, odd text: mostly built by the fast path, invalid or not.
            node[key] = draw(st.one_of(_ODD_TEXT, _EDGE_TEXT, st.text(max_size=20)))
        elif action == "replace":
            node[key] = draw(_ODD_VALUES)
        elif action == "delete" and isinstance(node, dict):
            del node[key]
        elif action == "add" and isinstance(node, dict):
            node[draw(st.sampled_from(["Extra", "Kind", "Note", "Comment"]))] = draw(_ODD_VALUES)
        elif action == "wrap":
            node[key] = node[key][0] if isinstance(node[key], list) and node[key] else [node[key]]
    return document


@pytest.mark.parametrize(
    "name",
    ["cis-enforcement.Request", "cis-enforcement.Response", "ru-kz-supreme-courts.Request"],
)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # Each example runs xmlschema's encoder; shrinking a failure costs minutes, not hours.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
)
@given(data=st.data())
def test_mutated_document_gives_what_the_reference_gives(name: str, data) -> None:
    document = vary_document(data.draw, load_json(INVALID.parent / "valid" / f"{name}.json"))
    document = _mutate(data.draw, document)
    fast = build(_PLAN, document)
    reference = _outcome(json_to_xml_reference, document)
    if fast is not None:
        assert reference == ("xml", to_bytes(fast))
    assert _outcome(json_to_xml, document) == reference


_TYPES = _REGISTRY.xmlschema.maps.types
_MANY = settings(max_examples=500, deadline=None)  # a parse each: cheap


@_MANY
@given(
    value=st.one_of(
        st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z"),
        st.builds(
            lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}",
            st.integers(0, 10000),
            st.integers(0, 13),
            st.integers(0, 32),
        ),
    )
)
def test_quick_date_accepts_only_what_xmlschema_accepts(value: str) -> None:
    if _quick_date(value):
        _TYPES[f"{_XS}date"].to_python(value)


@_MANY
@given(
    value=st.builds(
        lambda d, h, mi, s, frac, zone: f"{d}T{h:02d}:{mi:02d}:{s:02d}{frac}{zone}",
        st.sampled_from(["2026-11-23", "2024-02-29", "2025-02-29", "0001-01-01", "9999-12-31"]),
        st.integers(0, 25),
        st.integers(0, 61),
        st.integers(0, 61),
        st.sampled_from(["", ".5", ".123456", ".1234567"]),
        st.one_of(
            st.sampled_from(["", "Z", "+00:00", "-00:00", "+14:00", "-14:01", "+15:00", "+03:60"]),
            st.builds(
                lambda sign, h, m: f"{sign}{h:02d}:{m:02d}",
                st.sampled_from("+-"),
                st.integers(0, 99),
                st.integers(0, 99),
            ),
        ),
    )
)
def test_quick_date_time_accepts_only_what_xmlschema_accepts(value: str) -> None:
    if _quick_date_time(value):
        _TYPES[f"{_XS}dateTime"].to_python(value)


@_MANY
@given(
    value=st.one_of(
        st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
        st.text(alphabet="AQgwEIMUYckos048+/=xZ -", max_size=12),
        st.builds(
            lambda b, cut: base64.b64encode(b).decode()[:cut],
            st.binary(min_size=1, max_size=12),
            st.integers(0, 16),
        ),
    )
)
def test_quick_base64_accepts_exactly_the_canonical_values_xmlschema_accepts(value: str) -> None:
    if _quick_base64(value):
        _TYPES[f"{_XS}base64Binary"].to_python(value)
    if " " not in value:  # the quick check leaves only spaced values to the reference
        assert _quick_base64(value) == _accepted(f"{_XS}base64Binary", value)


@_MANY
@given(value=st.text(alphabet="0123456789abcdefABCDEFgG ", max_size=10))
def test_quick_hex_accepts_exactly_what_xmlschema_accepts(value: str) -> None:
    if " " not in value:
        assert _quick_hex(value) == _accepted(f"{_XS}hexBinary", value)


def _accepted(type_name: str, value: str) -> bool:
    try:
        _TYPES[type_name].to_python(value)
    except (ValueError, TypeError, ArithmeticError):
        return False
    return True

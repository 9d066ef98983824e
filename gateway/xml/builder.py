"""JSON → XML on the hot path: an lxml tree built from a plan compiled once from the XSD.

Theory of operation. xmlschema's encoder (:func:`gateway.xml.convert.json_to_xml_reference`)
defines what the JSON of a document becomes in XML, but it is pure Python: about 4.5 ms for a
10 KB request (docs/documents.md). :func:`compile_plan` walks the same xmlschema components
once per registry into a :class:`DocumentPlan`; :func:`build` then makes the tree with
``etree.SubElement`` alone. For every element the plan holds its qualified tag and either

* a :class:`LeafPlan`: how a JSON value becomes text — the whitespace normalisation and the
  builtin conversion functions that xmlschema's encoder itself calls, so the text is the
  reference's text; or
* a :class:`ComplexPlan`: the children by local name in schema order, with their occurrence
  bounds, and the model groups (sequence, choice) saying which combinations are allowed.

:func:`build` returns ``None`` for anything it cannot map with certainty — an unknown key, a
wrong JSON type, a missing required element, two branches of a choice, a value xmlschema would
not convert, an empty list, characters XML cannot hold — and the caller runs the reference,
which reports those problems exactly as before. Schema features our documents do not use
(attributes with defaults, simple or mixed content, wildcards inside a kind, repeated or
``all`` groups, substitution groups, lists and unions) make a type *unsupported*: documents
using it always take the reference. The equality of both paths is tested over every valid
example and over generated documents (tests/xml/test_fast_builder.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from lxml import etree
from xmlschema import XMLSchema10
from xmlschema.validators import (
    XsdAtomicBuiltin,
    XsdAtomicRestriction,
    XsdComplexType,
    XsdElement,
    XsdGroup,
)

from gateway.model.profiles import ENVELOPE_NAMESPACE, PROFILES

_ENV = f"{{{ENVELOPE_NAMESPACE}}}"
_XS = "{http://www.w3.org/2001/XMLSchema}"
_ENVELOPE_TAG = f"{_ENV}Envelope"
_HEADER_TAG = f"{_ENV}Header"
_BODY_TAG = f"{_ENV}Body"


class _Unmappable(Exception):
    """The plan cannot build this input with certainty; the reference must."""


@dataclass(frozen=True, slots=True)
class LeafPlan:
    """A simple-typed element: ``text(value)`` is the text xmlschema would write."""

    text: Callable[[Any], str]
    """Raises ``_Unmappable`` for a value of the wrong JSON type or one xmlschema rejects."""


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """A model group (sequence or choice) of a complex type, for the occurrence check."""

    choice: bool
    optional: bool
    """``minOccurs="0"``: the whole group may be absent."""
    particles: tuple[str | GroupPlan, ...]
    """Local names of child elements, or nested groups, in schema order."""
    names: frozenset[str]
    """Every element name within the group, at any depth: the group is present if any is."""


@dataclass(frozen=True, slots=True)
class ChildPlan:
    """One child element declaration: its tag, bounds and content."""

    tag: str
    min_occurs: int
    max_occurs: int | None
    """``None``: unbounded."""
    repeats: bool
    """``maxOccurs`` > 1: the JSON value is always a list."""
    content: LeafPlan | ComplexPlan


@dataclass(slots=True)
class ComplexPlan:
    """A complex type with element-only content (mutable only while being compiled)."""

    children: dict[str, ChildPlan] = field(default_factory=dict)
    """By local name, in schema order: the order the builder writes them in."""
    model: GroupPlan | None = None
    unsupported: str | None = None
    """Why the builder never builds this type (always the reference), or ``None``."""
    required: tuple[str, ...] | None = None
    """For a flat sequence of elements: the names that must be present; ``None`` for other
    models, which :func:`_group_allows` checks."""


@dataclass(frozen=True, slots=True)
class DocumentPlan:
    """Everything :func:`build` needs, for one schema registry."""

    header: ComplexPlan
    kinds: dict[tuple[str, str], ChildPlan]
    """``(agreement, kind)`` → the kind's global element in the profile namespace."""
    nsmaps: dict[str, dict[str, str]]
    """By agreement: the prefixes declared on the root, as the reference declares them."""


def compile_plan(schema: XMLSchema10, nsmaps: Mapping[str, Mapping[str, str]]) -> DocumentPlan:
    """Walk the schema's components once; ``nsmaps``: by agreement, the prefixes to declare on
    the root. Use ``SchemaRegistry.document_plan`` (cached), which passes both: the registry
    imports this module, so this one takes values rather than the registry."""
    compiler = _Compiler()
    maps = schema.maps
    envelope = maps.elements[_ENVELOPE_TAG]
    envelope_type = envelope.type
    # envelope.xsd declares the Envelope with element-only content (Header, Body, Signatures).
    assert isinstance(envelope_type, XsdComplexType) and isinstance(envelope_type.content, XsdGroup)
    header = next(e for e in envelope_type.content.iter_elements() if e.name == _HEADER_TAG)
    kinds: dict[tuple[str, str], ChildPlan] = {}
    for agreement, profile in PROFILES.items():
        for element in maps.elements.values():
            if isinstance(element, XsdElement) and element.target_namespace == profile.namespace:
                kinds[(agreement, element.local_name)] = compiler.child(element)
    return DocumentPlan(
        header=compiler.complex(header.type),
        kinds=kinds,
        nsmaps={agreement: dict(nsmap) for agreement, nsmap in nsmaps.items()},
    )


def build(plan: DocumentPlan, document: Any) -> etree._Element | None:
    """The envelope for ``document``, or ``None`` when only the reference can say what it is.

    The tree equals, to the byte after ``to_bytes``, what the reference builds. It is not
    schema-validated here: callers run :func:`gateway.xml.validate.validate` on it."""
    try:
        if not isinstance(document, Mapping) or set(document) != {"header", "body"}:
            return None
        header, body = document["header"], document["body"]
        if not isinstance(header, Mapping) or not isinstance(body, Mapping) or len(body) != 1:
            return None
        agreement = header.get("Agreement")
        ((kind, value),) = body.items()
        if type(agreement) is not str or type(kind) is not str:
            return None
        nsmap = plan.nsmaps.get(agreement)
        kind_plan = plan.kinds.get((agreement, kind))
        if nsmap is None or kind_plan is None:
            return None
        root = etree.Element(_ENVELOPE_TAG, nsmap=nsmap)
        _fill(etree.SubElement(root, _HEADER_TAG, Id="header"), plan.header, header)
        _element(etree.SubElement(root, _BODY_TAG, Id="body"), kind_plan, value)
        return root
    except (_Unmappable, ValueError, TypeError):
        # ValueError: lxml refuses text XML cannot hold (control characters, lone
        # surrogates); TypeError: keys or values JSON cannot produce. The reference fails
        # on both in its own order, with its own problems.
        return None


def _element(parent: etree._Element, child: ChildPlan, value: Any) -> None:
    node = etree.SubElement(parent, child.tag)
    content = child.content
    if isinstance(content, LeafPlan):
        node.text = content.text(value)
    elif value is None:
        _fill(node, content, {})  # xmlschema writes an empty element for null
    elif type(value) is dict or isinstance(value, Mapping):
        _fill(node, content, value)
    else:
        raise _Unmappable


def _fill(node: etree._Element, plan: ComplexPlan, value: Mapping[str, Any]) -> None:
    if plan.unsupported is not None:
        raise _Unmappable
    children = plan.children
    for key in value:
        if key not in children:
            raise _Unmappable
    if plan.required is not None:
        # A flat sequence (most types): each required child present, bounds checked below.
        for name in plan.required:
            if name not in value:
                raise _Unmappable
    elif plan.model is None or not _group_allows(plan.model, _counts(value, children), children):
        raise _Unmappable
    for name, child in children.items():
        if name not in value:
            continue
        item = value[name]
        if child.repeats:
            # The one JSON form of a repeating element is a non-empty list (xmlschema writes
            # an empty element for an empty list).
            if type(item) is not list or not (
                max(child.min_occurs, 1) <= len(item) <= (child.max_occurs or len(item))
            ):
                raise _Unmappable
            for one in item:
                _element(node, child, one)
        elif type(item) is list:
            raise _Unmappable
        else:
            _element(node, child, item)


def _counts(value: Mapping[str, Any], children: dict[str, ChildPlan]) -> dict[str, int]:
    return {
        key: len(item) if children[key].repeats and type(item) is list else 1
        for key, item in value.items()
    }


def _group_allows(group: GroupPlan, counts: dict[str, int], children: dict[str, ChildPlan]) -> bool:
    """Whether the children present (with their counts) fit the group, as XSD would judge."""
    present = [p for p in group.particles if _present(p, counts)]
    if not present:
        return group.optional or _emptiable(group, children)
    if group.choice:
        return len(present) == 1 and _particle_allows(present[0], counts, children)
    return all(_particle_allows(p, counts, children) for p in group.particles)


def _particle_allows(
    particle: str | GroupPlan, counts: dict[str, int], children: dict[str, ChildPlan]
) -> bool:
    if isinstance(particle, GroupPlan):
        return _group_allows(particle, counts, children)
    child = children[particle]
    count = counts.get(particle, 0)
    return child.min_occurs <= count and (child.max_occurs is None or count <= child.max_occurs)


def _present(particle: str | GroupPlan, counts: dict[str, int]) -> bool:
    if isinstance(particle, GroupPlan):
        return not particle.names.isdisjoint(counts)
    return particle in counts


def _emptiable(group: GroupPlan, children: dict[str, ChildPlan]) -> bool:
    def empty(p: str | GroupPlan) -> bool:
        if isinstance(p, GroupPlan):
            return p.optional or _emptiable(p, children)
        return children[p].min_occurs == 0

    parts = [empty(p) for p in group.particles]
    return any(parts) if group.choice else all(parts)


class _Compiler:
    """Turns xmlschema components into plans, each type once (types are shared)."""

    def __init__(self) -> None:
        self._types: dict[int, LeafPlan | ComplexPlan] = {}

    def child(self, element: XsdElement) -> ChildPlan:
        max_occurs = element.max_occurs
        return ChildPlan(
            tag=element.name,
            min_occurs=element.min_occurs,
            max_occurs=max_occurs,
            repeats=max_occurs is None or max_occurs > 1,
            content=self.content(element),
        )

    def content(self, element: XsdElement) -> LeafPlan | ComplexPlan:
        xsd_type = element.type
        known = self._types.get(id(xsd_type))
        if known is not None:
            return known
        if xsd_type.is_simple():
            plan: LeafPlan | ComplexPlan = _leaf(xsd_type)
            self._types[id(xsd_type)] = plan
            return plan
        return self.complex(xsd_type)

    def complex(self, xsd_type: Any) -> ComplexPlan:
        known = self._types.get(id(xsd_type))
        if isinstance(known, ComplexPlan):
            return known
        plan = ComplexPlan()
        self._types[id(xsd_type)] = plan  # before the children: a type may contain itself
        plan.unsupported = _unsupported_type(xsd_type)
        if plan.unsupported is None:
            plan.model, plan.unsupported = self._group(xsd_type.content, plan)
        model = plan.model
        if model is not None and not model.choice and not model.optional:
            names = [p for p in model.particles if isinstance(p, str)]
            if len(names) == len(model.particles):  # a flat sequence of elements
                plan.required = tuple(n for n in names if plan.children[n].min_occurs)
        return plan

    def _group(self, group: Any, plan: ComplexPlan) -> tuple[GroupPlan | None, str | None]:
        if not isinstance(group, XsdGroup) or group.ref is not None:
            return None, "a model group reference or an unknown content kind"
        if group.model not in ("sequence", "choice") or group.max_occurs != 1:
            return None, f"an {group.model} group or a repeated group"
        particles: list[str | GroupPlan] = []
        names: set[str] = set()
        for item in group:
            if isinstance(item, XsdGroup):
                nested, why = self._group(item, plan)
                if nested is None:
                    return None, why
                particles.append(nested)
                names |= nested.names
            elif isinstance(item, XsdElement):
                name = item.local_name
                if (
                    name in plan.children
                    or item.abstract
                    or item.name in item.maps.substitution_groups
                    or item.max_occurs == 0
                ):
                    return None, f"element {name} repeats, is abstract or heads a substitution"
                plan.children[name] = self.child(item)
                particles.append(name)
                names.add(name)
            else:
                return None, "a wildcard (xs:any)"
        return (
            GroupPlan(
                choice=group.model == "choice",
                optional=group.min_occurs == 0,
                particles=tuple(particles),
                names=frozenset(names),
            ),
            None,
        )


def _unsupported_type(xsd_type: Any) -> str | None:
    if xsd_type.has_simple_content() or xsd_type.mixed:
        return "simple or mixed content"
    for attribute in xsd_type.attributes.values():
        # The JSON cannot carry attributes, so the reference writes none unless the schema
        # supplies a value itself.
        if getattr(attribute, "default", None) is not None or getattr(attribute, "fixed", None):
            return "an attribute with a default or fixed value"
    return None


def _leaf(xsd_type: Any) -> LeafPlan:
    """The text of a simple value, by the steps of xmlschema's ``raw_encode``: normalise
    (outermost type first), then the builtin's conversion (``from_python`` for booleans and
    integers; for strings, the normalised text if ``to_python`` accepts it)."""
    chain: list[XsdAtomicRestriction | XsdAtomicBuiltin] = []
    current = xsd_type
    while not isinstance(current, XsdAtomicBuiltin):
        if not isinstance(current, XsdAtomicRestriction) or current.is_list() or current.is_union():
            return LeafPlan(_never)
        chain.append(current)
        current = current.base_type
    builtin = current
    chain.append(builtin)
    normalisers = tuple(t.normalize for t in chain if t.white_space in ("replace", "collapse"))
    maps = xsd_type.maps
    # The same JSON types the reference's _check_json_type demands.
    if xsd_type.is_derived(maps.types[f"{_XS}boolean"]):
        return LeafPlan(_boolean_text(builtin.from_python))
    if xsd_type.is_derived(maps.types[f"{_XS}integer"]):
        return LeafPlan(_integer_text(builtin.from_python, builtin.instance_types))
    to_python = None if builtin.to_python is str else builtin.to_python
    quick = _QUICK_ACCEPT.get(builtin.name or "")
    return LeafPlan(_string_text(normalisers, to_python, quick))


def _never(value: Any) -> str:
    raise _Unmappable


def _boolean_text(from_python: Callable[[Any], str]) -> Callable[[Any], str]:
    texts = {True: from_python(True), False: from_python(False)}

    def text(value: Any) -> str:
        if type(value) is not bool:
            raise _Unmappable
        return texts[value]

    return text


def _integer_text(from_python: Callable[[Any], str], instance_types: Any) -> Callable[[Any], str]:
    if not isinstance(0, instance_types):
        return _never

    def text(value: Any) -> str:
        if type(value) is not int:
            raise _Unmappable
        return from_python(value)

    return text


def _string_text(
    normalisers: tuple[Callable[[str], str], ...],
    to_python: Callable[[str], Any] | None,
    quick: Callable[[str], bool] | None,
) -> Callable[[Any], str]:
    if not normalisers and to_python is None:
        # xs:string and its restrictions (most of our fields): the value itself.
        def verbatim(value: Any) -> str:
            if type(value) is not str:
                raise _Unmappable
            return value

        return verbatim

    def text(value: Any) -> str:
        if type(value) is not str:
            raise _Unmappable
        result: str = value
        for normalise in normalisers:
            result = normalise(result)
        if to_python is not None and not (
            (quick is not None and quick(result)) or _accepts(to_python, result)
        ):
            raise _Unmappable  # xmlschema writes an empty element for it
        return result

    return text


def _accepts(to_python: Callable[[str], Any], value: str) -> bool:
    try:
        to_python(value)
    except (ValueError, TypeError, ArithmeticError):
        return False
    return True


_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,6})?(?:Z|[+-](\d{2}):(\d{2}))?"
)


def _quick_date(value: str) -> bool:
    """A subset of what elementpath's ``Date10.fromstring`` accepts, in C-speed steps: the
    common ``YYYY-MM-DD`` (the parser costs more than building the element)."""
    match = _DATE.fullmatch(value)
    if match is None:
        return False
    try:
        date(*map(int, match.groups()))
    except ValueError:
        return False
    return True


def _quick_date_time(value: str) -> bool:
    """A subset of what ``DateTime10.fromstring`` accepts: hours 00–23, at most six fraction
    digits, a zone within ±14:00 (tests/xml/test_fast_builder.py checks the subset)."""
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second, zone_hours, zone_minutes = match.groups()
    try:
        datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return False
    if zone_hours is None:
        return True
    zone = int(zone_hours) * 60 + int(zone_minutes)
    return int(zone_minutes) < 60 and zone <= 14 * 60


_BASE64 = re.compile(
    r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)?"
)
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")


def _quick_base64(value: str) -> bool:
    """Canonical base64 without spaces, a subset of what ``Base64Binary`` accepts: its pattern
    allows a space after any character and took ~1 ms for a 10 KB embedded file."""
    return _BASE64.fullmatch(value) is not None


def _quick_hex(value: str) -> bool:
    """What ``HexBinary`` accepts, once collapsed: pairs of hex digits."""
    return _HEX.fullmatch(value) is not None


_QUICK_ACCEPT: dict[str, Callable[[str], bool]] = {
    f"{_XS}date": _quick_date,
    f"{_XS}dateTime": _quick_date_time,
    f"{_XS}base64Binary": _quick_base64,
    f"{_XS}hexBinary": _quick_hex,
}
"""Builtins whose values are checked by a fast subset before elementpath's parser."""

"""Bounds on the shape of a submitted JSON document, checked before any conversion.

Converting, validating and signing cost CPU per element (~10 µs a value on a 2-core machine), so
a body within MAX_JSON_BYTES could still burn a minute of a worker: 7.7 MB of repeated
identifiers took 65 s before its 422 (#14). No document the schemas accept comes near these
bounds, so anything past one is refused at once, naming the JSON Pointer and the bound:

* MAX_ARRAY_ITEMS: the largest ``maxOccurs`` of the document schemas (envelope, CIS, supreme
  courts); a longer array is invalid whatever it holds (a test derives it from the XSDs);
* MAX_DEPTH: the schemas nest about a dozen levels; 32 leaves room and stops pathological
  nesting;
* MAX_VALUES: every object, array, string, number and literal counted. The largest valid
  example has about a hundred; 5,000 bounds conversion and validation to ~0.5 s of CPU.

Strings are bounded by MAX_JSON_BYTES alone: their cost is linear and small (the schema's
lengths refuse them later, the longest allowed being ``c:LongText``'s 50,000 characters).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_ARRAY_ITEMS = 100
"""Items one JSON array may hold: the largest maxOccurs of the document schemas."""

MAX_DEPTH = 32
"""Objects and arrays nested in each other, the document itself being level 1."""

MAX_VALUES = 5_000
"""Values in the whole document (objects, arrays and scalars, each counted once)."""


@dataclass(frozen=True, slots=True)
class ShapeProblem:
    """The first bound a document breaks: where (a JSON Pointer) and which."""

    pointer: str
    rule: str
    """``MAX_ARRAY_ITEMS``, ``MAX_DEPTH`` or ``MAX_VALUES``."""
    limit: int


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def shape_problem(document: Any) -> ShapeProblem | None:
    """The first bound ``document`` breaks, or None. Iterative, so the depth of the document
    cannot exhaust the stack; it stops at MAX_VALUES, so its own cost is bounded too."""
    stack: list[tuple[Any, str, int]] = [(document, "", 1)]
    values = 0
    while stack:
        value, pointer, depth = stack.pop()
        values += 1
        if values > MAX_VALUES:
            return ShapeProblem(pointer, "MAX_VALUES", MAX_VALUES)
        if isinstance(value, Mapping | list) and depth > MAX_DEPTH:
            return ShapeProblem(pointer, "MAX_DEPTH", MAX_DEPTH)
        if isinstance(value, Mapping):
            if values + len(stack) + len(value) > MAX_VALUES:  # each child is one more value
                return ShapeProblem(pointer, "MAX_VALUES", MAX_VALUES)
            children = [(v, f"{pointer}/{_escape(str(k))}") for k, v in value.items()]
        elif isinstance(value, list):
            if len(value) > MAX_ARRAY_ITEMS:
                return ShapeProblem(pointer, "MAX_ARRAY_ITEMS", MAX_ARRAY_ITEMS)
            children = [(v, f"{pointer}/{i}") for i, v in enumerate(value)]
        else:
            continue
        stack.extend((v, p, depth + 1) for v, p in reversed(children))
    return None


__all__ = ["MAX_ARRAY_ITEMS", "MAX_DEPTH", "MAX_VALUES", "ShapeProblem", "shape_problem"]

"""The shape bounds of a submitted JSON document (gateway.web.json_shape): no document the
schemas accept breaks one, and each bound names the first place it is broken."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import gateway.schemas
from gateway.schemas import VALID_EXAMPLES_DIR
from gateway.web.json_shape import MAX_ARRAY_ITEMS, MAX_DEPTH, MAX_VALUES, shape_problem

SCHEMAS = Path(gateway.schemas.__file__).parent


def test_the_array_bound_is_the_schemas_largest_max_occurs() -> None:
    """No array the document schemas accept is longer (directory.xsd is not a submission's)."""
    occurs = [
        int(found)
        for xsd in SCHEMAS.glob("*.xsd")
        if xsd.name != "directory.xsd"
        for found in re.findall(r'maxOccurs="(\d+)"', xsd.read_text("utf-8"))
    ]
    assert len(occurs) > 10
    assert max(occurs) == MAX_ARRAY_ITEMS
    examples = list(VALID_EXAMPLES_DIR.glob("*.json"))
    assert examples
    for example_file in examples:
        assert shape_problem(json.loads(example_file.read_text("utf-8"))) is None


def nested(levels: int) -> dict[str, Any]:
    document: dict[str, Any] = {}
    inner = document
    for _ in range(levels - 1):
        inner["a/b"] = {}
        inner = inner["a/b"]
    return document


def test_each_bound_is_exact_and_named_where_broken() -> None:
    assert shape_problem(nested(MAX_DEPTH)) is None
    deep = shape_problem(nested(MAX_DEPTH + 1))
    assert deep is not None and deep.rule == "MAX_DEPTH"
    assert deep.pointer == "/a~1b" * MAX_DEPTH  # JSON Pointer escapes "/" as "~1"

    assert shape_problem({"list": [0] * MAX_ARRAY_ITEMS}) is None
    long = shape_problem({"x": {"list": [0] * (MAX_ARRAY_ITEMS + 1)}})
    assert long is not None and (long.pointer, long.rule) == ("/x/list", "MAX_ARRAY_ITEMS")

    fits = {f"k{i}": 0 for i in range(MAX_VALUES - 1)}  # with the object itself: MAX_VALUES
    assert shape_problem(fits) is None
    wide = shape_problem({**fits, "one": "more"})
    assert wide is not None and wide.rule == "MAX_VALUES"

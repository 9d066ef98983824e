"""JSON ⇄ XML conversion benchmark: ``.venv/bin/python benchmarks/convert_bench.py [--quick]
[--repeats N] [--seconds S]``.

The document is the hop benchmark's 10 KB request (``benchmarks/gateway_hop.py``
``request_document()``, its header completed as the node completes it) and the node's receipt.
Rows:

* ``reference``: :func:`gateway.xml.convert.json_to_xml_reference`, xmlschema's encoder;
* ``fast``: :func:`gateway.xml.convert.json_to_xml`, the plan-driven lxml builder (the hot path);
* ``lxml copy``: the same tree copied element by element with ``etree.SubElement`` by a plain
  loop, no plan and no checks — about what any Python lxml builder of this tree costs;
* ``xml_to_json``: XML → JSON for views (still xmlschema);
* ``parse_untrusted`` and ``validate``: the hardened parser on the request's bytes and libxml2's
  schema check callers run on the built tree, for scale.

Times are CPU µs per document (``time.process_time``: the machine is shared), the median and the
best of the repeats. Before timing, the fast and reference outputs are checked to be the same
bytes. Prints a table and, as the very last line, one JSON object ``{"convert": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lxml import etree  # noqa: E402

from benchmarks.gateway_hop import request_document  # noqa: E402
from gateway.exchange.documents import complete_header  # noqa: E402
from gateway.schemas import VALID_EXAMPLES_DIR  # noqa: E402
from gateway.xml.convert import (  # noqa: E402
    json_to_xml,
    json_to_xml_reference,
    to_bytes,
    xml_to_json,
)
from gateway.xml.parsing import parse_untrusted  # noqa: E402
from gateway.xml.schemas import default_registry  # noqa: E402

RECEIPT = VALID_EXAMPLES_DIR / "cis-enforcement.Receipt.json"
REPEATS = 7
"""Timed repeats per row: the median is the figure, the best shows the noise."""
TARGET_SECONDS = 0.25
"""CPU time per repeat: long enough to average out the timer, short enough for a quick run."""


def _request() -> dict[str, Any]:
    document = request_document()
    document["header"] = dict(
        complete_header(
            document["header"], sender="RU-FSSP", now=datetime.now(UTC), opens_conversation=True
        )
    )
    return document


def _copy_tree(tree: etree._Element) -> Callable[[], Any]:
    def copy() -> etree._Element:
        root = etree.Element(tree.tag, dict(tree.attrib), nsmap=tree.nsmap)
        stack = [(tree, root)]
        while stack:
            source, target = stack.pop()
            for child in source:
                node = etree.SubElement(target, child.tag, dict(child.attrib))
                node.text = child.text
                stack.append((child, node))
        return root

    return copy


def _time(run: Callable[[], Any], repeats: int, seconds: float) -> tuple[float, float]:
    """(median, best) CPU µs per call."""
    start = time.process_time()
    run()
    once = max(time.process_time() - start, 1e-6)
    calls = max(1, int(seconds / once))
    per_call = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            run()
        per_call.append((time.process_time() - start) / calls * 1e6)
    return statistics.median(per_call), min(per_call)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    parser.add_argument("--repeats", type=int, help="timed repeats per row")
    parser.add_argument(
        "--seconds", type=float, default=TARGET_SECONDS, help="CPU seconds per repeat"
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else REPEATS)
    registry = default_registry()
    request = _request()
    receipt = json.loads(RECEIPT.read_text(encoding="utf-8"))
    for document in (request, receipt):
        if to_bytes(json_to_xml(document, registry)) != to_bytes(
            json_to_xml_reference(document, registry)
        ):
            raise SystemExit("the fast builder and the reference disagree: fix before timing")
    request_tree = json_to_xml(request, registry)
    request_bytes = to_bytes(request_tree)
    rows: list[tuple[str, str, Callable[[], Any]]] = [
        ("request", "reference", lambda: json_to_xml_reference(request, registry)),
        ("request", "fast", lambda: json_to_xml(request, registry)),
        ("request", "lxml copy", _copy_tree(request_tree)),
        ("request", "xml_to_json", lambda: xml_to_json(request_tree, registry)),
        ("request", "parse_untrusted", lambda: parse_untrusted(request_bytes)),
        ("request", "validate", lambda: registry.is_valid(request_tree)),
        ("receipt", "reference", lambda: json_to_xml_reference(receipt, registry)),
        ("receipt", "fast", lambda: json_to_xml(receipt, registry)),
    ]
    figures: dict[str, dict[str, float]] = {}
    print(f"request: {len(request_bytes)} bytes unsigned; CPU µs per document")
    print(f"{'document':<10}{'path':<16}{'median µs':>12}{'best µs':>12}")
    for document, path, run in rows:
        median, best = _time(run, repeats, args.seconds)
        figures.setdefault(document, {})[path] = round(median, 1)
        print(f"{document:<10}{path:<16}{median:>12.1f}{best:>12.1f}", flush=True)
    for document, by_path in figures.items():
        speedup = by_path["reference"] / by_path["fast"]
        by_path["speedup"] = round(speedup, 1)
        print(f"{document}: fast is {speedup:.1f}× the reference")
    figures["request"]["bytes"] = len(request_bytes)
    print(json.dumps({"convert": figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

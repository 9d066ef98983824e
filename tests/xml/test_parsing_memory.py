"""Peak memory of one parse of a hostile 16 MiB document: a few times its size at most.

Each case runs in a fresh interpreter that builds the document, resets the kernel's peak-RSS
mark (``/proc/self/clear_refs``), parses, and reads ``VmHWM`` — the true peak of everything the
parse allocated, libxml2's tree included (tracemalloc would see only Python's allocations).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SIZE = 16 * 1024 * 1024
"""The peer endpoint's MAX_MESSAGE_BYTES: the largest document a peer can make us parse."""

PEAK_FACTOR = 4
"""Allowed peak growth in document sizes (plus PEAK_SLACK for the interpreter's own noise). The
worst shape is one huge attribute value: libxml2's input buffer, the value, its tree node and
the Python string the byte count reads come to ~4 times the value."""

PEAK_SLACK = 8 * 1024 * 1024

SHAPES = {
    # name: (expression building the bytes from SIZE, the code expected or "parsed")
    "comments": ('b"<a>" + b"<!---->" * ((SIZE - 8) // 7) + b"</a>"', "XML_COMMENT"),
    "instructions": (
        'b"<a>" + b"<?x?>" * ((SIZE - 8) // 5) + b"</a>"',
        "XML_PROCESSING_INSTRUCTION",
    ),
    "one-crowded-tag": (
        'b"<a" + b"".join(b" a%x=\'\'" % i for i in range(SIZE // 12)) + b"/>"',
        "XML_TOO_MANY_ATTRIBUTES_ON_ELEMENT",
    ),
    "attributes-everywhere": (
        'b"<a>" + (b"<b" + b"".join(b" a%x=\'\'" % i for i in range(32)) + b"/>")'
        ' * (SIZE // 250) + b"</a>"',
        "XML_TOO_MANY_ATTRIBUTES",
    ),
    "namespaces-everywhere": (
        'b"<a>" + (b"<b" + b"".join(b" xmlns:p%x=\'u\'" % i for i in range(32)) + b"/>")'
        ' * (SIZE // 450) + b"</a>"',
        "XML_TOO_MANY_ATTRIBUTES",
    ),
    "one-huge-attribute": ('b"<a x=\'" + b"y" * 9_900_000 + b"\'/>"', "XML_ATTRIBUTES_TOO_LARGE"),
    "one-huge-text": ('b"<a>" + b"x" * (SIZE - 8) + b"</a>"', "XML_TOO_LARGE"),
    "text-in-many-elements": (
        'b"<a>" + (b"<b>" + b"x" * 830 + b"</b>") * 19_000 + b"</a>"',
        "parsed",
    ),
}

PROBE = textwrap.dedent(
    """
    import gc, json, re, sys
    from gateway.model.problems import DocumentRejected
    from gateway.xml.parsing import parse_untrusted

    SIZE = {size}
    data = {expression}
    gc.collect()

    def status(key):
        text = open("/proc/self/status").read()
        return int(re.search(key + r":\\s+(\\d+) kB", text).group(1)) * 1024

    with open("/proc/self/clear_refs", "w") as marks:
        marks.write("5")  # peak RSS := current RSS
    before = status("VmRSS")
    try:
        root = parse_untrusted(data)
        outcome = "parsed"
    except DocumentRejected as error:
        outcome = error.code
    print(json.dumps({{"bytes": len(data), "peak": status("VmHWM") - before, "outcome": outcome}}))
    """
)


@pytest.mark.parametrize("shape", SHAPES)
def test_peak_memory_of_one_hostile_parse(shape: str) -> None:
    expression, expected = SHAPES[shape]
    probe = PROBE.format(size=SIZE, expression=expression)
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == expected
    assert result["bytes"] <= SIZE
    assert result["peak"] <= PEAK_FACTOR * result["bytes"] + PEAK_SLACK, result

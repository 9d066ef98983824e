"""docs/protocol.md's table of parser limits says what the constants say."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.xml import parsing

PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

CONSTANTS = {
    name: getattr(parsing, name)
    for name in dir(parsing)
    if name.startswith("MAX_") or name in {"CHUNK_BYTES", "CROWDED_TAG_SCAN_BYTES"}
}
"""Every limit of the parser: all MAX_* constants, so that a new one must be documented."""


def _documented() -> dict[str, int]:
    text = PROTOCOL_DOC.read_text("utf-8")
    section = text[text.index("## 4. Received XML") :]
    rows = re.findall(r"^\| `([A-Z_]+)` \| (\d+)\b", section, flags=re.MULTILINE)
    return {name: int(value) for name, value in rows}


def test_the_limits_table_matches_the_constants() -> None:
    assert _documented() == CONSTANTS


def test_every_code_the_parser_raises_is_documented() -> None:
    source = Path(parsing.__file__).read_text("utf-8")
    codes = set(re.findall(r'"(XML_[A-Z_]+)"', source))
    section = PROTOCOL_DOC.read_text("utf-8").split("## 4. Received XML")[1]
    assert codes and {c for c in codes if f"`{c}`" not in section} == set()

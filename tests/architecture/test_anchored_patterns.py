"""A pattern written ``^…$`` is used with ``fullmatch``: with ``match`` (or ``search``) its ``$``
also matches before a final newline, so "chief\\n" passed as an official's key name and
"kek-1\\n" as a KEK id. Checked over the source, so a new pattern cannot slip back."""

from __future__ import annotations

import re
from pathlib import Path

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"
_ANCHORED = re.compile(r"""(\w+)\s*=\s*re\.compile\(\s*r?["']\^.*\$["']""")


def test_anchored_patterns_are_used_with_fullmatch() -> None:
    sources = {path: path.read_text("utf-8") for path in GATEWAY.rglob("*.py")}
    names = {name for text in sources.values() for name in _ANCHORED.findall(text)}
    assert {"BODY_ID_PATTERN", "OFFICIAL_NAME_PATTERN", "KEY_ID_PATTERN"} <= names
    misuse = [
        f"{path.relative_to(GATEWAY)}:{number}: {line.strip()}"
        for path, text in sources.items()
        for number, line in enumerate(text.splitlines(), 1)
        for name in names
        if re.search(rf"\b{name}\.(match|search)\(", line)
    ]
    assert misuse == []


def test_a_trailing_newline_is_not_a_name() -> None:
    from gateway.crypto.keys.keystore import OFFICIAL_NAME_PATTERN
    from gateway.model.bodies import BODY_ID_PATTERN

    assert OFFICIAL_NAME_PATTERN.fullmatch("chief")
    assert not OFFICIAL_NAME_PATTERN.fullmatch("chief\n")
    assert not BODY_ID_PATTERN.fullmatch("RU-FSSP\n")

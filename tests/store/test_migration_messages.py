"""Alembic logs each migration's first docstring paragraph as one log line: it must be one line,
or a node's log (text or JSON Lines) gets a line without time, level or logger."""

from __future__ import annotations

import ast
from pathlib import Path

VERSIONS = Path(__file__).resolve().parents[2] / "gateway" / "store" / "migrations" / "versions"


def test_every_migration_message_is_one_line() -> None:
    long = []
    for path in sorted(VERSIONS.glob("0*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if "\n" in doc.split("\n\n", 1)[0]:
            long.append(path.name)
    assert long == []

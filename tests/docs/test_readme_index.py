"""Docs and code drift: every page in docs/ is listed in the README's documentation index."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_doc_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        page.name
        for page in sorted((ROOT / "docs").glob("*.md"))
        if f"(docs/{page.name})" not in readme
    ]
    assert missing == [], f"add these to README.md's documentation table: {missing}"

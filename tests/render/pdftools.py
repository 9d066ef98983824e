"""Poppler helpers for the rendition tests: text of a PDF page by page, and page count."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.tooling import require_tool


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def page_texts(pdf: Path) -> list[str]:
    """The text of each page as ``pdftotext`` extracts it (reading order, not layout).

    One run for the whole file: pdftotext ends every page with a form feed.
    """
    text = subprocess.run(
        [require_tool("pdftotext", "poppler-utils"), "-enc", "UTF-8", str(pdf), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    pages = text.split("\f")
    assert pages[-1].strip() == "", "pdftotext output ends with a form feed"
    return pages[:-1]


def squeeze(text: str) -> str:
    """Text without whitespace: long values wrap across lines, and a test compares the value."""
    return re.sub(r"\s+", "", text)


_FURNITURE = re.compile(r"^(Конфиденциально|Сформировано .*|стр\. \d+ из \d+|.* · [0-9a-f-]{36})$")
"""Running header and footer lines, repeated on every page."""


def without_furniture(pages: list[str]) -> str:
    """The document's text with running headers and footers removed, so that a value that runs
    over a page break reads as one piece."""
    return "\n".join(
        line for page in pages for line in page.splitlines() if not _FURNITURE.match(line.strip())
    )

"""The personal values of the example documents, and a search for them in text and bytes."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from gateway.demo.play import EXAMPLES

_CODE = re.compile(r"^[a-z][a-z-]*$")
"""Enumerated codes (``bank-accounts``, ``debtor``): schema vocabulary, not personal data."""
_SKIP_FIELDS = frozenset({"Sha256", "Content", "MediaType", "Currency", "Size", "Complete"})
"""Digests, base64 payloads, media types, currency codes, sizes and flags: not personal values."""
MIN_VALUE_CHARS = 5
"""Shorter strings (``KZT``, ``ИНН``) would match by chance; the names are all longer."""

EXTRA_FORMS = ("14.05.1981", "Примеров", "Игорь", "Витальевич", "4 812 300", "32 262")
"""Forms of the values that a program might write differently from the document (the birth
date as dd.mm.yyyy, the name parts alone, the amounts)."""


def _leaves(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v, key)
    elif isinstance(value, str):
        yield key, value


def personal_values(*example_names: str) -> list[str]:
    """Every personal string of the named examples' bodies (the header holds only codes)."""
    found: set[str] = set(EXTRA_FORMS)
    for name in example_names:
        document = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
        for key, text in _leaves(document["body"]):
            if key in _SKIP_FIELDS or _CODE.match(text) or len(text) < MIN_VALUE_CHARS:
                continue
            found.add(text)
    return sorted(found)


def text_forms(value: str) -> set[str]:
    """The value as text, as a Python bytes repr of its UTF-8 (what ``%r`` of bytes prints) and
    JSON-escaped (``\\u041f…``, what ``json.dumps`` prints by default)."""
    return {value, repr(value.encode("utf-8"))[2:-1], json.dumps(value)[1:-1]}


def found_in_text(text: str, values: Iterable[str]) -> list[str]:
    return [v for v in values if any(form in text for form in text_forms(v))]


def encodings(value: str) -> list[bytes]:
    """UTF-8 and, where every character exists there, cp1251 (Windows Cyrillic)."""
    forms = [value.encode("utf-8")]
    with contextlib.suppress(UnicodeEncodeError):  # cp1251 lacks a character: no such form
        forms.append(value.encode("cp1251"))
    return forms


def found_in_bytes(data: bytes, values: Iterable[str]) -> list[str]:
    return [v for v in values if any(form in data for form in encodings(v))]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


class CapturingHandler(logging.Handler):
    """Keeps every record formatted, plus its ``extra`` fields (a JSON log would print them)."""

    _STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
        )
        self.records: list[tuple[str, str]] = []
        """(logger name, formatted text) of every record."""

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        extra = {k: v for k, v in record.__dict__.items() if k not in self._STANDARD}
        if extra:
            text += " " + repr(extra)
        self.records.append((record.name, text))

    def text(self, *, excluding: tuple[str, ...] = ()) -> str:
        """All captured output, or all but that of the loggers named (and their children)."""
        return "\n".join(
            text
            for name, text in self.records
            if not any(name == e or name.startswith(e + ".") for e in excluding)
        )

"""The one check of text entering from the local side: only characters XML 1.0 allows.

Every string a case system sends in JSON and every field a person types into the console ends
up in a signed XML document (or in the audit trail beside one). XML 1.0 cannot carry some
characters at all — most C0 control characters (U+0000–U+0008, U+000B, U+000C,
U+000E–U+001F), lone surrogates, U+FFFE and U+FFFF (the ``Char`` production, XML 1.0 section
2.2) — and lxml refuses to build such a text node. Checked here, at the boundary and before any
conversion, the answer is a 422 naming the field instead of a 500 from deep inside the
converter. The API (:mod:`gateway.web.local_api`) and the console's forms
(:mod:`gateway.web.console`) both call :func:`first_forbidden` / :func:`forbidden_strings`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

XML_CHAR_RULE = "XML 1.0 section 2.2 (Char)"
"""How errors name the rule."""

_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Anything outside the Char production: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] |
[#x10000-#x10FFFF]. Lone surrogates (from a JSON ``\\ud800`` escape) fall outside too."""

MAX_JSON_DEPTH = 200
"""Deeper nesting than this is not walked: Python's json parser already stops at ~1,000 levels
and the XSD has fewer than 20; the bound keeps the walk's own recursion far from the limit."""


@dataclass(frozen=True, slots=True)
class ForbiddenText:
    """One string holding a character XML 1.0 does not allow."""

    pointer: str
    """Where the string is, as an RFC 6901 JSON Pointer (``/body/Request/Debtor/Surname``);
    for a bad object key, the pointer of the object holding it."""
    offset: int
    """Index (0-based, in characters) of the first such character in the string."""
    codepoint: int
    """That character: its code point is shown (``U+0001``), never the text around it."""
    in_key: bool = False
    """True when the character is in an object's key rather than a value."""

    @property
    def char_name(self) -> str:
        return f"U+{self.codepoint:04X}"


def first_forbidden(text: str) -> int | None:
    """Index of the first character of ``text`` that XML 1.0 does not allow, or None."""
    match = _NOT_XML_CHAR.search(text)
    return match.start() if match else None


def _escape(token: str | int) -> str:
    # RFC 6901 section 3: "~" is written "~0" and "/" is written "~1".
    return str(token).replace("~", "~0").replace("/", "~1")


def forbidden_strings(value: Any, pointer: str = "") -> Iterator[ForbiddenText]:
    """Every string (value or key) in a parsed JSON ``value`` holding a forbidden character,
    in document order."""
    yield from _walk(value, pointer, 0)


def _walk(value: Any, pointer: str, depth: int) -> Iterator[ForbiddenText]:
    if isinstance(value, str):
        at = first_forbidden(value)
        if at is not None:
            yield ForbiddenText(pointer or "/", at, ord(value[at]))
        return
    if depth >= MAX_JSON_DEPTH:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            at = first_forbidden(key)
            if at is not None:
                # The key itself is the client's text: the pointer stops at its object.
                yield ForbiddenText(pointer or "/", at, ord(key[at]), in_key=True)
                continue
            yield from _walk(item, f"{pointer}/{_escape(key)}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{pointer}/{index}", depth + 1)


def remedy_ru() -> str:
    """What a person should do, in Russian (shared by the API's problems and the console)."""
    return (
        "Удалите управляющие и иные недопустимые символы (часто попадают в текст при "
        "копировании из других программ); допустимы табуляция и перевод строки."
    )


def without_forbidden(text: str) -> str:
    """``text`` with every character XML 1.0 does not allow removed (to show a form again)."""
    return _NOT_XML_CHAR.sub("", text)


def field_error_ru(text: str) -> str | None:
    """The console's message for a form field holding a forbidden character, or None. The
    form is shown again with those characters removed (:func:`without_forbidden`)."""
    at = first_forbidden(text)
    if at is None:
        return None
    return (
        f"Поле содержало символ U+{ord(text[at]):04X} (позиция {at + 1}), недопустимый в "
        f"XML 1.0 (раздел 2.2, Char); такие символы убраны из поля. Проверьте текст и "
        "отправьте снова."
    )

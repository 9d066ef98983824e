"""Whole numbers read from text someone else wrote: a peer's header, a path, a form, a file name.

``str.isdigit`` says yes to "²" (which ``int`` then refuses: an exception where a refusal was
meant) and to "٣" (which ``int`` reads as 3: a second spelling of the same number), and ``int``
refuses a string of over 4,300 digits. So a number is ASCII digits, and not too many of them.
"""

from __future__ import annotations


def whole_number(text: str, most_digits: int) -> int | None:
    """``text`` as a number when it is 1 to ``most_digits`` ASCII digits; None otherwise."""
    if 0 < len(text) <= most_digits and text.isascii() and text.isdigit():
        return int(text)
    return None

"""Whole numbers from text others wrote: ASCII digits only, and not too many."""

from __future__ import annotations

import pytest

from gateway.model.numbers import whole_number


@pytest.mark.parametrize(
    ("text", "most", "read_as"),
    [
        ("0", 1, 0),
        ("42", 2, 42),
        ("007", 3, 7),
        ("123", 2, None),  # more digits than asked
        ("", 3, None),
        ("²", 3, None),  # str.isdigit says yes; int() refuses it
        ("٣", 3, None),  # int() reads it as 3: a second spelling of a number
        ("1_000", 9, None),  # int() reads it as 1000
        (" 7", 3, None),  # int() strips the space
        ("+7", 3, None),
        ("-1", 3, None),
        ("9" * 5000, 19, None),  # past int()'s 4,300 digits: never handed to it
    ],
)
def test_only_ascii_digits_within_the_bound_are_a_number(
    text: str, most: int, read_as: int | None
) -> None:
    assert whole_number(text, most) == read_as

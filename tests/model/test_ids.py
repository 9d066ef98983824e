"""The node's ids are version 7 UUIDs (RFC 9562 § 5.7): the schema's ``c:Uuid``, ordered by
the millisecond they were made in, and random after that."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

import gateway
from gateway.exchange.documents import complete_header
from gateway.model.ids import time_ordered_uuid

COMMON_XSD = Path(gateway.__file__).parent / "schemas" / "common.xsd"
XS = "{http://www.w3.org/2001/XMLSchema}"


def _schema_uuid_pattern() -> re.Pattern[str]:
    """``c:Uuid``'s pattern as the schema states it (read from the file: no copy to drift)."""
    tree = etree.parse(str(COMMON_XSD))
    (pattern,) = tree.findall(f"{XS}simpleType[@name='Uuid']/{XS}restriction/{XS}pattern")
    return re.compile(pattern.get("value"))


def test_an_id_is_a_version_7_uuid_the_schema_takes() -> None:
    pattern = _schema_uuid_pattern()
    for made in (time_ordered_uuid() for _ in range(200)):
        parsed = uuid.UUID(made)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert pattern.fullmatch(made), made


def test_the_first_48_bits_are_the_millisecond_it_was_made_in() -> None:
    before = time.time_ns() // 1_000_000
    made = time_ordered_uuid()
    after = time.time_ns() // 1_000_000
    assert before <= uuid.UUID(made).int >> 80 <= after


def test_ids_sort_by_the_millisecond_whatever_their_random_bits() -> None:
    lowest, highest = bytes(10), b"\xff" * 10
    assert time_ordered_uuid(1_000, highest) < time_ordered_uuid(1_001, lowest)
    assert time_ordered_uuid(1_000, lowest) < time_ordered_uuid(1_000, highest)


def test_the_other_74_bits_are_random() -> None:
    """All of rand_a (12 bits) and rand_b (62) come from the random input, none of it twice."""
    assert time_ordered_uuid(0, bytes(10)) == "00000000-0000-7000-8000-000000000000"
    assert time_ordered_uuid(0, b"\xff" * 10) == "00000000-0000-7fff-bfff-ffffffffffff"
    # One random bit at a time lands on its own bit of the id: 74 distinct ids.
    singles = {time_ordered_uuid(0, (1 << bit).to_bytes(10, "big")) for bit in range(74)}
    assert len(singles) == 74
    same_millisecond = {time_ordered_uuid(5) for _ in range(10_000)}
    assert len(same_millisecond) == 10_000


def test_the_node_makes_its_message_and_conversation_ids_time_ordered() -> None:
    header = complete_header(
        {"Agreement": "cis-enforcement", "Kind": "Request", "Recipient": "KZ-MJ"},
        sender="RU-FSSP",
        now=datetime(2026, 12, 6, tzinfo=UTC),
        opens_conversation=True,
    )
    assert uuid.UUID(header["MessageId"]).version == 7
    assert uuid.UUID(header["ConversationId"]).version == 7
    assert header["MessageId"] != header["ConversationId"]

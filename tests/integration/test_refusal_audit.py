"""Refusals audited without flooding: per peer, code and minute, the first refusal is an event
of its own and the rest one ``refusals.summary`` when the minute is over; security-relevant
refusals are each an event. Measured on 9f5ab4f: one audit row per refused document, up to
about 4.3 million a day from one peer. On SQLite and PostgreSQL, on a node whose clock the test
moves (the minutes are the node's)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.config import NodeConfig
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from gateway.exchange.refusals import SECURITY_RELEVANT, SUMMARY_KIND, security_relevant
from gateway.store import audit
from gateway.xml.convert import to_bytes
from tests.integration.exchange_world import ENV, Signer, audit_rows, node_config, row_counts

GARBAGE = b"not a document"
"""Refused as XML_MALFORMED: routine, folded into the minute's summary."""
DOCTYPE = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>'
"""Refused as XML_DOCTYPE_FORBIDDEN: an attack on the parser, each audited."""


FRESH = itertools.count()


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(second=5, microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def node(request: pytest.FixtureRequest, world: DemoWorld) -> Iterator[tuple[Node, Clock]]:
    database_url = ""
    if request.param == "postgresql":
        database_url = request.getfixturevalue("pg_schema")("refusals")
    tag = f"refusals-{request.param}-{next(FRESH)}"  # a store of its own per test
    config = node_config(world, "KZ-MJ", tag, database_url=database_url)
    clock = Clock()
    node = Node.from_config(NodeConfig.from_toml(config), clock=clock)
    try:
        yield node, clock
    finally:
        node.close()


def refusal_events(node: Node) -> list[tuple[str, str, str, int]]:
    """``(kind, actor, code, count)`` of every refusal event and summary, oldest first."""
    events = []
    for kind in ("message.rejected", SUMMARY_KIND):
        for row in audit_rows(node.store, kind):
            details = row["details"]
            count = details.get("count", 1)
            events.append(
                (row["seq"], details.get("kind", kind), row["actor"], details["code"], count)
            )
    return [event[1:] for event in sorted(events)]


def test_refusals_are_summed_per_peer_code_and_minute(node: tuple[Node, Clock]) -> None:
    node, clock = node
    before = row_counts(node.store)
    for _ in range(50):
        assert node.receive("RU-FSSP", GARBAGE).code == "XML_MALFORMED"
    node.receive("RU-VS", GARBAGE)
    for _ in range(3):
        assert node.receive("RU-FSSP", DOCTYPE).code == "XML_DOCTYPE_FORBIDDEN"

    # Within the minute: the first of each peer and code, and every security-relevant one.
    assert (
        refusal_events(node)
        == [
            ("message.rejected", "peer:RU-FSSP", "XML_MALFORMED", 1),
            ("message.rejected", "peer:RU-VS", "XML_MALFORMED", 1),
        ]
        + [("message.rejected", "peer:RU-FSSP", "XML_DOCTYPE_FORBIDDEN", 1)] * 3
    )

    clock.now += timedelta(minutes=1)
    node.receive("RU-FSSP", GARBAGE)  # the next minute's first: it closes the last one

    events = refusal_events(node)
    assert events[5:] == [
        ("message.rejected", "peer:RU-FSSP", "XML_MALFORMED", 1),
        ("message.rejected", "peer:RU-FSSP", "XML_MALFORMED", 49),
    ]
    (summary,) = audit_rows(node.store, SUMMARY_KIND)
    assert (
        summary["details"]["minute"]
        == (clock.now - timedelta(minutes=1)).replace(second=0).isoformat()
    )
    # Every refusal is accounted for: events plus the counts of the summaries.
    assert sum(count for *_, count in events) == 50 + 1 + 3 + 1
    assert row_counts(node.store) == before
    with node.store.read() as conn:
        assert audit.verify(conn).intact


def test_the_runtime_flush_writes_a_quiet_minute_and_close_writes_the_rest(
    node: tuple[Node, Clock],
) -> None:
    node, clock = node
    for _ in range(4):
        node.receive("RU-FSSP", GARBAGE)
    assert node.refusals.flush() == 0  # the minute is not over
    clock.now += timedelta(minutes=1)
    assert node.refusals.flush() == 1  # over: its summary, without a refusal to trigger it
    for _ in range(3):
        node.receive("RU-FSSP", GARBAGE)
    assert node.refusals.flush(everything=True) == 1  # at close: the minute in progress too
    assert [count for *_, count in refusal_events(node)] == [1, 3, 1, 2]


@pytest.mark.parametrize(
    ("code", "relevant"),
    [
        ("SENDER_MISMATCH", True),
        ("SIGNATURE_HASH_FAILURE", True),
        ("SIGNATURE_TRY_LATER", False),
        ("XML_ENTITY_FORBIDDEN", True),
        ("XML_MALFORMED", False),
        ("SCHEMA_UNEXPECTED_ELEMENT", False),
        ("WRONG_RECIPIENT", False),
    ],
)
def test_security_relevant_codes(code: str, relevant: bool) -> None:
    assert security_relevant(code) is relevant


def test_docs_list_the_security_relevant_codes() -> None:
    text = (Path(__file__).parents[2] / "docs" / "transport.md").read_text(encoding="utf-8")
    section = text.split("<!-- security-relevant codes:")[1].split("<!-- end -->")[0]
    listed = set(re.findall(r"`([A-Z_]+)`", section.split("-->", 1)[1]))
    assert listed == SECURITY_RELEVANT


def test_a_huge_claimed_message_id_is_refused_not_a_crash(
    node: tuple[Node, Clock], world: DemoWorld
) -> None:
    """Found by benchmarks/fuzz.py: a document claiming a 5,000-character MessageId made the
    refusal's audit event fail (subjects over 4 KiB), and the peer got 500 INTERNAL_ERROR."""
    node, _ = node
    root = Signer.of(world, "RU-FSSP").unsigned("cis-enforcement.Request", datetime.now(UTC))
    root.find(f"{ENV}Header/{ENV}MessageId").text = "a" * 5000
    before = row_counts(node.store)

    outcome = node.receive("RU-FSSP", to_bytes(root))

    # Unsigned: refused at its signatures, with the claimed header read to address the refusal.
    assert outcome.disposition is Disposition.REFUSED
    assert outcome.code == "SIGNATURE_FORMAT_FAILURE"
    assert row_counts(node.store) == before
    (event,) = audit_rows(node.store, "message.rejected")
    assert event["subjects"] == {}  # not a UUID: not recorded
    assert event["details"] == {"code": outcome.code}

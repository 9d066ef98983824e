"""Clock skew between nodes: a document created further in the receiving node's future than
:data:`~gateway.exchange.inbound.MAX_CLOCK_SKEW` is refused with ``CLOCK_SKEW``, naming both
times; within the tolerance it is accepted. The receiver is KZ-MJ with its clock set behind
the sender's (the node's clock is injectable), on SQLite and PostgreSQL; the documents are
signed with RU-FSSP's real keys at the sender's (the real) time."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.config import NodeConfig
from gateway.demo.setup import DemoWorld
from gateway.exchange.inbound import MAX_CLOCK_SKEW
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from tests.integration.exchange_world import (
    Signer,
    audit_rows,
    body_fields,
    header_field,
    node_config,
    row_counts,
)

SENDER = "RU-FSSP"
REQUEST = "cis-enforcement.Request"
FRESH = itertools.count()


class LaggingClock:
    """The receiving node's clock: the real time minus ``behind``."""

    def __init__(self) -> None:
        self.behind = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) - self.behind


@pytest.fixture(params=["sqlite", "postgresql"])
def receiver(
    request: pytest.FixtureRequest, world: DemoWorld
) -> Iterator[tuple[Node, LaggingClock]]:
    database_url = ""
    if request.param == "postgresql":
        database_url = request.getfixturevalue("pg_schema")("skew")
    config = node_config(
        world, "KZ-MJ", f"skew-{request.param}-{next(FRESH)}", database_url=database_url
    )
    clock = LaggingClock()
    node = Node.from_config(NodeConfig.from_toml(config), clock=clock)
    try:
        yield node, clock
    finally:
        node.close()


def test_a_document_from_beyond_the_tolerance_is_refused_naming_both_clocks(
    world: DemoWorld, receiver: tuple[Node, LaggingClock]
) -> None:
    node, clock = receiver
    sender = Signer.of(world, SENDER)
    clock.behind = MAX_CLOCK_SKEW + timedelta(minutes=50)
    before = row_counts(node.store)
    document = sender.document(REQUEST, datetime.now(UTC), Recipient="KZ-MJ")

    answer = node.receive(SENDER, document)

    assert answer.disposition is Disposition.REFUSED
    fields = body_fields(answer.body)
    assert fields["Code"] == "CLOCK_SKEW"
    assert fields["RejectedMessageId"] == header_field(document, "MessageId")
    assert row_counts(node.store) == before  # nothing stored
    assert [r["details"]["code"] for r in audit_rows(node.store, "message.rejected")] == [
        "CLOCK_SKEW"
    ]


def test_a_document_within_the_tolerance_is_accepted(
    world: DemoWorld, receiver: tuple[Node, LaggingClock]
) -> None:
    node, clock = receiver
    sender = Signer.of(world, SENDER)
    clock.behind = MAX_CLOCK_SKEW - timedelta(minutes=2)
    document = sender.document(REQUEST, datetime.now(UTC), Recipient="KZ-MJ")

    assert node.receive(SENDER, document).disposition is Disposition.ACCEPTED

"""Issue finding (purge-trust): purged messages vanished from the API (404) and the console
timeline, though the OpenAPI description promised `purged`. A purged message is now shown as its
tombstone: kind, dates, SHA-256, the policy and the run."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.app.purge import run_purge
from gateway.app.retention import parse_policies
from gateway.demo.setup import DemoWorld
from gateway.exchange.local_service import LocalNodeService
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from gateway.exchange.service import NotFound
from tests.integration.exchange_world import OPERATOR, READ_PURPOSE, node_pair, padded_request

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def nodes(world: DemoWorld) -> Iterator[tuple[Node, Node]]:
    with node_pair(world, "tombstones") as pair:
        yield pair


async def test_a_purged_message_is_answered_with_its_tombstone(nodes: tuple[Node, Node]) -> None:
    ru, kz = nodes
    header, _ = ru.submit(padded_request(), actor="test")
    (claim,) = [c for c in ru.claim_due("w") if c.message_id == header.message_id]
    assert kz.receive(ru.body_id, ru.outgoing(claim).wire).disposition is Disposition.ACCEPTED
    service = LocalNodeService(kz, ThreadPoolExecutor(1))
    before = await service.message(header.message_id, actor=OPERATOR, purpose=READ_PURPOSE)
    assert before.tombstone is None and not before.summary.purged

    policies = parse_policies(
        '[[policy]]\nname = "all-1y"\ncounts_from = "received"\nkeep = "1 year"\n',
        Path("test-retention.toml"),
    )
    report = run_purge(
        kz.store,
        policies,
        datetime.now(UTC) + timedelta(days=400),
        seal=kz.keys.seal(),
        actor="job:purge",
    )
    assert sum(report.purged_by_policy.values()) >= 1

    view = await service.message(header.message_id, actor=OPERATOR, purpose=READ_PURPOSE)
    assert view.summary.purged and view.body is None
    assert view.summary.kind == "Request" and view.summary.sender == "RU-FSSP"
    assert view.summary.document_sha256 == before.summary.document_sha256
    assert view.tombstone is not None
    assert view.tombstone["policy"] == "all-1y"
    assert view.tombstone["purge_run_id"] == report.run_id

    with pytest.raises(NotFound):
        await service.message("00000000-0000-4000-8000-000000000000", actor=OPERATOR, purpose=None)

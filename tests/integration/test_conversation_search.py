"""The conversation list's case number and debtor, and the search by them (issue #15 item 3),
on a real node (gateway.exchange.local_service), on SQLite and on PostgreSQL: found through the
keyed index whatever the case, ё/е, spacing and dashes; masked; withheld from a user without
confidential-reader on a confidential conversation; never in clear in the database; and filled
for conversations recorded before the index existed (``gateway.exchange.listing.reindex``)."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.config import NodeConfig
from gateway.demo.play import example
from gateway.demo.setup import DemoWorld
from gateway.exchange import listing
from gateway.exchange.local_service import LocalNodeService
from gateway.exchange.node import Node
from gateway.exchange.service import Actor, ConversationFilter, Role
from gateway.main import main as gateway
from gateway.store import audit
from gateway.store.tables import conversations, search_tags
from tests.integration.exchange_world import OPERATOR, node_config

READER = Actor("reader-test", frozenset({Role.OPERATOR, Role.CONFIDENTIAL_READER}))


@pytest.fixture(params=["sqlite", "postgresql"])
def node(request: pytest.FixtureRequest, world: DemoWorld) -> Iterator[Node]:
    yield from _node(request, world)


def _node(request: pytest.FixtureRequest, world: DemoWorld) -> Iterator[Node]:
    url = ""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_schema")("search")
    path = node_config(world, "RU-FSSP", f"search-{request.param}", database_url=url, peer_port=0)
    node = Node.from_config(NodeConfig.from_toml(path))
    node.config_path = path  # type: ignore[attr-defined]  # for the command line
    try:
        yield node
    finally:
        node.close()


def _request(surname: str, case: str, *, confidential: bool = False) -> dict[str, Any]:
    document = copy.deepcopy(example("cis-enforcement.Request"))
    document["header"]["Confidential"] = confidential
    body = document["body"]["Request"]
    body["Debtor"]["Individual"]["Surname"] = surname
    body["Proceeding"]["Number"] = case
    return document


async def _found(service: LocalNodeService, query: str, actor: Actor = OPERATOR) -> list[Any]:
    page = await service.list_conversations(
        ConversationFilter(search=query), after=None, limit=50, actor=actor
    )
    return list(page.items)


async def test_search_by_case_number_and_debtor_masked_and_withheld(node: Node) -> None:
    with ThreadPoolExecutor(2) as executor:
        service = LocalNodeService(node, executor)
        plain = await service.submit(_request("Семёнов", "100/26/77001-ИП"), actor=OPERATOR)
        secret = await service.submit(
            _request("Тайнов", "200/26/77001-ИП", confidential=True), actor=OPERATOR
        )
        entity = await service.submit(
            example("cis-enforcement.Request-legal-entity"), actor=OPERATOR
        )

        for query in (
            "100/26/77001-ИП",
            "№ 100/26/77001 – ип",
            "семенов",
            "СЕМЁНОВ  игорь",
            "Семенов Игорь Витальевич",
        ):
            found = await _found(service, query)
            assert [c.conversation_id for c in found] == [plain.conversation_id], query
        row = (await _found(service, "Семенов"))[0]
        assert (row.case_number, row.debtor, row.hidden) == (
            "100/26/77001-ИП",
            "Семёнов И. В.",
            False,
        )
        assert await _found(service, "Семен") == []  # exact after normalisation, not a prefix
        assert await _found(service, "Игорь Витальевич") == []
        organisation = "общество с ограниченной ответственностью «Пример-Транзит»"
        found = await _found(service, organisation, READER)  # the example is confidential
        assert [(c.conversation_id, c.debtor) for c in found] == [
            (entity.conversation_id, "Общество с ограниченной ответственностью «Пример-Транзит»")
        ]
        assert await _found(service, organisation) == []

        # Confidential: an operator's search leaves it out (a hit would tell its debtor), the
        # list shows it with its values withheld; a confidential reader finds it and sees them.
        assert await _found(service, "200/26/77001-ИП") == []
        assert await _found(service, "Тайнов") == []
        only_confidential = await service.list_conversations(
            ConversationFilter(search="Тайнов", confidential=True),
            after=None,
            limit=50,
            actor=OPERATOR,
        )
        assert only_confidential.items == ()
        shown = (await _found(service, "тайнов", READER))[0]
        assert (shown.hidden, shown.case_number, shown.debtor) == (
            False,
            "200/26/77001-ИП",
            "Тайнов И. В.",
        )

        # The unfiltered list carries the values too; the conversation page as well.
        page = await service.list_conversations(
            ConversationFilter(), after=None, limit=50, actor=OPERATOR
        )
        by_id = {c.conversation_id: c for c in page.items}
        assert by_id[plain.conversation_id].debtor == "Семёнов И. В."
        assert by_id[secret.conversation_id].hidden
        view = await service.conversation(plain.conversation_id, actor=OPERATOR, purpose=None)
        assert view.summary.case_number == "100/26/77001-ИП"

    # Nothing in clear: not the names, not the case numbers.
    with node.store.read() as conn:
        rows = conn.execute(
            sa.select(conversations.c.display, search_tags.c.tag).select_from(
                conversations.join(
                    search_tags,
                    search_tags.c.conversation_id == conversations.c.conversation_id,
                )
            )
        ).all()
    blob = b"".join(bytes(v) for row in rows for v in row)
    assert rows and len(rows) >= 8
    for clear in ("Семёнов", "Тайнов", "200/26/77001", "Пример-Транзит", "семенов"):
        assert clear.encode() not in blob


async def test_conversations_recorded_before_the_index_are_reindexed(node: Node) -> None:
    with ThreadPoolExecutor(2) as executor:
        service = LocalNodeService(node, executor)
        made = await service.submit(_request("Старов", "300/26/77001-ИП"), actor=OPERATOR)
        with node.store.transaction() as conn:  # as migration 0012 leaves an older store
            conn.execute(search_tags.delete())
            conn.execute(conversations.update().values(display=None, display_nonce=None))
        assert await _found(service, "Старов") == []
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert gateway(["conversations", "reindex", "--config", str(node.config_path)]) == 0
        assert out.getvalue().startswith("проиндексировано переписок: ")  # this one and earlier
        with node.store.transaction() as conn:
            assert listing.reindex(conn, node.kek_ring, "", 100, node.clock()) == []
        with node.store.read() as conn:
            assert [e.details for e in audit.events(conn) if e.kind == "conversations.reindexed"]
        found = await _found(service, "300/26/77001-ИП")
        assert [(c.conversation_id, c.debtor) for c in found] == [
            (made.conversation_id, "Старов И. В.")
        ]

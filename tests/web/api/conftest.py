"""Fixtures of the local API tests: the in-memory service, seeded, behind a real aiohttp server.

The service is the one double of the node's seam, tests/doubles/local_service.py (the console's
tests use it too); the routes that need a running node are tested on one (test_local_api_roles).

Time is pinned (``NOW``); documents are the schema's own examples (gateway/schemas/examples/valid),
given fresh ids where a test needs many conversations.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient

from gateway.app.context import AppContext, serving_context
from gateway.exchange.service import Actor, Role
from gateway.schemas import EXAMPLES_DIR
from gateway.store.engine import migrate, open_store
from gateway.web.local_api import make_local_api_app
from gateway.web.metrics import GatewayMetrics
from gateway.xml.convert import json_to_xml, to_bytes
from gateway.xml.schemas import default_registry
from tests.doubles.local_service import LocalServiceDouble

EXAMPLES = EXAMPLES_DIR
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
NAMESPACE = uuid.UUID("6f2b0a4e-3c1d-4b8e-9a57-0c3d2e1f4a5b")

OPERATOR = "op-" + "o" * 40
READER = "rd-" + "r" * 40
AUDITOR = "au-" + "a" * 40
ACTORS = {
    OPERATOR: Actor("case-system", frozenset({Role.OPERATOR})),
    READER: Actor("reader", frozenset({Role.OPERATOR, Role.CONFIDENTIAL_READER})),
    AUDITOR: Actor("auditor", frozenset({Role.AUDITOR})),
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


READ_PURPOSE = "Исполнительное производство № 12345/26/77001-ИП: проверка ответа"
"""The purpose stated for reading a document's content (CIS Art. 9.1)."""


def reading(token: str) -> dict[str, str]:
    """Headers of a read of a document's content: the token and a stated purpose."""
    return {**auth(token), "X-Purpose": quote(READ_PURPOSE)}


def example(name: str) -> dict[str, Any]:
    """A valid example document (JSON form), a fresh copy."""
    return json.loads((EXAMPLES / "valid" / f"{name}.json").read_text(encoding="utf-8"))


def fresh(document: dict[str, Any], seed: str, *, confidential: bool = False) -> dict[str, Any]:
    """``document`` with new message and conversation ids derived from ``seed``."""
    doc = copy.deepcopy(document)
    doc["header"]["MessageId"] = str(uuid.uuid5(NAMESPACE, f"message {seed}"))
    doc["header"]["ConversationId"] = str(uuid.uuid5(NAMESPACE, f"conversation {seed}"))
    doc["header"].pop("InReplyTo", None)
    doc["header"]["Confidential"] = confidential
    return doc


@dataclass(frozen=True)
class Seeded:
    """Ids of what the seeded service holds."""

    plain_message: str
    plain_conversation: str
    confidential_message: str
    confidential_conversation: str
    received_message: str
    """A received (inbound), confidential message with our receipt for it."""
    receipt: bytes
    conversations: int


@pytest.fixture(scope="session", autouse=True)
def _schemas_compiled() -> None:
    default_registry()  # ~2 s once, not inside the first test's timing


def seed(service: LocalServiceDouble) -> Seeded:
    request = example("cis-enforcement.Request")
    plain = fresh(request, "plain")
    secret = fresh(request, "secret", confidential=True)
    received = fresh(example("cis-enforcement.Response"), "secret", confidential=True)
    received["header"]["MessageId"] = str(uuid.uuid5(NAMESPACE, "received"))
    receipt = to_bytes_of(example("cis-enforcement.Receipt"))
    count = 0
    for i, doc in enumerate(
        [
            plain,
            secret,
            *(fresh(request, f"more {n}") for n in range(4)),
            fresh(example("ru-kz-supreme-courts.Request"), "sc"),
        ]
    ):
        service.now = NOW - timedelta(hours=10 - i)
        service.messages.pop(doc["header"]["MessageId"], None)
        _run(service.submit(doc, actor=ACTORS[OPERATOR]))
        count += 1
    service.now = NOW
    service.receive(received, receipt)
    return Seeded(
        plain_message=plain["header"]["MessageId"],
        plain_conversation=plain["header"]["ConversationId"],
        confidential_message=secret["header"]["MessageId"],
        confidential_conversation=secret["header"]["ConversationId"],
        received_message=received["header"]["MessageId"],
        receipt=receipt,
        conversations=count,
    )


def to_bytes_of(document: dict[str, Any]) -> bytes:
    return to_bytes(json_to_xml(document))


def _run(coroutine: Awaitable[Any]) -> Any:
    # The double's methods await nothing; drive the coroutine to its end without a loop.
    try:
        coroutine.send(None)  # type: ignore[attr-defined]
    except StopIteration as done:
        return done.value
    raise AssertionError("the in-memory service awaited something")


@pytest.fixture
def service() -> LocalServiceDouble:
    return LocalServiceDouble(NOW, ACTORS)


@pytest.fixture(scope="session")
def _seeded_once() -> tuple[LocalServiceDouble, Seeded]:
    # Conversion and validation take ~40 ms a document: seed once, copy the state per test.
    template = LocalServiceDouble(NOW, ACTORS)
    return template, seed(template)


@pytest.fixture
def seeded(service: LocalServiceDouble, _seeded_once: tuple[LocalServiceDouble, Seeded]) -> Seeded:
    template, ids = _seeded_once
    service.conversations = dict(template.conversations)
    service.messages = dict(template.messages)
    return ids


@pytest.fixture(scope="session")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppContext]:
    """The application context the API's administration routes act through, over a migrated
    SQLite store (these tests administer nothing: tests/app does, over a node's store)."""
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('api-store') / 'gateway.db'}")
    migrate(store.engine)
    yield serving_context(store)
    store.dispose()


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics()


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    service: LocalServiceDouble,
    metrics: GatewayMetrics,
    serving: AppContext,
) -> TestClient:
    """A real server on 127.0.0.1 (pytest-aiohttp) serving the local API over the double."""
    return await aiohttp_client(make_local_api_app(service, metrics, serving))

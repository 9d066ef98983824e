"""Fixtures of the console tests: a real SQLite store for users, the in-memory service
(tests/doubles/local_service.py, shared with the API's tests), a real aiohttp server on loopback
and a client with a cookie jar (plain HTTP requests, no browser).

Time is pinned: ``NOW`` is Monday 23 November 2026, 10:00 UTC; the clock moves only when a test
moves it. Passwords are hashed with a deliberately cheap argon2 (tests only).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher

from gateway.app.context import AppContext, serving_context
from gateway.app.passwords import hash_password
from gateway.app.retention import load_retention
from gateway.app.schedule import ScheduleSettings
from gateway.app.sessions import SessionStore
from gateway.config import NodeConfig
from gateway.crypto.keys.kek import KekRing
from gateway.exchange.service import ConversationSummary, Role
from gateway.schemas import VALID_EXAMPLES_DIR
from gateway.store import messages
from gateway.store.engine import Store, migrate, open_store
from gateway.web.console import NodeIdentity, StoreUserDirectory, make_console_app
from gateway.web.console.sources import (
    StoreAuditTrail,
    admin_holds,
    app_job_runs,
    store_purge_runs,
    store_undelivered,
)
from gateway.xml.schemas import default_registry
from tests.doubles.local_service import LocalServiceDouble
from tests.store import factory

EXAMPLES = VALID_EXAMPLES_DIR
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
NAMESPACE = uuid.UUID("0b6c3f0e-6a51-4d0f-8f0e-7f1d2c3b4a59")
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
"""argon2id at its cheapest: tests sign in dozens of times (never in production)."""

PASSWORD = "верный-пароль-2026"
USERS = {
    "operator1": (Role.OPERATOR,),
    "reader1": (Role.OPERATOR, Role.CONFIDENTIAL_READER),
    "auditor1": (Role.AUDITOR,),
    "admin1": (Role.ADMINISTRATOR,),
}
SCRIPT = "<script>alert('x')</script>"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def uid(seed: str) -> str:
    return str(uuid.uuid5(NAMESPACE, seed))


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class AuditLog:
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    async def __call__(self, actor: str, event: str, details: dict[str, Any]) -> None:
        # The store's audit trail takes scalars only; hold the console to that here.
        assert all(isinstance(v, str | int | bool | type(None)) for v in details.values())
        self.events.append((actor, event, details))

    def of(self, event: str) -> list[tuple[str, dict[str, Any]]]:
        return [(a, d) for a, e, d in self.events if e == event]


@dataclass(frozen=True)
class Seeded:
    cis: str
    """In progress; we (KZ-MJ) are asked by RU-FSSP; due in 2 working days."""
    cis_request: str
    sc: str
    """In progress; we (KZ-VS) are asked by RU-VS; due 3 calendar days ago."""
    sc_request: str
    secret: str
    """Confidential CIS conversation (CIS Art. 16), due far ahead."""
    secret_request: str
    answered: str
    """Closed: answered, its due date long past (must not show as overdue)."""


def _summary(
    conversation_id: str,
    agreement: str,
    requesting: str,
    requested: str,
    *,
    state: str = "in-progress",
    confidential: bool = False,
    deadline: date | None = None,
    opened: datetime = NOW,
    kind: str = "Request",
) -> ConversationSummary:
    return ConversationSummary(
        conversation_id=conversation_id,
        agreement=agreement,
        requesting_party=requesting,
        requested_party=requested,
        opening_kind=kind,
        last_kind=kind,
        state=state,
        confidential=confidential,
        deadline=deadline,
        opened_at=opened,
        updated_at=opened,
    )


def _request(name: str, seed: str, *, confidential: bool = False) -> dict[str, Any]:
    doc = example(name)
    doc["header"]["MessageId"] = uid(f"message {seed}")
    doc["header"]["ConversationId"] = uid(f"conversation {seed}")
    doc["header"]["Confidential"] = confidential
    return doc


def seed(service: LocalServiceDouble) -> Seeded:
    cis = _request("cis-enforcement.Request", "cis")
    body = cis["body"]["Request"]
    body["OtherInformation"] = SCRIPT  # must come out escaped, never run
    service.add_conversation(
        _summary(
            cis["header"]["ConversationId"],
            "cis-enforcement",
            "RU-FSSP",
            "KZ-MJ",
            deadline=date(2026, 11, 25),
            opened=NOW - timedelta(days=20),
        )
    )
    service.add_message(cis, direction="in", receipt=b"<Receipt/>")
    sc = _request("ru-kz-supreme-courts.Request", "sc")
    service.add_conversation(
        _summary(
            sc["header"]["ConversationId"],
            "ru-kz-supreme-courts",
            "RU-VS",
            "KZ-VS",
            deadline=date(2026, 11, 20),
            opened=NOW - timedelta(days=33),
        )
    )
    service.add_message(sc, direction="in")
    secret = _request("cis-enforcement.Request", "secret", confidential=True)
    service.add_conversation(
        _summary(
            secret["header"]["ConversationId"],
            "cis-enforcement",
            "RU-FSSP",
            "KZ-MJ",
            confidential=True,
            deadline=date(2027, 1, 15),
            opened=NOW - timedelta(days=2),
        )
    )
    service.add_message(secret, direction="in")
    answered = _request("cis-enforcement.Request", "answered")
    service.add_conversation(
        _summary(
            answered["header"]["ConversationId"],
            "cis-enforcement",
            "KZ-MJ",
            "RU-FSSP",
            state="answered",
            deadline=date(2026, 10, 1),
            opened=NOW - timedelta(days=80),
        )
    )
    service.add_message(answered, direction="out", delivery_state="delivered")
    return Seeded(
        cis=cis["header"]["ConversationId"],
        cis_request=cis["header"]["MessageId"],
        sc=sc["header"]["ConversationId"],
        sc_request=sc["header"]["MessageId"],
        secret=secret["header"]["ConversationId"],
        secret_request=secret["header"]["MessageId"],
        answered=answered["header"]["ConversationId"],
    )


def seed_many(service: LocalServiceDouble, count: int) -> list[str]:
    """``count`` more conversations (metadata only), newest first in the returned list."""
    ids = []
    for i in range(count):
        cid = uid(f"many {i}")
        service.add_conversation(
            _summary(
                cid,
                "cis-enforcement",
                "RU-FSSP",
                "KZ-MJ",
                state="submitted",
                deadline=date(2027, 2, 1),
                opened=NOW - timedelta(days=100, minutes=i),
            )
        )
        ids.append(cid)
    return ids


@pytest.fixture(scope="session", autouse=True)
def _schemas_compiled() -> None:
    default_registry()  # compiled once per run, not inside the first test's timing


@pytest.fixture(scope="session")
def _template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite store with the test users, copied per test (a copy takes
    milliseconds; migrating takes a fifth of a second)."""
    import asyncio

    path = tmp_path_factory.mktemp("template") / "gateway.db"
    store = open_store(f"sqlite:///{path}")
    migrate(store.engine)
    directory = StoreUserDirectory(store)

    async def add_all() -> None:
        for name, roles in USERS.items():
            await directory.add(name, hash_password(PASSWORD, CHEAP_HASHER), roles, now=NOW)

    asyncio.run(add_all())
    store.dispose()
    return path


@pytest.fixture
def store_url(_template_db: Path, tmp_path: Path) -> str:
    path = tmp_path / "gateway.db"
    shutil.copy(_template_db, path)
    return f"sqlite:///{path}"


@pytest.fixture
def console_store(store_url: str):
    store = open_store(store_url)
    yield store
    store.dispose()


@pytest.fixture
def users(console_store: Store) -> StoreUserDirectory:
    return StoreUserDirectory(console_store)


IDENTITY = NodeIdentity.of("KZ-MJ", "Министерство юстиции Республики Казахстан", "UTC")
"""The console's node in these tests; UTC, so the times tests read are the times they set."""


def store_sources(store: Store, config_path: Path) -> dict[str, Any]:
    """Every source a console needs and its sessions, over a real store (empty: no keys, no
    directory loaded, the default retention policies); a test passes its own to replace any."""

    async def no_keys() -> list[Any]:
        return []

    async def no_directory() -> None:
        return None

    async def retention() -> Any:
        return load_retention(None, config_path)

    return {
        "sessions": SessionStore(store),
        "expiring_keys": no_keys,
        "undelivered": store_undelivered(store),
        "key_entries": lambda actor: no_keys(),
        "directory": no_directory,
        "retention": retention,
        "holds": admin_holds(serving_context(store)),
        "purge_runs": store_purge_runs(store),
        "job_runs": app_job_runs(serving_context(store), ScheduleSettings(UTC)),
        "audit_trail": StoreAuditTrail(store),
    }


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def audit() -> AuditLog:
    return AuditLog()


@pytest.fixture
def service() -> LocalServiceDouble:
    return LocalServiceDouble(NOW)


@pytest.fixture
def seeded(service: LocalServiceDouble) -> Seeded:
    return seed(service)


MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def node_acts(
    console_store: Store, clock: Clock, seeded: Seeded, ring: KekRing, tmp_path: Path
) -> AppContext:
    """The node's context for the console's acts (``make_client(acts=node_acts)``): the case
    acts run through gateway.app on the console's store, which holds the double's CIS
    conversation and its received request, at the console's clock, as KZ-MJ."""
    config = tmp_path / "acts-node.toml"
    config.write_text(
        f'[node]\nbody_id = "KZ-MJ"\ndata_dir = "{tmp_path}"\n\n'
        f'[database]\nurl = "{console_store.engine.url}"\n',
        encoding="utf-8",
    )
    opened = NOW - timedelta(days=20)
    with console_store.transaction() as conn:
        factory.open_conversation(
            conn, opened, seeded.cis, requesting_party="RU-FSSP", requested_party="KZ-MJ"
        )
        header = factory.header(
            seeded.cis, opened, message_id=seeded.cis_request, sender="RU-FSSP", recipient="KZ-MJ"
        )
        messages.insert_received(conn, header, b"<Request/>", ring, opened)
    return serving_context(console_store, NodeConfig.from_toml(config), clock=clock, kek_ring=ring)


@pytest.fixture
def make_client(
    aiohttp_client: Any,
    service: LocalServiceDouble,
    users: StoreUserDirectory,
    console_store: Store,
    clock: Clock,
    audit: AuditLog,
    tmp_path: Path,
) -> MakeClient:
    async def make(*, secure_cookies: bool = False, **kwargs: Any) -> TestClient:
        app = make_console_app(
            kwargs.pop("service", service),
            users,
            secure_cookies=secure_cookies,
            audit=audit,
            clock=clock,
            identity=kwargs.pop("identity", IDENTITY),
            password_hasher=CHEAP_HASHER,
            **{**store_sources(console_store, tmp_path / "node.toml"), **kwargs},
        )
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    return await make_client()


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


async def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    """GET the sign-in page, then POST the form with its CSRF token; the response (no
    redirects followed)."""
    page = await client.get("/login")
    token = csrf_of(await page.text())
    return await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        allow_redirects=False,
    )


async def signed_in(client: TestClient, username: str) -> str:
    """Sign in and return a CSRF token of the new session (from the dashboard)."""
    response = await sign_in(client, username)
    assert response.status == 303, await response.text()
    page = await client.get("/")
    assert page.status == 200
    return csrf_of(await page.text())


READ_PURPOSE = "Исполнительное производство № 1234/26/77001-ИП: проверка ответа"
"""A purpose stated before reading a document's content (CIS Art. 9.1)."""


async def reading_as(client: TestClient, username: str, conversation_id: str) -> str:
    """Sign in and state a purpose for ``conversation_id`` (every document's content is read
    for one); a CSRF token of the session."""
    token = await signed_in(client, username)
    response = await client.post(
        f"/conversations/{conversation_id}/purpose",
        data={"csrf_token": token, "purpose": READ_PURPOSE},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    return token


def copy_of(document: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(document)

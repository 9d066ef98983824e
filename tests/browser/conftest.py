"""Two real nodes (RU-FSSP and KZ-MJ: demo PKI, signed directory, mutual TLS, SQLite stores),
each with its console on a free loopback port, and Debian's Chromium driven by Playwright.

The world, the nodes and the browser are made once per module (about 10 s together); each test
gets a fresh browser context (its own cookies) whose pages record console messages of level
error and page errors: a test fails if any appears.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from argon2 import PasswordHasher

from gateway.app.passwords import hash_password
from gateway.config import NodeConfig
from gateway.demo.play import ADOPT_POLL_SECONDS, example, publish_bound_endpoints
from gateway.demo.setup import build_world
from gateway.exchange.node import Node
from gateway.exchange.service import Role
from gateway.store import tokens
from gateway.web.console import (
    SessionStore,
    StoreUserDirectory,
    make_console_app,
    start_console,
)
from gateway.web.console.identity import node_identity
from gateway.web.console.sources import node_console_sources, store_audit
from gateway.web.runtime import NodeRuntime
from tests.tooling import require_tool

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
BODIES = ("RU-FSSP", "KZ-MJ")
WORLD_AGE = timedelta(days=2)
"""The PKI is made a little before now, as the integration tests do (certificates valid at
signing times in the recent past; the demo CRLs are valid a week)."""

PASSWORD = "браузерный-пароль-2026"
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
"""argon2id at its cheapest: tests only."""

USERS: dict[str, tuple[Role, ...]] = {
    "operator": (Role.OPERATOR,),
    "reader": (Role.OPERATOR, Role.CONFIDENTIAL_READER),
    "admin": (Role.ADMINISTRATOR,),
    "auditor": (Role.AUDITOR,),
}
API_SCOPES = ("operator", "confidential-reader", "administrator", "auditor")
DELIVERY_WAIT_SECONDS = 20.0
PAGE_TIMEOUT_MS = 10_000
"""Longest wait for one page or element: every page renders in milliseconds on loopback."""


@dataclass
class NodeConsole:
    body_id: str
    runtime: NodeRuntime
    url: str
    """The console's base address, ``http://127.0.0.1:<port>``."""
    api: str
    token: str
    audit_events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def node(self) -> Node:
        return self.runtime.node


@dataclass
class Nodes:
    ru: NodeConsole
    kz: NodeConsole
    http: aiohttp.ClientSession

    async def submit_request(
        self,
        *,
        confidential: bool = False,
        requested_deadline: str | None = None,
        document: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A request from RU-FSSP to KZ-MJ through RU's local API (as a case system sends it;
        the example request unless ``document`` is given); returns the API's answer once KZ
        has stored the request."""
        document = document or example("cis-enforcement.Request")
        document["header"]["Confidential"] = confidential
        if requested_deadline is not None:
            document["header"]["RequestedDeadline"] = requested_deadline
        async with self.http.post(
            f"{self.ru.api}/messages",
            json=document,
            headers={"Authorization": f"Bearer {self.ru.token}"},
        ) as response:
            assert response.status in (200, 201, 202), await response.text()
            result = await response.json()
        await self.wait_stored(self.kz, result["conversation_id"], "in-progress")
        return result

    async def wait_stored(self, where: NodeConsole, conversation_id: str, state: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DELIVERY_WAIT_SECONDS
        while True:
            async with self.http.get(
                f"{where.api}/conversations/{conversation_id}",
                headers={"Authorization": f"Bearer {where.token}", "X-Purpose": "browser test"},
            ) as response:
                if response.status == 200:
                    body = await response.json()
                    if body["summary"]["state"] == state:
                        return
            if loop.time() > deadline:
                raise AssertionError(f"{conversation_id} not {state} at {where.body_id} in time")
            await asyncio.sleep(0.1)


async def _start(world_root: Path, body_id: str, config_path: Path) -> NodeConsole:
    node = Node.from_config(NodeConfig.from_toml(config_path))
    now = datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    with node.store.transaction() as conn:
        tokens.create(conn, token, label="browser-tests", scopes=API_SCOPES, now=now)
    # Port 0 everywhere: the nodes bind free ports, then publish_bound_endpoints (in `nodes`)
    # re-issues the directory with them; a quick watcher takes it.
    runtime = NodeRuntime(node, directory_poll_seconds=ADOPT_POLL_SECONDS)
    await runtime.start()
    assert runtime.service is not None
    directory = StoreUserDirectory(node.store)
    for name, roles in USERS.items():
        await directory.add(name, hash_password(PASSWORD, CHEAP_HASHER), roles, now=now)
    console = NodeConsole(
        body_id,
        runtime,
        "",
        f"http://{node.config.api.host}:{runtime.api_port}/api/v1",
        token,
    )
    node_audit = store_audit(node.store, runtime.executor)

    async def audit(actor: str, event: str, details: dict[str, Any]) -> None:
        console.audit_events.append((actor, event, details))
        await node_audit(actor, event, details)

    app = make_console_app(
        runtime.service,
        directory,
        sessions=SessionStore(node.store),
        secure_cookies=False,
        audit=audit,
        identity=node_identity(node),
        password_hasher=CHEAP_HASHER,
        config_hint=str(config_path),
        **node_console_sources(node, runtime.executor),
    )
    runner = await start_console(app, "127.0.0.1", 0)
    runtime.extra_runners.append(runner)
    console.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return console


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def nodes(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Nodes]:
    require_tool("chromium", "chromium")
    root = tmp_path_factory.mktemp("browser-world")
    world = build_world(root, now=datetime.now(UTC) - WORLD_AGE, bodies=BODIES)
    started: list[NodeConsole] = []
    http = aiohttp.ClientSession()
    try:
        for body_id in BODIES:
            started.append(await _start(root, body_id, world.nodes[body_id].config_path))
        await publish_bound_endpoints({c.body_id: c.runtime for c in started})
        yield Nodes(started[0], started[1], http)
    finally:
        await http.close()
        for console in started:
            await console.runtime.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    require_tool("chromium", "chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@dataclass
class BrowserErrors:
    messages: list[str] = field(default_factory=list)
    expected: list[tuple[int, str]] = field(default_factory=list)
    """(HTTP status, path) a test provokes on purpose: Chromium logs every 4xx page as a
    console error, including a form shown again with its errors (422)."""

    def expect(self, status: int, path: str) -> None:
        self.expected.append((status, path))

    def unexpected(self) -> list[str]:
        return [
            m
            for m in self.messages
            if not any(f"status of {s} " in m and p in m for s, p in self.expected)
        ]

    def watch(self, page: Any) -> None:
        page.on(
            "console",
            lambda m: (
                self.messages.append(f"console {m.type}: {m.text} at {m.location}")
                if m.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda e: self.messages.append(f"page error: {e}"))


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Any) -> AsyncIterator[tuple[Any, BrowserErrors]]:
    """A fresh browser context (no cookies); every page opened in it is watched for errors,
    and the test fails if the browser reported any."""
    errors = BrowserErrors()
    ctx = await browser.new_context(locale="ru-RU", viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(PAGE_TIMEOUT_MS)
    ctx.on("page", errors.watch)
    yield ctx, errors
    await ctx.close()
    assert errors.unexpected() == [], errors.unexpected()


async def sign_in(ctx: Any, console: NodeConsole, username: str) -> Any:
    """A new page signed in to ``console`` as ``username``, on the dashboard. The context's
    cookies are cleared first: cookies are per host, not per port, so both consoles on
    127.0.0.1 share one jar and one user at a time is signed in per context."""
    await ctx.clear_cookies()
    page = await ctx.new_page()
    await page.goto(f"{console.url}/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_selector("#logout-button")
    return page


async def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path

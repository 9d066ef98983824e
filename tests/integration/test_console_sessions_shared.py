"""Two ``gateway serve`` processes of one body on one PostgreSQL database share console
sessions: signed in on one, the same cookie is signed in on the other; signed out on the
other, it is signed out on the first; a lock-out counted on one holds on the other. The store
keeps only the SHA-256 of a session id."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp
import pytest
import sqlalchemy as sa
from yarl import URL

from gateway.app.passwords import hash_password
from gateway.demo.setup import DemoWorld
from gateway.exchange.service import Role
from gateway.store.tables import console_sessions
from gateway.web.console import StoreUserDirectory
from gateway.web.console.auth import MAX_FAILED_ATTEMPTS
from tests.integration.exchange_world import node_config, open_node_store, start_serve
from tests.web.console.conftest import CHEAP_HASHER, PASSWORD

pytestmark = [pytest.mark.postgres]

COOKIE = "gateway-console"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _console(output: str) -> str:
    found = re.search(r"консоль (http://\S+)", output)
    assert found, output
    return found.group(1)


async def _csrf(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url, allow_redirects=False) as response:
        found = _CSRF.search(await response.text())
    assert found, f"no CSRF token on {url}"
    return found.group(1)


async def _sign_in(http: aiohttp.ClientSession, base: str, username: str, password: str) -> int:
    token = await _csrf(http, f"{base}/login")
    form = {"username": username, "password": password, "csrf_token": token}
    async with http.post(f"{base}/login", data=form, allow_redirects=False) as response:
        return response.status


async def _dashboard(http: aiohttp.ClientSession, base: str) -> int:
    async with http.get(f"{base}/", allow_redirects=False) as response:
        return response.status


async def test_two_serve_processes_share_sessions(
    world: DemoWorld, pg_schema: Callable[[str], str]
) -> None:
    url = pg_schema("sessions")
    first = node_config(world, "KZ-MJ", "sessions-a", database_url=url, peer_port=0)
    second = node_config(world, "KZ-MJ", "sessions-b", database_url=url, peer_port=0)
    store = open_node_store(first)
    users = StoreUserDirectory(store)
    now = datetime.now(UTC)
    for name in ("operator1", "operator2"):
        await users.add(name, hash_password(PASSWORD, CHEAP_HASHER), (Role.OPERATOR,), now=now)
    a, b = await asyncio.gather(*(asyncio.to_thread(start_serve, c) for c in (first, second)))
    try:
        console_a, console_b = _console(a.output()), _console(b.output())
        assert console_a != console_b
        # One cookie jar for both: as a balancer in front of both would present them.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            assert await _dashboard(http, console_b) == 303  # not signed in anywhere yet
            assert await _sign_in(http, console_a, "operator1", PASSWORD) == 303
            cookie = http.cookie_jar.filter_cookies(URL(console_a))[COOKIE].value
            async with http.get(f"{console_b}/", allow_redirects=False) as response:
                assert response.status == 200
                assert "operator1" in await response.text()

            with store.read() as conn:
                stored = conn.execute(sa.select(console_sessions)).all()
            assert hashlib.sha256(cookie.encode()).digest() in {r.session_hash for r in stored}
            assert cookie not in repr(stored)  # the id itself is nowhere in the table

            token = await _csrf(http, f"{console_b}/")  # a form of process B...
            async with http.post(
                f"{console_b}/logout", data={"csrf_token": token}, allow_redirects=False
            ) as response:
                assert response.status == 303
            http.cookie_jar.update_cookies({COOKIE: cookie})  # ...and the old cookie replayed
            assert await _dashboard(http, console_a) == 303  # signed out on A as well

        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            for _ in range(MAX_FAILED_ATTEMPTS):
                assert await _sign_in(http, console_a, "operator2", "неверный") == 403
            # Locked by A's count: B refuses even the right password.
            assert await _sign_in(http, console_b, "operator2", PASSWORD) == 403
    finally:
        a.stop()
        b.stop()
        store.dispose()

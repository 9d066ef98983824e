"""Console sessions in the store, on both dialects: two session stores on one database see
the same sessions; expiry, sign-out, the stated purposes and the flash travel through the
table; a full table drops anonymous sessions first; only the id's SHA-256 is stored."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa

from gateway.app import sessions as module
from gateway.app.sessions import (
    ANONYMOUS_TIMEOUT,
    IDLE_TIMEOUT,
    TOUCH_EVERY,
    SessionStore,
)
from gateway.exchange.service import Role
from gateway.store import Store
from gateway.store.tables import console_sessions
from tests.store.conftest import NOW

CONVERSATION = "0b6c3f0e-6a51-4d0f-8f0e-7f1d2c3b4a59"


async def test_a_session_is_shared_by_two_stores_on_one_database(store: Store) -> None:
    one, other = SessionStore(store), SessionStore(store)
    session_id, made = await one.new(NOW, username="operator1", roles=frozenset({Role.OPERATOR}))
    with store.read() as conn:
        hashes = conn.execute(sa.select(console_sessions.c.session_hash)).scalars().all()
    assert hashes == [hashlib.sha256(session_id.encode()).digest()]

    seen = await other.get(session_id, NOW + timedelta(minutes=5))
    assert seen is not None
    assert (seen.username, seen.roles, seen.csrf_token) == (
        "operator1",
        frozenset({Role.OPERATOR}),
        made.csrf_token,
    )
    seen.state_purpose(CONVERSATION, "исполнительное производство 12/2026", NOW)
    seen.flash = "Отказ принят к отправке."
    await other.save(session_id, seen)

    back = await one.get(session_id, NOW + timedelta(minutes=6))
    assert back is not None
    assert back.purpose_for(CONVERSATION, NOW) == "исполнительное производство 12/2026"
    assert back.take_flash() == "Отказ принят к отправке."
    await one.save(session_id, back)
    again = await other.get(session_id, NOW + timedelta(minutes=7))
    assert again is not None and again.flash is None  # shown once, wherever

    await other.drop(session_id)
    assert await one.get(session_id, NOW + timedelta(minutes=8)) is None


async def test_idle_and_anonymous_sessions_expire(store: Store) -> None:
    sessions = SessionStore(store)
    signed, _ = await sessions.new(NOW, username="operator1", roles=frozenset({Role.OPERATOR}))
    anonymous, _ = await sessions.new(NOW)
    later = NOW + IDLE_TIMEOUT - TOUCH_EVERY
    assert await sessions.get(signed, later) is not None  # touched: the idle clock restarts
    assert await sessions.get(anonymous, NOW + ANONYMOUS_TIMEOUT) is None
    assert await sessions.get(signed, later + IDLE_TIMEOUT - timedelta(seconds=1)) is not None
    assert await sessions.get(signed, later + 2 * IDLE_TIMEOUT) is None
    assert await sessions.get("not-a-session", NOW) is None


async def test_a_full_table_drops_anonymous_sessions_first(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "MAX_SESSIONS", 3)
    sessions = SessionStore(store)
    kept, _ = await sessions.new(NOW, username="operator1", roles=frozenset({Role.OPERATOR}))
    first_anonymous, _ = await sessions.new(NOW)
    second_anonymous, _ = await sessions.new(NOW + timedelta(seconds=1))
    newest, _ = await sessions.new(NOW + timedelta(seconds=2))
    assert await sessions.count() == 3
    at = NOW + timedelta(seconds=3)
    assert await sessions.get(first_anonymous, at) is None
    for session_id in (kept, second_anonymous, newest):
        assert await sessions.get(session_id, at) is not None

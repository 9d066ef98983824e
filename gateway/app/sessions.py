"""Server-side sessions and their CSRF tokens, in the store (shared by every process).

The browser holds only a random session id (256 bits) in a cookie; everything else — who
signed in, the CSRF token, the purposes stated for confidential conversations — stays on the
server, in the store's ``console_sessions`` table keyed by the SHA-256 of the id (a copy of the
table or a memory dump shows no usable cookie). Every process of a node (``gateway serve
--workers N``, or several hosts behind a balancer on one PostgreSQL) therefore knows every
session: no sticky routing. A session ends after :data:`IDLE_TIMEOUT` without requests, after
:data:`ABSOLUTE_TIMEOUT` whatever happens, or at sign-out. A fresh id is issued at sign-in (no
session fixation).

Anonymous sessions exist only to carry the CSRF token of the sign-in form; they are short-lived
and the first to go when the table is full.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.app.context import Store
from gateway.exchange.service import Role
from gateway.store import console_sessions as rows

SESSION_ID_BYTES = 32
"""256 random bits: an id cannot be guessed, however many sessions exist."""

CSRF_TOKEN_BYTES = 32

IDLE_TIMEOUT = timedelta(minutes=30)
"""A console left alone this long is signed out (an unattended screen with personal data)."""

ABSOLUTE_TIMEOUT = timedelta(hours=10)
"""No session outlives a working day, however active."""

ANONYMOUS_TIMEOUT = timedelta(minutes=15)
"""How long the sign-in form stays usable after it was shown."""

PURPOSE_VALID_FOR = timedelta(minutes=30)
"""How long a purpose stated for a confidential conversation (CIS Art. 9.1) covers further
reads of it in the same session; after that the user states it again."""

MAX_SESSIONS = 10_000
"""Sessions held at once. A node has tens of users; the bound stops a flood of sign-in page
requests from growing the table without end (anonymous sessions are evicted first)."""

TOUCH_EVERY = timedelta(minutes=1)
"""A session's last request is written at most this often (not on every page view): the idle
timeout then ends a session between IDLE_TIMEOUT - TOUCH_EVERY and IDLE_TIMEOUT after its last
request, and reading a page costs no write."""

MAX_PURPOSES_PER_SESSION = 100
"""Confidential conversations one session keeps a stated purpose for at once."""


def _key(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


@dataclass(slots=True)
class Session:
    """One browser's session (mutable: the store updates it in place)."""

    csrf_token: str
    created: datetime
    last_seen: datetime
    username: str | None = None
    """None: anonymous (the sign-in form only)."""
    roles: frozenset[Role] = frozenset()
    purposes: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    """Conversation id -> (stated purpose, when it was stated)."""
    flash: str | None = None
    """A one-time notice for the next page (e.g. "refusal sent")."""
    stored: tuple[str, str | None] = field(default=("{}", None), repr=False, compare=False)
    """Purposes (JSON) and flash as last read or written: what a request changed is saved."""

    @property
    def signed_in(self) -> bool:
        return self.username is not None

    def csrf_ok(self, token: str | None) -> bool:
        """Constant-time comparison of a posted token with the session's."""
        return token is not None and hmac.compare_digest(token.encode(), self.csrf_token.encode())

    def purpose_for(self, conversation_id: str, now: datetime) -> str | None:
        """The purpose stated for ``conversation_id`` in this session, if still valid."""
        stated = self.purposes.get(conversation_id)
        if stated is None:
            return None
        purpose, at = stated
        if now - at > PURPOSE_VALID_FOR:
            del self.purposes[conversation_id]
            return None
        return purpose

    def state_purpose(self, conversation_id: str, purpose: str, now: datetime) -> None:
        if conversation_id not in self.purposes and len(self.purposes) >= MAX_PURPOSES_PER_SESSION:
            oldest = min(self.purposes, key=lambda cid: self.purposes[cid][1])
            del self.purposes[oldest]
        self.purposes[conversation_id] = (purpose, now)

    def take_flash(self) -> str | None:
        message, self.flash = self.flash, None
        return message

    def changes(self) -> dict[str, str | None]:
        """The columns this request changed (purposes stated or expired, a flash set or shown)."""
        purposes, flash = _purposes_text(self.purposes), self.flash
        changed: dict[str, str | None] = {}
        if purposes != self.stored[0]:
            changed["purposes"] = purposes
        if flash != self.stored[1]:
            changed["flash"] = flash
        return changed


def _purposes_text(purposes: dict[str, tuple[str, datetime]]) -> str:
    return json.dumps(
        {cid: [purpose, at.isoformat()] for cid, (purpose, at) in sorted(purposes.items())},
        ensure_ascii=False,
    )


def _purposes(text: str) -> dict[str, tuple[str, datetime]]:
    return {
        cid: (purpose, datetime.fromisoformat(at))
        for cid, (purpose, at) in json.loads(text).items()
    }


def _expires(session: Session) -> datetime:
    if not session.signed_in:
        return session.created + ANONYMOUS_TIMEOUT
    return min(session.last_seen + IDLE_TIMEOUT, session.created + ABSOLUTE_TIMEOUT)


def _roles_text(roles: frozenset[Role]) -> str:
    return ",".join(sorted(role.value for role in roles))


def _roles(text: str) -> frozenset[Role]:
    known = {role.value: role for role in Role}
    return frozenset(known[r] for r in text.split(",") if r in known)


class SessionStore:
    """The node's console sessions in its store. Each call runs in a worker thread (the
    store's engine is synchronous)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def count(self) -> int:
        return await asyncio.to_thread(self._count)

    def _count(self) -> int:
        with self.store.read() as conn:
            return rows.count(conn)

    async def new(
        self, now: datetime, *, username: str | None = None, roles: frozenset[Role] = frozenset()
    ) -> tuple[str, Session]:
        """A new session and its id (the cookie value, of which only the hash is stored)."""
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        session = Session(
            csrf_token=secrets.token_urlsafe(CSRF_TOKEN_BYTES),
            created=now,
            last_seen=now,
            username=username,
            roles=roles,
        )
        row = rows.SessionRow(
            session_hash=_key(session_id),
            csrf_token=session.csrf_token,
            username=username,
            roles=_roles_text(roles),
            created_at=now,
            last_seen=now,
            expires_at=_expires(session),
            purposes=session.stored[0],
            flash=None,
        )
        await asyncio.to_thread(self._insert, row, now)
        return session_id, session

    def _insert(self, row: rows.SessionRow, now: datetime) -> None:
        with self.store.transaction() as conn:
            rows.delete_expired(conn, now)
            if rows.count(conn) >= MAX_SESSIONS:
                excess = rows.count(conn) - MAX_SESSIONS + 1
                if excess > 0:
                    rows.evict(conn, excess)
            rows.insert(conn, row)

    async def get(self, session_id: str | None, now: datetime) -> Session | None:
        """The live session of ``session_id`` (touched), or None (unknown or expired)."""
        if not session_id:
            return None
        return await asyncio.to_thread(self._get, _key(session_id), now)

    def _get(self, key: bytes, now: datetime) -> Session | None:
        with self.store.read() as conn:
            row = rows.live(conn, key, now)
        if row is None:
            return None
        session = Session(
            csrf_token=row.csrf_token,
            created=row.created_at,
            last_seen=row.last_seen,
            username=row.username,
            roles=_roles(row.roles),
            purposes=_purposes(row.purposes),
            flash=row.flash,
            stored=(row.purposes, row.flash),
        )
        if now - session.last_seen >= TOUCH_EVERY:
            session.last_seen = now
            with self.store.transaction() as conn:
                rows.update(conn, key, last_seen=now, expires_at=_expires(session))
        return session

    async def save(self, session_id: str, session: Session) -> None:
        """Write what the request changed in ``session`` (nothing when it changed nothing)."""
        changes = session.changes()
        if changes:
            await asyncio.to_thread(self._update, _key(session_id), changes)
            session.stored = (_purposes_text(session.purposes), session.flash)

    def _update(self, key: bytes, changes: dict[str, str | None]) -> None:
        with self.store.transaction() as conn:
            rows.update(conn, key, **changes)

    async def drop(self, session_id: str | None) -> None:
        if session_id:
            await asyncio.to_thread(self._delete, _key(session_id))

    def _delete(self, key: bytes) -> None:
        with self.store.transaction() as conn:
            rows.delete(conn, key)

"""Server-side sessions and their CSRF tokens.

The browser holds only a random session id (256 bits) in a cookie; everything else — who
signed in, the CSRF token, the purposes stated for confidential conversations — stays on the
server, keyed by the SHA-256 of the id (a memory dump then shows no usable cookie). A session
ends after :data:`IDLE_TIMEOUT` without requests, after :data:`ABSOLUTE_TIMEOUT` whatever
happens, or at sign-out. A fresh id is issued at sign-in (no session fixation).

Anonymous sessions exist only to carry the CSRF token of the sign-in form; they are short-lived
and the first to go when the table is full.

Sessions live in this process's memory: a restart signs everyone out, which is acceptable for
a console, and several console processes need sticky routing (docs/console.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.exchange.service import Role

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
requests from growing memory without end (anonymous sessions are evicted first)."""

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


class SessionStore:
    """Sessions of one console process."""

    def __init__(self) -> None:
        self._sessions: dict[bytes, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def new(
        self, now: datetime, *, username: str | None = None, roles: frozenset[Role] = frozenset()
    ) -> tuple[str, Session]:
        """A new session and its id (the cookie value, not kept here)."""
        self._make_room(now)
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        session = Session(
            csrf_token=secrets.token_urlsafe(CSRF_TOKEN_BYTES),
            created=now,
            last_seen=now,
            username=username,
            roles=roles,
        )
        self._sessions[_key(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None, now: datetime) -> Session | None:
        """The live session of ``session_id`` (touched), or None (unknown or expired)."""
        if not session_id:
            return None
        key = _key(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None
        if self._expired(session, now):
            del self._sessions[key]
            return None
        session.last_seen = now
        return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(_key(session_id), None)

    @staticmethod
    def _expired(session: Session, now: datetime) -> bool:
        if not session.signed_in:
            return now - session.created > ANONYMOUS_TIMEOUT
        return now - session.last_seen > IDLE_TIMEOUT or now - session.created > ABSOLUTE_TIMEOUT

    def _make_room(self, now: datetime) -> None:
        if len(self._sessions) < MAX_SESSIONS:
            return
        for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[key]
        if len(self._sessions) < MAX_SESSIONS:
            return
        # Still full: drop the oldest anonymous sessions, then the least recently used ones.
        victims = sorted(self._sessions.items(), key=lambda kv: (kv[1].signed_in, kv[1].last_seen))
        for key, _ in victims[: len(self._sessions) - MAX_SESSIONS + 1]:
            del self._sessions[key]

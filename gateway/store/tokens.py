"""API tokens for the local API: only a SHA-256 of each token is stored.

Tokens are long random strings (the web layer makes them with ``secrets``), so a fast hash is
the right one here: there is nothing to brute-force, and looking a token up stays one indexed
query. Scopes are short codes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.tables import api_tokens

MIN_TOKEN_LENGTH = 32
"""Below ~190 bits of randomness a token could be guessed; refuse shorter ones."""


@dataclass(frozen=True, slots=True)
class ApiToken:
    token_id: int
    label: str
    user_id: int | None
    scopes: frozenset[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


def token_hash(token: str) -> bytes:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def _token(row: sa.Row) -> ApiToken:
    return ApiToken(
        row.id,
        row.label,
        row.user_id,
        frozenset(filter(None, row.scopes.split(","))),
        row.created_at,
        row.expires_at,
        row.revoked_at,
        row.last_used_at,
    )


def create(
    conn: Connection,
    token: str,
    *,
    label: str,
    scopes: Iterable[str],
    now: datetime,
    expires_at: datetime | None = None,
    user_id: int | None = None,
) -> int:
    """Store a new token's hash; return its id. The token itself is shown once, never stored."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"an API token must be at least {MIN_TOKEN_LENGTH} characters")
    scope_list = sorted(set(scopes))
    if any("," in s or not s for s in scope_list):
        raise ValueError("scopes are non-empty codes without commas")
    return conn.execute(
        api_tokens.insert()
        .values(
            token_hash=token_hash(token),
            label=label,
            user_id=user_id,
            scopes=",".join(scope_list),
            created_at=now,
            expires_at=expires_at,
        )
        .returning(api_tokens.c.id)
    ).scalar_one()


USE_MARKED_EVERY = timedelta(minutes=1)
"""How often a token's last use is written: a request reads its token (a revocation or an
expiry takes effect at once), but a write transaction per request only to move
``last_used_at`` by milliseconds cost more than the request's own work; the last use is
therefore to the minute."""

_FIND = sa.select(api_tokens).where(api_tokens.c.token_hash == sa.bindparam("token_hash"))
_MARK_USED = (
    api_tokens.update()
    .where(api_tokens.c.id == sa.bindparam("token_id"))
    .values(last_used_at=sa.bindparam("now"))
)


def find(conn: Connection, token: str, now: datetime) -> ApiToken | None:
    """The token if it exists, is not revoked and has not expired (a read)."""
    row = conn.execute(_FIND, {"token_hash": token_hash(token)}).first()
    if row is None:
        return None
    found = _token(row)
    return found if found.active(now) else None


def needs_use_mark(found: ApiToken, now: datetime) -> bool:
    """Whether :func:`mark_used` is due (never used, or not within :data:`USE_MARKED_EVERY`)."""
    return found.last_used_at is None or now - found.last_used_at >= USE_MARKED_EVERY


def mark_used(conn: Connection, token_id: int, now: datetime) -> None:
    conn.execute(_MARK_USED, {"token_id": token_id, "now": now})


def find_active(conn: Connection, token: str, now: datetime) -> ApiToken | None:
    """The token if it exists, is not revoked and has not expired; marks it used."""
    found = find(conn, token, now)
    if found is not None:
        mark_used(conn, found.token_id, now)
    return found


def revoke(conn: Connection, token_id: int, now: datetime) -> bool:
    """Revoke a token; False if unknown or already revoked."""
    result = conn.execute(
        api_tokens.update()
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


def list_tokens(conn: Connection) -> list[ApiToken]:
    return [_token(r) for r in conn.execute(sa.select(api_tokens).order_by(api_tokens.c.id))]

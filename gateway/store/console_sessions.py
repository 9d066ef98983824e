"""The console's sessions table: rows keyed by the SHA-256 of the session id.

Policy (timeouts, how many sessions, what a session holds) is the web layer's
(:mod:`gateway.app.sessions`); these functions only read and write rows, with the time
and the expiry passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.tables import console_sessions as table


@dataclass(frozen=True, slots=True)
class SessionRow:
    session_hash: bytes
    csrf_token: str
    username: str | None
    roles: str
    created_at: datetime
    last_seen: datetime
    expires_at: datetime
    purposes: str
    flash: str | None


def insert(conn: Connection, row: SessionRow) -> None:
    conn.execute(
        table.insert().values(
            session_hash=row.session_hash,
            csrf_token=row.csrf_token,
            username=row.username,
            roles=row.roles,
            created_at=row.created_at,
            last_seen=row.last_seen,
            expires_at=row.expires_at,
            purposes=row.purposes,
            flash=row.flash,
        )
    )


def live(conn: Connection, session_hash: bytes, now: datetime) -> SessionRow | None:
    """The row of ``session_hash`` unless it has expired by ``now``."""
    row = conn.execute(
        sa.select(table).where(table.c.session_hash == session_hash, table.c.expires_at > now)
    ).first()
    return SessionRow(**row._mapping) if row is not None else None


def update(conn: Connection, session_hash: bytes, **values: object) -> None:
    """Set some columns of one session (only those given: concurrent requests of the same
    session each change their own fields)."""
    conn.execute(table.update().where(table.c.session_hash == session_hash).values(**values))


def delete(conn: Connection, session_hash: bytes) -> None:
    conn.execute(table.delete().where(table.c.session_hash == session_hash))


def delete_expired(conn: Connection, now: datetime) -> int:
    return conn.execute(table.delete().where(table.c.expires_at <= now)).rowcount


def count(conn: Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def evict(conn: Connection, how_many: int) -> None:
    """Delete ``how_many`` sessions: anonymous ones first, then the least recently used."""
    victims = (
        sa.select(table.c.session_hash)
        .order_by(table.c.username.is_not(None), table.c.last_seen)
        .limit(how_many)
    )
    conn.execute(table.delete().where(table.c.session_hash.in_(victims)))

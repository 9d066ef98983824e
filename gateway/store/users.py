"""Console users: username, argon2 password hash, roles, disabled flag, lock-out counter.

The store never sees a password, only the argon2 hash the web layer made; the lock-out policy
(how many failures, for how long) is the caller's, passed in with the time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.tables import users

ROLE_PATTERN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class User:
    user_id: int
    username: str
    password_hash: str
    """argon2id encoded hash (``$argon2id$v=19$…``)."""
    roles: frozenset[str]
    disabled: bool
    failed_attempts: int
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None

    def locked(self, now: datetime) -> bool:
        """True while a lock-out is in force."""
        return self.locked_until is not None and now < self.locked_until


def _roles_text(roles: Iterable[str]) -> str:
    roles = sorted(set(roles))
    for role in roles:
        if not role or not set(role) <= ROLE_PATTERN_CHARS:
            raise ValueError(f"role {role!r}: lower-case letters, digits, '-' and '_' only")
    return ",".join(roles)


def _user(row: sa.Row) -> User:
    return User(
        row.id,
        row.username,
        row.password_hash,
        frozenset(filter(None, row.roles.split(","))),
        row.disabled,
        row.failed_attempts,
        row.locked_until,
        row.created_at,
        row.last_login_at,
    )


def create(
    conn: Connection, username: str, password_hash: str, roles: Iterable[str], now: datetime
) -> int:
    """Add a user; raises ``sqlalchemy.exc.IntegrityError`` if the username is taken."""
    if not password_hash.startswith("$argon2"):
        raise ValueError("password_hash must be an argon2 encoded hash, never a password")
    return conn.execute(
        users.insert()
        .values(
            username=username,
            password_hash=password_hash,
            roles=_roles_text(roles),
            disabled=False,
            failed_attempts=0,
            created_at=now,
            updated_at=now,
        )
        .returning(users.c.id)
    ).scalar_one()


def get_by_username(conn: Connection, username: str) -> User | None:
    row = conn.execute(sa.select(users).where(users.c.username == username)).first()
    return _user(row) if row else None


def get(conn: Connection, user_id: int) -> User | None:
    row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    return _user(row) if row else None


def claim_sign_in(
    conn: Connection, user_id: int, now: datetime, max_attempts: int, lock_for: timedelta
) -> User | None:
    """Count a sign-in attempt *before* its password is checked, in one statement, unless the
    account is disabled or locked: then None, and no password may be checked. The attempt that
    makes ``max_attempts`` in a row locks the account for ``lock_for`` (counting starts again);
    a right password clears that (:func:`record_login`). Counted first, attempts running at once
    — in one process or in several on one database — get at most ``max_attempts`` passwords
    checked per lock-out; counted after the check, each of them saw the account unlocked."""
    reaches = users.c.failed_attempts + 1 >= max_attempts
    claimed = conn.execute(
        users.update()
        .where(
            users.c.id == user_id,
            users.c.disabled == sa.false(),
            sa.or_(users.c.locked_until.is_(None), users.c.locked_until <= now),
        )
        .values(
            failed_attempts=sa.case((reaches, 0), else_=users.c.failed_attempts + 1),
            locked_until=sa.case((reaches, now + lock_for), else_=users.c.locked_until),
            updated_at=now,
        )
    ).rowcount
    return get(conn, user_id) if claimed else None


def record_login(conn: Connection, user_id: int, now: datetime) -> None:
    """A successful login: reset the counter and any lock-out."""
    conn.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(failed_attempts=0, locked_until=None, last_login_at=now, updated_at=now)
    )


def set_password_hash(conn: Connection, user_id: int, password_hash: str, now: datetime) -> None:
    if not password_hash.startswith("$argon2"):
        raise ValueError("password_hash must be an argon2 encoded hash, never a password")
    conn.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(password_hash=password_hash, updated_at=now)
    )


def set_roles(conn: Connection, user_id: int, roles: Iterable[str], now: datetime) -> None:
    conn.execute(
        users.update().where(users.c.id == user_id).values(roles=_roles_text(roles), updated_at=now)
    )


def set_disabled(conn: Connection, user_id: int, disabled: bool, now: datetime) -> None:
    conn.execute(
        users.update().where(users.c.id == user_id).values(disabled=disabled, updated_at=now)
    )


def list_users(conn: Connection) -> list[User]:
    return [_user(r) for r in conn.execute(sa.select(users).order_by(users.c.username))]

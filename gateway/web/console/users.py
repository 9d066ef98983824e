"""The users seam of the console: who may sign in, with which roles.

:class:`UserDirectory` is what the console and ``gateway users`` call;
:class:`StoreUserDirectory` implements it over the store's ``users`` table
(:mod:`gateway.store.users`), running each call in a worker thread because the store's engine
is synchronous. Records are the store's :class:`gateway.store.users.User`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy.exc

from gateway.exchange.service import Role
from gateway.store import audit
from gateway.store import users as user_table
from gateway.store.engine import Store
from gateway.store.users import User

__all__ = ["USERNAME_PATTERN", "StoreUserDirectory", "User", "UserDirectory", "roles_of"]

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
"""A username: 2-64 lower-case Latin letters, digits, ``.``, ``_``, ``-`` (it is the actor's
name in the audit trail, whose column holds 64 characters, and it is typed at sign-in)."""


def roles_of(user: User) -> frozenset[Role]:
    """The user's roles that the gateway knows; an unknown stored role grants nothing."""
    known = {role.value: role for role in Role}
    return frozenset(known[r] for r in user.roles if r in known)


class UserDirectory(Protocol):
    """The console's users. Every method is a coroutine; time is a parameter."""

    async def get(self, username: str) -> User | None:
        """The user, or None when there is none of that name."""
        ...

    async def add(
        self, username: str, password_hash: str, roles: Iterable[Role], *, now: datetime
    ) -> User:
        """Add a user; raises ``ValueError`` if the name is taken or malformed."""
        ...

    async def disable(self, username: str, *, now: datetime) -> bool:
        """Disable the user (sessions end at their next request); False: no such user."""
        ...

    async def list(self) -> list[User]:
        """Every user, by username."""
        ...

    async def record_failure(
        self, username: str, *, now: datetime, max_attempts: int, lock_for: timedelta
    ) -> User:
        """Count a failed sign-in; at ``max_attempts`` the account is locked for ``lock_for``."""
        ...

    async def record_success(self, username: str, *, now: datetime) -> None:
        """A successful sign-in: reset the failure counter and any lock-out."""
        ...


class StoreUserDirectory:
    """:class:`UserDirectory` over the store's ``users`` table (SQLite or PostgreSQL)."""

    def __init__(self, store: Store, *, audit_actor: str | None = None) -> None:
        self.store = store
        self.audit_actor = audit_actor
        """When set (``gateway users`` passes ``cli:<login>``), adding and disabling a user
        append ``user.added`` / ``user.disabled`` to the audit trail in the same transaction."""

    async def get(self, username: str) -> User | None:
        if not USERNAME_PATTERN.fullmatch(username):
            return None
        return await asyncio.to_thread(self._get, username)

    def _get(self, username: str) -> User | None:
        with self.store.read() as conn:
            return user_table.get_by_username(conn, username)

    async def add(
        self, username: str, password_hash: str, roles: Iterable[Role], *, now: datetime
    ) -> User:
        if not USERNAME_PATTERN.fullmatch(username):
            raise ValueError(
                f"username {username!r}: 2-64 characters of a-z, 0-9, '.', '_', '-', "
                "starting with a letter or digit"
            )
        role_names = sorted({Role(r).value for r in roles})
        if not role_names:
            raise ValueError("a user needs at least one role")
        return await asyncio.to_thread(self._add, username, password_hash, role_names, now)

    def _add(self, username: str, password_hash: str, roles: list[str], now: datetime) -> User:
        try:
            with self.store.transaction() as conn:
                user_id = user_table.create(conn, username, password_hash, roles, now)
                user = user_table.get(conn, user_id)
                if self.audit_actor is not None:
                    audit.append(
                        conn,
                        now=now,
                        actor=self.audit_actor,
                        kind="user.added",
                        subjects={"username": username},
                        details={"roles": ",".join(roles)},
                    )
        except sqlalchemy.exc.IntegrityError:
            raise ValueError(f"username {username!r} is taken") from None
        assert user is not None
        return user

    async def disable(self, username: str, *, now: datetime) -> bool:
        return await asyncio.to_thread(self._disable, username, now)

    def _disable(self, username: str, now: datetime) -> bool:
        with self.store.transaction() as conn:
            user = user_table.get_by_username(conn, username)
            if user is None:
                return False
            user_table.set_disabled(conn, user.user_id, True, now)
            if self.audit_actor is not None:
                audit.append(
                    conn,
                    now=now,
                    actor=self.audit_actor,
                    kind="user.disabled",
                    subjects={"username": username},
                )
            return True

    async def list(self) -> list[User]:
        return await asyncio.to_thread(self._list)

    def _list(self) -> list[User]:
        with self.store.read() as conn:
            return user_table.list_users(conn)

    async def record_failure(
        self, username: str, *, now: datetime, max_attempts: int, lock_for: timedelta
    ) -> User:
        return await asyncio.to_thread(self._failure, username, now, max_attempts, lock_for)

    def _failure(
        self, username: str, now: datetime, max_attempts: int, lock_for: timedelta
    ) -> User:
        with self.store.transaction() as conn:
            user = user_table.get_by_username(conn, username)
            if user is None:
                raise LookupError(f"no user {username!r}")
            return user_table.record_failed_login(conn, user.user_id, now, max_attempts, lock_for)

    async def record_success(self, username: str, *, now: datetime) -> None:
        await asyncio.to_thread(self._success, username, now)

    def _success(self, username: str, now: datetime) -> None:
        with self.store.transaction() as conn:
            user = user_table.get_by_username(conn, username)
            if user is not None:
                user_table.record_login(conn, user.user_id, now)

"""The users seam of the console: who may sign in, with which roles.

:class:`UserDirectory` is what the console and ``gateway users`` call;
:class:`StoreUserDirectory` implements it over the store's ``users`` table
(:mod:`gateway.store.users`), running each call in a worker thread because the store's engine
is synchronous. Records are the store's :class:`gateway.store.users.User`.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy.exc

from gateway.app.context import Store
from gateway.app.users import USERNAME_PATTERN, new_user_roles
from gateway.exchange.service import Role
from gateway.store import users as user_table
from gateway.store.users import User

__all__ = ["USERNAME_PATTERN", "StoreUserDirectory", "User", "UserDirectory", "roles_of"]


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

    async def claim_sign_in(
        self, username: str, *, now: datetime, max_attempts: int, lock_for: timedelta
    ) -> User | None:
        """Count a sign-in attempt before its password is checked (the one making
        ``max_attempts`` locks the account for ``lock_for``); None when the account is locked,
        disabled or gone: then no password may be checked."""
        ...

    async def record_success(self, username: str, *, now: datetime) -> None:
        """A successful sign-in: reset the failure counter and any lock-out."""
        ...


class StoreUserDirectory:
    """:class:`UserDirectory` over the store's ``users`` table (SQLite or PostgreSQL).

    Its ``add`` and ``disable`` record nothing in the audit trail: they seed users where no
    one acts (tests, the demo). An administrator's act goes through :mod:`gateway.app.users`
    (``gateway users``), which checks the role and records it."""

    def __init__(self, store: Store) -> None:
        self.store = store

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
        role_names = new_user_roles(username, roles)  # raises UserRefused, a ValueError
        return await asyncio.to_thread(self._add, username, password_hash, role_names, now)

    def _add(self, username: str, password_hash: str, roles: list[str], now: datetime) -> User:
        try:
            with self.store.transaction() as conn:
                user_id = user_table.create(conn, username, password_hash, roles, now)
                user = user_table.get(conn, user_id)
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
            return True

    async def list(self) -> list[User]:
        return await asyncio.to_thread(self._list)

    def _list(self) -> builtins.list[User]:
        with self.store.read() as conn:
            return user_table.list_users(conn)

    async def claim_sign_in(
        self, username: str, *, now: datetime, max_attempts: int, lock_for: timedelta
    ) -> User | None:
        return await asyncio.to_thread(self._claim, username, now, max_attempts, lock_for)

    def _claim(
        self, username: str, now: datetime, max_attempts: int, lock_for: timedelta
    ) -> User | None:
        with self.store.transaction() as conn:
            user = user_table.get_by_username(conn, username)
            if user is None:
                return None
            return user_table.claim_sign_in(conn, user.user_id, now, max_attempts, lock_for)

    async def record_success(self, username: str, *, now: datetime) -> None:
        await asyncio.to_thread(self._success, username, now)

    def _success(self, username: str, now: datetime) -> None:
        with self.store.transaction() as conn:
            user = user_table.get_by_username(conn, username)
            if user is not None:
                user_table.record_login(conn, user.user_id, now)

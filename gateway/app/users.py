"""The console's users as use cases: add, disable, list (``gateway users``).

Each function takes an :class:`~gateway.app.context.AppContext`, checks the actor's role
(:data:`Action.MANAGE_USERS`) and records a change in the audit trail in the transaction that
makes it. The password arrives hashed: choosing and hashing it (strength rules, scrypt) is the
console's business (:mod:`gateway.app.passwords`), done by the adapter before the call.

Audit events written here::

    user.added      subjects username; details roles
    user.disabled   subjects username
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy.exc

from gateway.app.context import AppContext, require
from gateway.exchange.service import Action, Role
from gateway.store import users as user_table
from gateway.store.users import User

__all__ = [
    "USERNAME_PATTERN",
    "User",
    "UserRefused",
    "add_user",
    "disable_user",
    "list_users",
    "new_user_roles",
    "username_taken",
]

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
"""A username: 2-64 lower-case Latin letters, digits, ``.``, ``_``, ``-`` (it is the actor's
name in the audit trail, whose column holds 64 characters, and it is typed at sign-in)."""


class UserRefused(ValueError):
    """The user cannot be added or disabled as asked; the message names the field and the fix.
    Nothing was changed."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def new_user_roles(username: str, roles: Iterable[Role | str]) -> list[str]:
    """The sorted role names of a user to add, after checking the name and the roles."""
    if not USERNAME_PATTERN.fullmatch(username):
        raise UserRefused(
            "username: 2-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
            "USER_INVALID",
        )
    known = {r.value for r in Role}
    names = sorted({str(r) for r in roles})
    unknown = [r for r in names if r not in known]
    if not names or unknown:
        raise UserRefused(
            f"roles: one or more of {', '.join(sorted(known))}, and no other",
            "USER_INVALID",
        )
    return names


def add_user(
    ctx: AppContext, username: str, password_hash: str, roles: Iterable[Role | str]
) -> User:
    """Add a console user with these roles. Raises :class:`UserRefused` (``USERNAME_TAKEN``
    when the name is in use, ``USER_INVALID`` for a bad name or role)."""
    require(ctx, Action.MANAGE_USERS, username[:64])
    names = new_user_roles(username, roles)
    now = ctx.clock()
    try:
        with ctx.store.transaction() as conn:
            user_id = user_table.create(conn, username, password_hash, names, now)
            user = user_table.get(conn, user_id)
            ctx.audit(
                conn,
                "user.added",
                subjects={"username": username},
                details={"roles": ",".join(names)},
                now=now,
            )
    except sqlalchemy.exc.IntegrityError:
        raise UserRefused(f"username {username!r} is taken", "USERNAME_TAKEN") from None
    assert user is not None  # read back in the transaction that created it
    return user


def disable_user(ctx: AppContext, username: str) -> None:
    """Disable the user: sign-in refused, open sessions end at their next request. Raises
    :class:`UserRefused` (``USER_NOT_FOUND``) when there is no such user."""
    require(ctx, Action.MANAGE_USERS, username[:64])
    now = ctx.clock()
    with ctx.store.transaction() as conn:
        user = user_table.get_by_username(conn, username)
        if user is None:
            raise UserRefused(f"no user {username!r} (see gateway users list)", "USER_NOT_FOUND")
        user_table.set_disabled(conn, user.user_id, True, now)
        ctx.audit(
            conn,
            "user.disabled",
            subjects={"username": username},
            now=now,
        )


def list_users(ctx: AppContext) -> list[User]:
    """Every user, by username."""
    require(ctx, Action.MANAGE_USERS)
    with ctx.store.read() as conn:
        return user_table.list_users(conn)


def user_row(u: User, now: datetime) -> dict[str, object]:
    """A user as ``gateway users list --json`` and the API's ``GET /api/v1/users`` show it
    (never the password's hash)."""
    return {
        "username": u.username,
        "roles": sorted(u.roles),
        "disabled": u.disabled,
        "locked": u.locked(now),
        "locked_until": u.locked_until.isoformat() if u.locked_until else None,
        "failed_attempts": u.failed_attempts,
        "created_at": u.created_at.isoformat(),
        "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
    }


def username_taken(ctx: AppContext, username: str) -> bool:
    """True when a user of that name exists: said before a password is hashed (slow)."""
    require(ctx, Action.MANAGE_USERS, username[:64])
    with ctx.store.read() as conn:
        return user_table.get_by_username(conn, username) is not None

"""Administration use cases: legal holds on purging and the local API's tokens.

Each function takes an :class:`~gateway.app.context.AppContext`, checks the actor's role against
the one access table (:data:`gateway.exchange.service.ACCESS`; a refusal is recorded as
``access.denied`` before it is raised), changes the store in one transaction and records the
act in the audit trail in that same transaction. The command line (``gateway holds``,
``gateway tokens``), the local API (``/api/v1/holds``) and the console's holds page call these
functions and nothing below them, so the three record the same thing.

Audit events written here::

    hold.placed     subjects conversation_id, hold_id; details reason
    hold.released   subjects conversation_id, hold_id; details reason
    token.created   subjects token; details label, roles, expires_at
    token.revoked   subjects token
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.app.context import AppContext, require
from gateway.exchange.service import Action, Role
from gateway.store import purge, tokens
from gateway.store.purge import HoldRefused, LegalHold
from gateway.store.tokens import ApiToken

__all__ = [
    "HoldRefused",
    "IssuedToken",
    "LegalHold",
    "NoActiveHold",
    "TokenRefused",
    "add_token",
    "list_holds",
    "list_tokens",
    "place_hold",
    "release_holds",
    "revoke_token",
    "token_row",
]

TOKEN_BYTES = 32
"""Random bytes of a new API token (43 URL-safe characters): not guessable."""
MAX_TOKEN_LABEL = 64
"""A token's label names the system using it (``case-system``), and goes into the audit."""

MAX_TOKEN_DAYS = 36_500
"""A century: longer is "until revoked" (no expiry), and past ~2.7 million days the expiry
would not be a date at all."""


class NoActiveHold(LookupError):
    """Releasing found no active hold on the conversation: nothing was changed."""


class TokenRefused(ValueError):
    """A token cannot be added or revoked as asked; the message names the field and the fix."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token_id: int
    token: str
    """Shown once to whoever asked; only its SHA-256 is stored."""
    expires_at: datetime | None


# --- legal holds (CIS Art. 9.6) ----------------------------------------------------------------


def place_hold(ctx: AppContext, conversation_id: str, reason: str) -> int:
    """Put the conversation under a legal hold; return the hold's id. Raises
    :class:`HoldRefused` for an unknown conversation or a reason outside 1..128 characters."""
    require(ctx, Action.MANAGE_HOLDS, conversation_id)
    with ctx.store.transaction() as conn:
        return purge.place_hold(conn, conversation_id, reason, ctx.actor.code, ctx.clock())


def release_holds(ctx: AppContext, conversation_id: str, reason: str) -> list[int]:
    """Release every active hold on the conversation; return their ids. Raises
    :class:`NoActiveHold` when there was none (nothing recorded)."""
    require(ctx, Action.MANAGE_HOLDS, conversation_id)
    with ctx.store.transaction() as conn:
        released = purge.release_conversation_holds(
            conn, conversation_id, ctx.actor.code, ctx.clock(), reason
        )
    if not released:
        raise NoActiveHold(f"no active hold on conversation {conversation_id}")
    return released


def list_holds(
    ctx: AppContext, *, active_only: bool = True, conversation_id: str | None = None
) -> list[LegalHold]:
    """Holds, newest first: active ones only unless ``active_only`` is False."""
    require(ctx, Action.LIST_HOLDS)
    with ctx.store.read() as conn:
        return purge.list_holds(conn, active_only=active_only, conversation_id=conversation_id)


# --- API tokens --------------------------------------------------------------------------------


def add_token(
    ctx: AppContext, label: str, roles: Iterable[str], expires_in_days: int | None = None
) -> IssuedToken:
    """Create a token for the local API with these roles; it is returned once, only its hash
    is kept."""
    require(ctx, Action.MANAGE_TOKENS)
    role_set = sorted(set(roles))
    unknown = [r for r in role_set if r not in Role._value2member_map_]
    if not role_set or unknown:
        # What was sent is not repeated (the local API echoes nothing it is sent).
        raise TokenRefused(f"roles: one or more of {', '.join(Role)}, and no other")
    if not label.strip() or len(label) > MAX_TOKEN_LABEL:
        raise TokenRefused(f"label: 1..{MAX_TOKEN_LABEL} characters naming the system using it")
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
        raise TokenRefused(f"expires_in_days: 1 to {MAX_TOKEN_DAYS} (or none: valid until revoked)")
    now = ctx.clock()
    expires_at = now + timedelta(days=expires_in_days) if expires_in_days is not None else None
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with ctx.store.transaction() as conn:
        token_id = tokens.create(
            conn, token, label=label, scopes=role_set, now=now, expires_at=expires_at
        )
        ctx.audit(
            conn,
            "token.created",
            subjects={"token": str(token_id)},
            details={
                "label": label,
                "roles": ",".join(role_set),
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
            now=now,
        )
    return IssuedToken(token_id, token, expires_at)


def list_tokens(ctx: AppContext) -> list[ApiToken]:
    """Every token (never the token itself: only its hash is stored), oldest first."""
    require(ctx, Action.MANAGE_TOKENS)
    with ctx.store.read() as conn:
        return tokens.list_tokens(conn)


def token_row(t: ApiToken, now: datetime) -> dict[str, object]:
    """A token as ``gateway tokens list --json`` and the API's ``GET /api/v1/tokens`` show it
    (never the token: only its hash is stored)."""
    state = "revoked" if t.revoked_at is not None else "active" if t.active(now) else "expired"
    return {
        "id": t.token_id,
        "label": t.label,
        "roles": sorted(t.scopes),
        "state": state,
        "created_at": t.created_at.isoformat(),
        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
    }


def revoke_token(ctx: AppContext, token_id: int) -> None:
    """Stop a token at once. Raises :class:`TokenRefused` when it is unknown or already
    revoked (nothing recorded)."""
    require(ctx, Action.MANAGE_TOKENS, f"token:{token_id}")
    now = ctx.clock()
    with ctx.store.transaction() as conn:
        if not tokens.revoke(conn, token_id, now):
            raise TokenRefused(f"token {token_id}: unknown or already revoked (see tokens list)")
        ctx.audit(
            conn,
            "token.revoked",
            subjects={"token": str(token_id)},
            now=now,
        )

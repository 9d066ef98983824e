"""What every console handler shares, kept on the app under one typed key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from aiohttp import web

from gateway.app.context import AppContext
from gateway.app.passwords import PasswordChecker
from gateway.app.sessions import Session, SessionStore
from gateway.app.user_directory import UserDirectory
from gateway.exchange.service import Action, Actor, LocalService, access_refusal
from gateway.rules.clock import Calendars
from gateway.web.console.identity import NodeIdentity
from gateway.web.console.sources import (
    AuditTrail,
    DirectorySource,
    ExpiringKeys,
    HoldsSource,
    JobRunsSource,
    KeyEntries,
    PurgeRunsSource,
    RetentionSource,
    Undelivered,
)

Audit = Callable[[str, str, dict[str, Any]], Awaitable[None]]
"""``audit(actor, event, details)``: appends to the node's hash-chained audit trail."""


CalendarsSource = Callable[[], Calendars]
"""The node's current calendars and zones (rebuilt when it takes a new directory)."""


def plain_calendars() -> Calendars:
    """``holidays`` only, capitals' zones: for a console not attached to a node (tests)."""
    return _PLAIN


_PLAIN = Calendars()


@dataclass(frozen=True, slots=True)
class AdminSources:
    """What the administration pages read (see :mod:`gateway.web.console.sources`); every one
    is required: :func:`~gateway.web.console.make_console_app` refuses to start without it."""

    key_entries: KeyEntries
    directory: DirectorySource
    retention: RetentionSource
    holds: HoldsSource
    purge_runs: PurgeRunsSource
    job_runs: JobRunsSource
    audit_trail: AuditTrail
    acts: AppContext | None = None
    """The node's context for the acts of :mod:`gateway.app` — the administrator's
    (:mod:`gateway.web.console.admin_acts`) and the operator's case acts (a proceeding closed,
    an original's marks, a disclosure) — taken as the signed-in user (:func:`acting_user`);
    None: the console offers no acts (a test double)."""
    config_hint: str = "node.toml"
    """The node configuration's path as the key rotation commands show it."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ConsoleContext:
    service: LocalService
    users: UserDirectory
    audit: Audit
    sessions: SessionStore
    passwords: PasswordChecker
    secure_cookies: bool
    clock: Callable[[], datetime]
    identity: NodeIdentity
    calendars: CalendarsSource
    expiring_keys: ExpiringKeys
    undelivered: Undelivered
    admin: AdminSources

    @property
    def timezone(self) -> tzinfo:
        return self.identity.timezone

    @property
    def cookie_name(self) -> str:
        # The __Host- prefix makes browsers refuse the cookie unless it is Secure, host-only
        # and for path "/": no subdomain or plain-HTTP page can plant or overwrite it.
        return "__Host-gateway-console" if self.secure_cookies else "gateway-console"

    def today(self) -> date:
        return self.clock().astimezone(self.timezone).date()


CONTEXT = web.AppKey("console_context", ConsoleContext)
SESSION = web.RequestKey("console_session", Session)
SESSION_ID = web.RequestKey("console_session_id", str)
ACTOR = web.RequestKey("console_actor", Actor)


def acting_user(request: web.Request) -> AppContext:
    """The node's context (:attr:`AdminSources.acts`) as the signed-in user: what each act of
    :mod:`gateway.app` the console takes runs with (503 without one)."""
    base = request.app[CONTEXT].admin.acts
    if base is None:
        raise web.HTTPServiceUnavailable(text="this console was started without the node's acts")
    return base.acting_as(request[ACTOR])


def require(actor: Actor, action: Action) -> None:
    """Raise the refusal :data:`gateway.exchange.service.ACCESS` gives ``actor`` for
    ``action`` (a page shown as 403 naming the role), or return. The node checks again."""
    refusal = access_refusal(actor, action)
    if refusal is not None:
        raise refusal

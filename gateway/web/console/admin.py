"""Administration pages: keys, the directory of bodies, retention, legal holds and purge runs
(role ``administrator``); the audit trail, its verification, export and signed checkpoints (role
``auditor``).

The pages only read, from the sources injected into :func:`make_console_app` (see
:mod:`gateway.web.console.sources`; the console does not start without them), each through
:mod:`gateway.app` as the signed-in user; verifying and exporting the trail are recorded by
:mod:`gateway.app.audit`. The administrator's acts (holds, purge, tokens, users, key
generations, the KEK ring) are :mod:`gateway.web.console.admin_acts`; changing policies stays
with the CLI (docs/administration.md).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import hdrs, web

from gateway.app import audit as app_audit
from gateway.app.audit_checkpoints import checkpoint_file_line
from gateway.crypto.keys.keystore import KeyStoreError
from gateway.exchange.service import Action
from gateway.model.directory import CertificateRole
from gateway.web.console.auth import error_page
from gateway.web.console.context import ACTOR, CONTEXT, acting_user, require
from gateway.web.console.pages import filled_fields
from gateway.web.console.render import render
from gateway.web.console.sources import AuditQuery
from gateway.web.streaming import stream_lines

AUDIT_PAGE_SIZE = 100
"""Audit events per page: a screenful with room to scan; deeper pages follow the cursor."""

PURGE_RUNS_SHOWN = 50
"""Latest purge runs listed (one a night: seven weeks)."""

KEY_WARNING_DAYS = 30
"""Days before a certificate expires from which the key page highlights it: a national CA
needs weeks to issue a new certificate, and the directory must be republished with it."""

MAX_FILTER_CHARS = 64
"""Audit kinds and actors are codes of at most 64 characters (``CODE_LENGTH``)."""
_AUDIT_FILTERS = dict.fromkeys(("kind", "actor", "since", "until"), MAX_FILTER_CHARS)

_CODE = re.compile(r"^[A-Za-z0-9._:@\-]+$")
_SEQ = re.compile(r"^[1-9][0-9]{0,18}$")


def _require(request: web.Request, action: Action) -> None:
    require(request[ACTOR], action)


async def admin_index(request: web.Request) -> web.Response:
    _require(request, Action.OPEN_ADMINISTRATION)
    return render(request, "admin_index.html", {})


# --- keys --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRow:
    entry: Any
    days_left: int | None

    @property
    def css(self) -> str:
        if self.days_left is None:
            return ""
        if self.days_left < 0:
            return "overdue"
        return "near" if self.days_left <= KEY_WARNING_DAYS else ""

    @property
    def key(self) -> str:
        """``ROLE`` or ``ROLE:NAME`` as the key commands take it (a KEK's name is its id,
        which ``keys rotate kek`` does not take)."""
        if self.entry.role == "kek" or not self.entry.name:
            return str(self.entry.role)
        return f"{self.entry.role}:{self.entry.name}"

    @property
    def row_id(self) -> str:
        generation = getattr(self.entry, "generation", 1)
        name = f"-{self.entry.name}" if self.entry.name else ""
        return f"key-{self.entry.role}{name}" + (f"-g{generation}" if generation > 1 else "")


def rotation_commands(rows: list[KeyRow], config: str) -> list[str]:
    """What to type to replace each key in use: a new pending generation, the national CA's
    certificate for it (keys that have certificates), the switch at a chosen time."""
    commands = [f"gateway keys list --config {config}"]
    seen: set[str] = set()
    for row in rows:
        if row.key in seen or getattr(row.entry, "status", "active") not in ("active", ""):
            continue
        seen.add(row.key)
        commands.append(f"gateway keys rotate {row.key} --config {config}")
        if row.entry.role != "kek":
            following = getattr(row.entry, "generation", 1) + 1
            commands.append(
                f"gateway keys import {row.entry.role} /path/to/new-certificate.pem"
                + (f" --name {row.entry.name}" if row.entry.name else "")
                + f" --generation {following} --config {config}"
            )
            commands.append(
                f"gateway keys activate {row.key} --generation {following} "
                f"--at 2030-01-01T00:00:00+00:00 --config {config}"
            )
    return commands


async def keys(request: web.Request) -> web.Response:
    _require(request, Action.READ_CONFIGURATION)
    ctx = request.app[CONTEXT]
    source = ctx.admin.key_entries
    now = ctx.clock()
    rows = [KeyRow(e, e.days_to_expiry(now)) for e in await source(request[ACTOR])]
    return render(
        request,
        "admin_keys.html",
        {
            "rows": rows,
            "commands": rotation_commands(rows, ctx.admin.config_hint),
            "warning_days": KEY_WARNING_DAYS,
        },
    )


# --- directory ---------------------------------------------------------------------------------


async def directory(request: web.Request) -> web.Response:
    _require(request, Action.READ_CONFIGURATION)
    ctx = request.app[CONTEXT]
    source = ctx.admin.directory
    current = await source()
    return render(
        request,
        "admin_directory.html",
        {"directory": current, "CertificateRole": CertificateRole},
    )


# --- retention, holds, purge runs --------------------------------------------------------------


async def retention(request: web.Request) -> web.Response:
    _require(request, Action.READ_CONFIGURATION)
    ctx = request.app[CONTEXT]
    source = ctx.admin.retention
    return render(request, "admin_retention.html", {"policies": await source()})


async def holds(request: web.Request) -> web.Response:
    _require(request, Action.READ_CONFIGURATION)
    ctx = request.app[CONTEXT]
    show_released = request.query.get("released") == "yes"
    hold_list = await ctx.admin.holds(request[ACTOR], not show_released)
    runs = await ctx.admin.purge_runs(request[ACTOR], PURGE_RUNS_SHOWN)
    return render(
        request,
        "admin_holds.html",
        {"holds": hold_list, "runs": runs, "show_released": show_released},
    )


async def jobs(request: web.Request) -> web.Response:
    _require(request, Action.READ_CONFIGURATION)
    ctx = request.app[CONTEXT]
    return render(request, "admin_jobs.html", {"jobs": await ctx.admin.job_runs(request[ACTOR])})


# --- audit -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditFilters:
    values: dict[str, str]
    query: AuditQuery
    before: int | None
    errors: dict[str, str]


def _moment(value: str, *, end: bool, tz: Any) -> datetime:
    """A date (the whole day, in the console's time zone) or a date and time."""
    if len(value) == 10:
        start = datetime.combine(date.fromisoformat(value), time.min, tzinfo=tz)
        return start + timedelta(days=1) if end else start
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


def read_audit_filters(query: Any, tz: Any) -> AuditFilters:
    """The audit page's filters from the query string; empty means "any"."""
    values = filled_fields(query, _AUDIT_FILTERS)
    errors: dict[str, str] = {}
    for name in ("kind", "actor"):
        if name in values and not _CODE.fullmatch(values[name]):
            errors[name] = "Допустимы латинские буквы, цифры и . _ : @ -"
    if (
        "kind" in values
        and "kind" not in errors
        and (why := app_audit.unknown_kind(values["kind"], prefix=True))
    ):
        errors["kind"] = why[0].upper() + why[1:] + "."
    bounds: dict[str, datetime | None] = {"since": None, "until": None}
    for name in ("since", "until"):
        if name in values:
            try:
                bounds[name] = _moment(values[name], end=name == "until", tz=tz).astimezone(UTC)
            except (ValueError, OverflowError):  # 9999-12-31 as "until": past datetime.max
                errors[name] = "Дата в виде ГГГГ-ММ-ДД или ГГГГ-ММ-ДДTЧЧ:ММ."
    before_raw = query.get("before") or None
    before = None
    if before_raw is not None:
        if _SEQ.fullmatch(before_raw):
            before = int(before_raw)
        else:
            errors["before"] = "Ссылка на страницу повреждена; начните с первой страницы."
    return AuditFilters(
        values,
        AuditQuery(
            kind=values.get("kind") if "kind" not in errors else None,
            actor=values.get("actor") if "actor" not in errors else None,
            since=bounds["since"],
            until=bounds["until"],
        ),
        before,
        errors,
    )


async def audit(request: web.Request) -> web.Response:
    _require(request, Action.READ_AUDIT)
    ctx = request.app[CONTEXT]
    trail = ctx.admin.audit_trail
    filters = read_audit_filters(request.query, ctx.timezone)
    context: dict[str, Any] = {
        "filters": filters.values,
        "errors": filters.errors,
        "events": [],
        "next_query": None,
        "first_query": None,
        "verification": None,
    }
    if filters.errors:
        return render(request, "admin_audit.html", context, status=400)
    found = list(
        await trail.search(
            request[ACTOR], filters.query, before=filters.before, limit=AUDIT_PAGE_SIZE + 1
        )
    )
    context["events"] = found[:AUDIT_PAGE_SIZE]
    if len(found) > AUDIT_PAGE_SIZE:
        context["next_query"] = {**filters.values, "before": str(found[AUDIT_PAGE_SIZE - 1].seq)}
    if filters.before is not None:
        context["first_query"] = dict(filters.values)
    return render(request, "admin_audit.html", context)


async def verify_audit(request: web.Request) -> web.Response:
    _require(request, Action.READ_AUDIT)
    ctx = request.app[CONTEXT]
    trail = ctx.admin.audit_trail
    result = await trail.verify(request[ACTOR])  # recorded there (audit.verified)
    return render(
        request,
        "admin_audit.html",
        {
            "filters": {},
            "errors": {},
            "events": [],
            "next_query": None,
            "first_query": None,
            "verification": result,
        },
    )


async def export_audit(request: web.Request) -> web.StreamResponse:
    """A segment of the trail (``from``/``to``: an event number or an ISO 8601 time) as the
    JSON Lines of ``gateway audit export``, through :func:`gateway.app.audit.export_lines` as
    the signed-in user; recorded (``audit.exported``)."""
    _require(request, Action.READ_AUDIT)
    acts = acting_user(request)
    form = await request.post()
    try:
        (seq_from, since), (seq_to, until) = (
            app_audit.parse_bound(str(form.get(name) or "")) for name in ("from", "to")
        )
    except ValueError:
        return error_page(
            request,
            400,
            "Выгрузка не выполнена",
            "«С» и «по» — номер события или время ISO 8601 (2026-11-01T00:00:00Z).",
        )
    lines = app_audit.export_lines(acts, seq_from=seq_from, seq_to=seq_to, since=since, until=until)
    return await stream_lines(request, lines, "audit-export.jsonl")


async def checkpoint_audit(request: web.Request) -> web.Response:
    """Sign the chain's head now (:func:`gateway.app.audit.checkpoint`, as ``gateway audit
    checkpoint`` does) and hand the checkpoint line over as a file: the auditor keeps it off
    the node, where ``gateway audit verify --checkpoint FILE`` checks the trail against it.
    Recorded (``audit.checkpoint``)."""
    _require(request, Action.READ_AUDIT)
    acts = request.app[CONTEXT].admin.acts
    keys = acts.keys if acts is not None else None
    if acts is None or keys is None:
        raise web.HTTPServiceUnavailable(text="checkpoints are not available in this console")
    ctx = acts.acting_as(request[ACTOR])
    try:
        done = await asyncio.get_running_loop().run_in_executor(
            None, lambda: app_audit.checkpoint(ctx, keys.seal())
        )
    except KeyStoreError as exc:
        return error_page(request, 503, "Контрольная точка не создана", f"Печать узла: {exc}")
    # The file name is the checkpoint's number: nothing of the request.
    name = f"audit-checkpoint-{done.checkpoint_id}.jsonl"
    return web.Response(
        body=(checkpoint_file_line(done) + "\n").encode("utf-8"),
        content_type="application/jsonl",
        charset="utf-8",
        headers={hdrs.CONTENT_DISPOSITION: f'attachment; filename="{name}"'},
    )

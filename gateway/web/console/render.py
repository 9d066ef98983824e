"""Templates: Jinja2 with autoescaping, Russian formatting, the fields of a document as rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway.web.console import labels
from gateway.web.console.context import ACTOR, CONTEXT, SESSION

# Package data, found through importlib.resources so an installed wheel serves them too; aiohttp's
# static route and Jinja's loader want real folders, which pip's unpacked installs always are.
TEMPLATES_DIR = Path(str(resources.files(__package__) / "templates"))
STATIC_DIR = Path(str(resources.files(__package__) / "static"))

MASK = "скрыто"
"""What a confidential value reads as to someone who may not see it (CIS Art. 9.1, 16)."""

MAX_FIELD_ROWS = 2000
"""Rows one document's fields may fill; beyond it the page says the rest is in the XML/PDF."""

BINARY_FIELDS = frozenset({"Content"})
"""Base64 content of attachments: shown as its size, never as a wall of characters."""


@dataclass(frozen=True, slots=True)
class FieldRow:
    depth: int
    label: str
    value: str | None
    """None for a group heading (a nested element)."""
    path: str
    """The field's path, e.g. ``Refusal/Ground[1]`` (a stable id for browser tests)."""


def field_rows(body: Mapping[str, Any], *, masked: bool) -> list[FieldRow]:
    """The body's fields as indented rows; ``masked``: every value reads «скрыто»."""
    rows: list[FieldRow] = []

    def walk(name: str, value: Any, depth: int, path: str) -> None:
        if len(rows) >= MAX_FIELD_ROWS:
            return
        title = labels.label(labels.FIELD_LABELS, name)
        if isinstance(value, Mapping):
            rows.append(FieldRow(depth, title, None, path))
            for key, item in value.items():
                walk(str(key), item, depth + 1, f"{path}/{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value, start=1):
                walk(name, item, depth, f"{path}[{index}]")
        else:
            rows.append(FieldRow(depth, title, MASK if masked else _text(name, value), path))

    for key, value in body.items():
        walk(str(key), value, 0, str(key))
    return rows


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "Да" if value else "Нет"
    if value is None:
        return "—"
    if name in BINARY_FIELDS and isinstance(value, str):
        return f"(двоичные данные, около {len(value) * 3 // 4} байт; см. XML)"
    return str(value)


def setup_templates(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["dt"] = format_datetime
    env.filters["isodt"] = format_iso_datetime
    env.filters["d"] = format_date
    env.globals.update(
        STATE_LABELS=labels.STATE_LABELS,
        KIND_LABELS=labels.KIND_LABELS,
        DIRECTION_LABELS=labels.DIRECTION_LABELS,
        KEY_STATUS_LABELS=labels.KEY_STATUS_LABELS,
        DELIVERY_LABELS=labels.DELIVERY_LABELS,
        VERIFICATION_LABELS=labels.VERIFICATION_LABELS,
        verification_label=labels.verification_label,
        VERIFICATION_CLASSES=labels.VERIFICATION_CLASSES,
        AGREEMENT_LABELS=labels.AGREEMENT_LABELS,
        ROLE_LABELS=labels.ROLE_LABELS,
        label=labels.label,
        article_ru=labels.article_ru,
        MASK=MASK,
    )

    def url(name: str, query: Mapping[str, str] | None = None, **parts: str) -> str:
        target = app.router[name].url_for(**parts)
        return str(target.with_query(dict(query)) if query else target)

    def static(filename: str) -> str:
        return str(app.router["static"].url_for(filename=filename))

    env.globals["url"] = url
    env.globals["static"] = static


def _common_context(request: web.Request) -> dict[str, Any]:
    ctx = request.app[CONTEXT]
    session = request.get(SESSION)
    actor = request.get(ACTOR)
    return {
        "actor": actor,
        "csrf_token": session.csrf_token if session is not None else "",
        "flash": session.take_flash() if session is not None and actor is not None else None,
        "timezone": ctx.timezone,
    }


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """The page ``template`` with ``context`` (plus actor, CSRF token and flash)."""
    return aiohttp_jinja2.render_template(
        template, request, {**_common_context(request), **context}, status=status
    )


def format_datetime(value: datetime | None, tz: Any = None) -> str:
    if value is None:
        return "—"
    if tz is not None:
        value = value.astimezone(tz)
    return value.strftime("%d.%m.%Y %H:%M")


def format_iso_datetime(value: str | None, tz: Any = None) -> str:
    """A time the node recorded as ISO text (reports, receipts), shown like any other."""
    return format_datetime(datetime.fromisoformat(value) if value else None, tz)


def format_date(value: date | None) -> str:
    return value.strftime("%d.%m.%Y") if value is not None else "—"

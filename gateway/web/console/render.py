"""Templates: Jinja2 with autoescaping, Russian formatting, the fields of a document as rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway.model.profiles import PROFILES
from gateway.web.console import labels
from gateway.web.console.context import ACTOR, CONTEXT, SESSION
from gateway.web.console.identity import NodeIdentity
from gateway.xml.labels import (
    LANGUAGES_RU,
    FieldType,
    child_declaration,
    compact_value,
    field_type,
    format_value,
    kind_declaration,
    label_for,
)

# Package data, found through importlib.resources so an installed wheel serves them too; aiohttp's
# static route and Jinja's loader want real folders, which pip's unpacked installs always are.
TEMPLATES_DIR = Path(str(resources.files(__package__) / "templates"))
STATIC_DIR = Path(str(resources.files(__package__) / "static"))

MASK = "скрыто"
"""What a confidential value reads as to someone who may not see it (CIS Art. 9.1, 16)."""

MAX_FIELD_ROWS = 2000
"""Rows one document's fields may fill; beyond it the page says the rest is in the XML/PDF."""


@dataclass(frozen=True, slots=True)
class FieldRow:
    depth: int
    label: str
    value: str | None
    """None for a group heading (a nested element)."""
    path: str
    """The field's path, e.g. ``Refusal/Ground[1]`` (a stable id for browser tests)."""
    type: FieldType | None = None
    """The leaf's type by the XSD (None for a group heading)."""


def header_files(header: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The files sent beside the XML, as a document's signed header lists them (its JSON form:
    one file is an object, several a list), in the list's order (docs/attachments.md)."""
    listed = (header.get("Attachments") or {}).get("Attachment") or []
    return [listed] if isinstance(listed, dict) else list(listed)


def field_rows(
    body: Mapping[str, Any],
    *,
    agreement: str,
    masked: bool,
    timezone: tzinfo | None = None,
    zone_name: str = "",
) -> list[FieldRow]:
    """The body's fields as indented rows, labelled and typed by the model the PDF rendition
    uses (:mod:`gateway.xml.labels`; types from the XSD of ``agreement``). ``masked``: every
    value reads «скрыто». Dates read DD.MM.YYYY; times are shown in ``timezone``."""
    rows: list[FieldRow] = []
    profile = PROFILES.get(agreement)

    def walk(name: str, value: Any, depth: int, path: str, decl: Any, parent: str) -> None:
        if len(rows) >= MAX_FIELD_ROWS:
            return
        if depth == 0 and profile is not None and name in profile.kinds:
            title = profile.kinds[name].title_ru
        else:
            title = label_for(name, parent)
        if isinstance(value, Mapping):
            leaves = all(not isinstance(v, Mapping | list) for v in value.values())
            compact = compact_value(value, decl) if leaves else None
            if compact is not None:
                shown = MASK if masked else compact
                rows.append(FieldRow(depth, title, shown, path, FieldType.TEXT))
                return
            rows.append(FieldRow(depth, title, None, path))
            for key, item in value.items():
                key = str(key)
                walk(key, item, depth + 1, f"{path}/{key}", child_declaration(decl, key), name)
        elif isinstance(value, list):
            for index, item in enumerate(value, start=1):
                walk(name, item, depth, f"{path}[{index}]", decl, parent)
        else:
            kind = field_type(decl)
            shown = MASK if masked else _text(value, kind, timezone, zone_name)
            rows.append(FieldRow(depth, title, shown, path, kind))

    for key, value in body.items():
        walk(str(key), value, 0, str(key), kind_declaration(agreement, str(key)), "")
    return rows


def _text(value: Any, kind: FieldType, timezone: tzinfo | None, zone_name: str) -> str:
    if value is None:
        return "—"
    if kind is FieldType.BINARY and isinstance(value, str):
        # Only what the schema types xs:base64Binary (attachment bytes): its size, never the text.
        return f"(двоичные данные, около {len(value) * 3 // 4} байт; см. XML)"
    text = format_value(value, kind, timezone=timezone, zone_name=zone_name)
    return text[:1].upper() + text[1:] if kind in (FieldType.BOOLEAN, FieldType.CODE) else text


def setup_templates(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,  # the templates are the package's: no stat of each file per page
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
        KEY_ROLE_LABELS=labels.KEY_ROLE_LABELS,
        RESERVATION_LABELS=labels.RESERVATION_LABELS,
        RETENTION_EVENT_LABELS=labels.RETENTION_EVENT_LABELS,
        DIRECTION_NAMES={"in": "полученные", "out": "отправленные"},
        period_ru=labels.period_ru,
        AUDIT_EVENT_LABELS=labels.AUDIT_EVENT_LABELS,
        PURGE_STATE_LABELS=labels.PURGE_STATE_LABELS,
        JOB_LABELS=labels.JOB_LABELS,
        JOB_OUTCOME_LABELS=labels.JOB_OUTCOME_LABELS,
        SUB_INDICATION_LABELS=labels.SUB_INDICATION_LABELS,
        LANGUAGE_LABELS=LANGUAGES_RU,
        ATTACHMENT_REFUSAL_LABELS=labels.ATTACHMENT_REFUSAL_LABELS,
        DELIVERY_ERROR_LABELS=labels.DELIVERY_ERROR_LABELS,
        AUDIT_FIELD_LABELS=labels.AUDIT_FIELD_LABELS,
        audit_value=labels.audit_value,
        agreement_names=labels.agreement_names,
        kind_names=labels.kind_names,
        body_name=labels.body_name,
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
        "identity": ctx.identity,
        "now": ctx.clock(),
    }


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """The page ``template`` with ``context`` (plus actor, CSRF token and flash)."""
    return aiohttp_jinja2.render_template(
        template, request, {**_common_context(request), **context}, status=status
    )


def format_datetime(value: datetime | None, identity: NodeIdentity | None = None) -> str:
    """«05.12.2026 08:19 (Москва, UTC+3)»: the moment in the node's zone, the zone named."""
    if value is None:
        return "—"
    if identity is None:
        return value.strftime("%d.%m.%Y %H:%M")
    local = value.astimezone(identity.timezone)
    return f"{local:%d.%m.%Y %H:%M} ({identity.zone_label(local)})"


def format_iso_datetime(value: str | None, identity: NodeIdentity | None = None) -> str:
    """A time the node recorded as ISO text (reports, receipts), shown like any other."""
    return format_datetime(datetime.fromisoformat(value) if value else None, identity)


def format_date(value: date | None) -> str:
    return value.strftime("%d.%m.%Y") if value is not None else "—"

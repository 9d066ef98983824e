"""The action forms' handlers: ``/conversations/{id}/actions/{action}`` (GET shows, POST sends).

The flow is the refusal form's: load the conversation (a confidential one needs the stated
purpose), check that the action is one the state and our role allow now, read the form, build
the document, let the node check, sign, store and queue it; anything it refuses comes back in
Russian next to its field, with what was typed still in the form.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from gateway.app import disclosures
from gateway.exchange.conversation import ProtocolError
from gateway.exchange.disclosure import DisclosureRefused
from gateway.exchange.service import Action, ConversationView
from gateway.model.problems import DocumentRejected
from gateway.web.case_acts import run_case_act
from gateway.web.console.actions import (
    DISCLOSURE,
    MAX_ATTACHMENT_BYTES,
    SPECS,
    ActionForm,
    ActionSpec,
    Upload,
    available_actions,
    build_document,
    choices_of,
    clean_file_name,
    clean_media_type,
    disclosure_offered,
    problems_by_field,
    read_action_form,
)
from gateway.web.console.auth import error_page, see_other
from gateway.web.console.context import ACTOR, CONTEXT, SESSION, acting_user, require
from gateway.web.console.labels import STATE_LABELS, article_ru, label
from gateway.web.console.pages import _conversation, _problem_text, locked_page
from gateway.web.console.render import format_datetime, render

READ_CHUNK = 64 * 1024
"""Bytes read from an uploaded file at a time (the file is spooled by aiohttp already)."""


def _page(
    request: web.Request,
    spec: ActionSpec,
    view: ConversationView,
    form: ActionForm,
    *,
    general: tuple[str, ...] = (),
    status: int = 200,
) -> web.Response:
    return render(
        request,
        "action.html",
        {
            "spec": spec,
            "summary": view.summary,
            "fields": [(f, choices_of(spec, view, f, _shown_at(request))) for f in spec.fields],
            "form": form,
            "general": general,
            "max_attachment_mb": MAX_ATTACHMENT_BYTES // (1024 * 1024),
        },
        status=status,
    )


async def _actionable(request: web.Request) -> tuple[ActionSpec, ConversationView] | web.Response:
    actor = request[ACTOR]
    conversation_id = request.match_info["conversation_id"]
    name = request.match_info["action"]
    require(actor, Action.DISCLOSE if name == DISCLOSURE.name else Action.SUBMIT)
    view, locked = await _conversation(request, conversation_id)
    if view is None:
        return locked_page(request, conversation_id, locked, next_page=f"action:{name}")
    if name == DISCLOSURE.name:
        if not disclosure_offered(view):
            return error_page(
                request,
                409,
                "Раскрывать нечего",
                "В переписке нет документов, полученных от другой стороны.",
            )
        return DISCLOSURE, view
    spec = SPECS.get(view.summary.agreement, {}).get(name)
    if spec is None:
        raise web.HTTPNotFound()
    if spec not in available_actions(view):
        return error_page(
            request,
            409,
            "Действие сейчас недоступно",
            f"«{spec.title_ru}» нельзя направить в состоянии переписки "
            f"«{label(STATE_LABELS, view.summary.state)}» от нашей стороны.",
        )
    return spec, view


async def action_form(request: web.Request) -> web.Response:
    found = await _actionable(request)
    if isinstance(found, web.Response):
        return found
    spec, view = found
    return _page(request, spec, view, ActionForm())


async def _read_upload(item: Any) -> tuple[Upload | None, str | None]:
    """The uploaded file (None when none was chosen) or a Russian error."""
    if not isinstance(item, FileField):
        return None, None
    content = bytearray()
    while True:
        chunk = item.file.read(READ_CHUNK)
        if not chunk:
            break
        content += chunk
        if len(content) > MAX_ATTACHMENT_BYTES:
            return None, (
                f"Файл больше {MAX_ATTACHMENT_BYTES // (1024 * 1024)} МБ; приложите файл "
                "меньшего размера или разделите его."
            )
    if not content and not item.filename:
        return None, None
    if not content:
        return None, "Файл пуст."
    return (
        Upload(
            clean_file_name(item.filename or ""),
            clean_media_type(item.content_type),
            bytes(content),
        ),
        None,
    )


async def action(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    found = await _actionable(request)
    if isinstance(found, web.Response):
        return found
    spec, view = found
    posted = await request.post()
    upload, upload_error = None, None
    if spec.uploads:
        upload, upload_error = await _read_upload(posted.get("Attachment"))
    fields = {k: v for k, v in posted.items() if isinstance(v, str)}
    form = read_action_form(spec, view, fields, upload, upload_error)
    if form.errors:
        return _page(request, spec, view, form, status=422)
    if spec is DISCLOSURE:
        return await _disclose(request, view, form)
    document = build_document(spec, view, form, ctx.clock())
    try:
        result = await ctx.service.submit(document, actor=request[ACTOR])
    except DocumentRejected as rejected:
        by_field = problems_by_field(spec, rejected.problems)
        errors = {
            name: tuple(_problem_text(p) for p in problems)
            for name, problems in by_field.items()
            if name
        }
        general = tuple(_problem_text(p) for p in by_field.get("", ()))
        shown = ActionForm(raw=form.raw, values=form.values, errors=errors)
        return _page(request, spec, view, shown, general=general, status=422)
    except ProtocolError as exc:
        return _page(request, spec, view, form, general=(_problem_text(exc.problem()),), status=409)
    notice = f"«{spec.title_ru}» принят к отправке (сообщение {result.message_id})."
    if result.warnings:
        notice += " Предупреждения: " + " ".join(w.get("message_ru", "") for w in result.warnings)
    request[SESSION].flash = notice
    return see_other(request, "conversation", conversation_id=view.summary.conversation_id)


async def _disclose(request: web.Request, view: ConversationView, form: ActionForm) -> web.Response:
    """Record the disclosure through :func:`gateway.app.disclosures.disclose` (what ``gateway
    disclose`` and the local API call); its rule decides (a refusal names the article and what
    to do, next to the form as typed)."""
    values = form.values
    try:
        done = await run_case_act(
            disclosures.disclose,
            acting_user(request),
            values["MessageId"],
            recipient=values["Recipient"],
            category=values["Category"],
            purpose=values["Purpose"],
        )
    except DisclosureRefused as refused:
        decision = refused.decision
        text = f"Раскрытие не допускается ({article_ru(decision.article)}): {decision.reason_ru}"
        if decision.remedy_ru:
            text += f" Что сделать: {decision.remedy_ru}"
        return _page(request, DISCLOSURE, view, form, general=(text,), status=409)
    article = article_ru(done.decision.article)
    notice = f"Раскрытие записано (№ {done.disclosure_id}, основание: {article})."
    if done.conditions:
        notice += " Сообщите получателю условия согласия: " + "; ".join(done.conditions) + "."
    if done.procedure:
        notice += " Порядок получения сведений взыскателем: " + "; ".join(done.procedure) + "."
    request[SESSION].flash = notice
    return see_other(request, "conversation", conversation_id=view.summary.conversation_id)


def _shown_at(request: web.Request) -> Callable[[datetime], str]:
    """A message's time in a choice's label: the node's zone, named (as everywhere else)."""
    identity = request.app[CONTEXT].identity
    return lambda moment: format_datetime(moment, identity)

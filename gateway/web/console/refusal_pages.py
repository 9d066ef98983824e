"""The refusal form's handlers: ``/conversations/{id}/refuse`` (GET shows, POST sends).

A CIS refusal goes "одновременно с возвратом документов" (Art. 13 para. 2): the form lists the
files that came with the request, ticked, and the node takes each ticked one in again from its
store (streamed, never held whole) to travel beside the refusal, listed as it came and named in
``ReturnedDocuments``. Nothing is uploaded from the operator's computer; a refused form deletes
the copies it took in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from gateway.exchange.attachments import AttachmentDamaged
from gateway.exchange.conversation import ProtocolError
from gateway.exchange.service import (
    Action,
    ConversationView,
    NotFound,
    PermissionDenied,
    PurposeRequired,
)
from gateway.model.problems import DocumentRejected
from gateway.web.console.action_pages import discard_uploads
from gateway.web.console.actions import Upload
from gateway.web.console.auth import error_page, see_other
from gateway.web.console.context import ACTOR, CONTEXT, require
from gateway.web.console.labels import STATE_LABELS, label
from gateway.web.console.pages import (
    Locked,
    conversation_in_reach,
    field_texts,
    flash_sent,
    locked_page,
    locked_reason,
    may_refuse,
    problem_text,
    stated_purpose,
)
from gateway.web.console.refusal import (
    EXTENTS,
    REFUSAL_GROUNDS,
    RETURNED_FIELD,
    TEXT_FIELD,
    RefusalForm,
    RequestFile,
    build_refusal,
    opening_message_id,
    problems_by_field,
    read_refusal_form,
    request_files,
)
from gateway.web.console.render import render


def _refusal_page(
    request: web.Request,
    view: ConversationView,
    form: RefusalForm,
    files: Sequence[RequestFile] | Locked,
    *,
    general: tuple[str, ...] = (),
    status: int = 200,
) -> web.Response:
    agreement = view.summary.agreement
    return render(
        request,
        "refuse.html",
        {
            "summary": view.summary,
            "grounds": REFUSAL_GROUNDS.get(agreement, ()),
            "extents": EXTENTS,
            "text_field": TEXT_FIELD.get(agreement, "Circumstances"),
            "files": _offered(files),
            "files_locked": files if isinstance(files, Locked) else None,
            "form": form,
            "general": general,
        },
        status=status,
    )


async def _refusable(request: web.Request) -> ConversationView | web.Response:
    actor = request[ACTOR]
    conversation_id = request.match_info["conversation_id"]
    require(actor, Action.SUBMIT)
    view, locked = await conversation_in_reach(request, conversation_id)
    if view is None:
        return locked_page(request, conversation_id, locked, next_page="refuse")
    if not may_refuse(actor, view):
        return error_page(
            request,
            409,
            "Отказ невозможен",
            "Отказать можно только в исполнении полученного запроса, пока переписка не "
            f"завершена (сейчас: «{label(STATE_LABELS, view.summary.state)}»).",
        )
    return view


async def _returnable(
    request: web.Request, view: ConversationView
) -> tuple[RequestFile, ...] | Locked:
    """The files that came with the request a CIS refusal answers (none for SC, whose
    refusal returns nothing, nor for a request purged or with no files); :class:`Locked`
    while they may not be read: their names are the request's content, read for a stated
    purpose (CIS Art. 9.1) and, in a confidential document, by a confidential reader."""
    request_id = opening_message_id(view)
    if view.summary.agreement != "cis-enforcement" or request_id is None:
        return ()
    actor = request[ACTOR]
    purpose = stated_purpose(request, view.summary.conversation_id)
    if purpose is None:
        return Locked(True, None)
    try:
        message = await request.app[CONTEXT].service.message(
            request_id, actor=actor, purpose=purpose
        )
    except NotFound:
        return ()
    except (PermissionDenied, PurposeRequired) as exc:
        return locked_reason(actor, exc)
    return request_files(message.header)


def _offered(files: Sequence[RequestFile] | Locked) -> Sequence[RequestFile]:
    return () if isinstance(files, Locked) else files


async def refuse_form(request: web.Request) -> web.Response:
    view = await _refusable(request)
    if isinstance(view, web.Response):
        return view
    files = await _returnable(request, view)
    # Art. 13 returns the documents with the refusal: every file is ticked until unticked.
    form = RefusalForm(returned=tuple(f.number for f in _offered(files)))
    return _refusal_page(request, view, form, files)


async def refuse(request: web.Request) -> web.Response:
    view = await _refusable(request)
    if isinstance(view, web.Response):
        return view
    files = await _returnable(request, view)
    posted = await request.post()
    grounds = [g for g in posted.getall("Ground", []) if isinstance(g, str)]
    returned = [n for n in posted.getall("Returned", []) if isinstance(n, str)]
    fields = {k: v for k, v in posted.items() if isinstance(v, str)}
    form = read_refusal_form(view.summary.agreement, fields, grounds, returned, _offered(files))
    if form.errors:
        return _refusal_page(request, view, form, files, status=422)
    copies: list[tuple[RequestFile, str]] = []
    sent = False
    try:
        chosen = [f for f in _offered(files) if f.number in form.returned]
        failed = await _take_in_again(request, view, chosen, copies)
        if failed is not None:
            form = RefusalForm(**{**_form_values(form), "errors": {RETURNED_FIELD: (failed,)}})
            return _refusal_page(request, view, form, files, status=500)
        response = await _send(request, view, form, files, copies)
        sent = response.status == 303
        return response
    finally:
        if not sent:
            await discard_uploads(request, [Upload(f.name, copy_id) for f, copy_id in copies])


async def _take_in_again(
    request: web.Request,
    view: ConversationView,
    chosen: Sequence[RequestFile],
    copies: list[tuple[RequestFile, str]],
) -> str | None:
    """Each chosen file copied into an upload (appended to ``copies`` as it is made, so the
    caller deletes them all whatever happens); the Russian error of a damaged one, or None."""
    ctx = request.app[CONTEXT]
    request_id = opening_message_id(view)
    assert request_id is not None  # there are files to return only when there is a request
    purpose = stated_purpose(request, view.summary.conversation_id)
    for file in chosen:
        try:
            copy = await ctx.service.return_attachment(
                request_id, file.number, actor=request[ACTOR], purpose=purpose
            )
        except AttachmentDamaged as damaged:
            return damaged.message_ru
        copies.append((file, copy["attachment_id"]))
    return None


async def _send(
    request: web.Request,
    view: ConversationView,
    form: RefusalForm,
    files: Sequence[RequestFile] | Locked,
    copies: Sequence[tuple[RequestFile, str]],
) -> web.Response:
    ctx = request.app[CONTEXT]
    document = build_refusal(view, form, ctx.clock(), copies)
    try:
        result = await ctx.service.submit(document, actor=request[ACTOR])
    except DocumentRejected as rejected:
        errors, general = field_texts(problems_by_field(rejected.problems))
        shown = RefusalForm(**{**_form_values(form), "errors": errors})
        return _refusal_page(request, view, shown, files, general=general, status=422)
    except ProtocolError as exc:
        general = (problem_text(exc.problem()),)
        return _refusal_page(request, view, form, files, general=general, status=409)
    notice = f"Отказ в исполнении запроса принят к отправке (сообщение {result.message_id})."
    if copies:
        notice += f" Возвращено документов: {len(copies)}."
    flash_sent(request, notice, result.warnings)
    return see_other(request, "conversation", conversation_id=view.summary.conversation_id)


def _form_values(form: RefusalForm) -> dict[str, Any]:
    return {
        "grounds": form.grounds,
        "text": form.text,
        "consultations_held": form.consultations_held,
        "extent": form.extent,
        "refused_part": form.refused_part,
        "returned": form.returned,
    }

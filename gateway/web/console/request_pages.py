"""The new request's handlers: ``/requests/new/{agreement}`` (GET shows, POST sends).

An operator opens a conversation from the console as a case system does through the local API:
the form builds the Request, the node checks it (schema, rules, the directory), signs, stores
and queues it; anything it refuses comes back in Russian next to its field, with what was typed
still in the form. The bodies offered as recipients are the directory's, of other states, that
exchange under the agreement.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from gateway.exchange.conversation import ProtocolError
from gateway.exchange.service import Action
from gateway.model.problems import DocumentRejected
from gateway.model.profiles import PROFILES
from gateway.web.console.action_pages import discard_uploads, read_streamed
from gateway.web.console.actions import Upload, in_form_words
from gateway.web.console.auth import FORM_STREAM, see_other
from gateway.web.console.context import ACTOR, CONTEXT, require
from gateway.web.console.pages import field_texts, flash_sent, problem_text
from gateway.web.console.render import render
from gateway.web.console.request_form import (
    FIELDS,
    Recipient,
    RequestForm,
    build_request,
    fields_for,
    initial_form,
    problems_by_field,
    read_request_form,
    recipients,
)


def _page(
    request: web.Request,
    agreement: str,
    offered: Sequence[Recipient],
    form: RequestForm,
    *,
    general: tuple[str, ...] = (),
    status: int = 200,
) -> web.Response:
    return render(
        request,
        "new_request.html",
        {
            "agreement": agreement,
            "fields": [(f, f.choices) for f in fields_for(agreement, offered)],
            "form": form,
            "general": general,
            "no_recipients": not offered,
        },
        status=status,
    )


async def _offered(request: web.Request) -> tuple[str, tuple[Recipient, ...]]:
    require(request[ACTOR], Action.SUBMIT)
    agreement = request.match_info["agreement"]
    if agreement not in FIELDS:
        raise web.HTTPNotFound()
    ctx = request.app[CONTEXT]
    directory = await ctx.admin.directory()
    return agreement, recipients(directory, agreement, ctx.identity.body_id)


async def new_request_form(request: web.Request) -> web.Response:
    agreement, offered = await _offered(request)
    form = initial_form(agreement, request.app[CONTEXT].identity.body_name)
    return _page(request, agreement, offered, form)


async def new_request(request: web.Request) -> web.Response:
    agreement, offered = await _offered(request)
    uploads: dict[str, Upload] = {}
    upload_errors: dict[str, str] = {}
    if FORM_STREAM in request:
        working_language = PROFILES[agreement].language  # CIS Art. 19; SC Art. 11
        fields, uploads, upload_errors = await read_streamed(request, True, working_language)
    else:
        fields = await _posted(request, agreement)
    sent = False
    try:
        form = read_request_form(agreement, fields, offered, upload_errors, uploads)
        response = await _send(request, agreement, offered, form, uploads)
        sent = response.status == 303
        return response
    finally:
        if not sent:
            # Refused: the operator attaches the file again with the corrected form.
            await discard_uploads(request, uploads.values())


async def _posted(request: web.Request, agreement: str) -> dict[str, str]:
    """A form without files, its several-valued fields joined by commas."""
    posted = await request.post()
    fields = {k: v for k, v in posted.items() if isinstance(v, str)}
    for item in FIELDS[agreement]:
        if item.widget == "checks":
            fields[item.name] = ",".join(
                v for v in posted.getall(item.name, []) if isinstance(v, str)
            )
    return fields


async def _send(
    request: web.Request,
    agreement: str,
    offered: Sequence[Recipient],
    form: RequestForm,
    uploads: dict[str, Upload],
) -> web.Response:
    if form.errors:
        return _page(request, agreement, offered, form, status=422)
    ctx = request.app[CONTEXT]
    recipient = next(r for r in offered if r.body_id == form.values["Recipient"])
    document = build_request(
        agreement,
        form,
        sender=ctx.identity.body_id,
        recipient=recipient,
        now=ctx.clock(),
        uploads=uploads,
    )
    try:
        result = await ctx.service.submit(document, actor=request[ACTOR])
    except DocumentRejected as rejected:
        by_field = problems_by_field(
            agreement, [in_form_words(p) for p in rejected.problems], uploads
        )
        errors, general = field_texts(by_field)
        shown = RequestForm(form.raw, form.values, errors)
        return _page(request, agreement, offered, shown, general=general, status=422)
    except ProtocolError as exc:
        general = (problem_text(exc.problem()),)
        return _page(request, agreement, offered, form, general=general, status=409)
    flash_sent(
        request, f"Запрос принят к отправке (сообщение {result.message_id}).", result.warnings
    )
    return see_other(request, "conversation", conversation_id=result.conversation_id)

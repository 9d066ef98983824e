"""The action forms' handlers: ``/conversations/{id}/actions/{action}`` (GET shows, POST sends).

The flow is the refusal form's: load the conversation (a confidential one needs the stated
purpose), check that the action is one the state and our role allow now, read the form, build
the document, let the node check, sign, store and queue it; anything it refuses comes back in
Russian next to its field, with what was typed still in the form.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime

from aiohttp import BodyPartReader, web
from aiohttp.hdrs import CONTENT_TYPE

from gateway.app import disclosures
from gateway.exchange.attachments import AttachmentMeta, PartTooLarge
from gateway.exchange.conversation import ProtocolError
from gateway.exchange.disclosure import DisclosureRefused
from gateway.exchange.service import Action, ConversationView
from gateway.model.problems import DocumentRejected
from gateway.model.profiles import PROFILES
from gateway.web.case_acts import run_case_act
from gateway.web.console.actions import (
    DISCLOSURE,
    SPECS,
    UPLOAD_FIELDS,
    ActionForm,
    ActionSpec,
    Upload,
    available_actions,
    build_document,
    choices_of,
    clean_file_name,
    clean_media_type,
    disclosure_offered,
    in_form_words,
    problems_by_field,
    read_action_form,
    slot_of,
)
from gateway.web.console.auth import FORM_STREAM, error_page, see_other
from gateway.web.console.context import ACTOR, CONTEXT, SESSION, acting_user, require
from gateway.web.console.labels import STATE_LABELS, article_ru, label
from gateway.web.console.pages import (
    conversation_in_reach,
    field_texts,
    flash_sent,
    locked_page,
    problem_text,
)
from gateway.web.console.render import format_datetime, render
from gateway.web.console.streamed import MAX_FORM_FIELDS, READ_CHUNK, field_text
from gateway.xml.labels import LANGUAGES_RU


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
        },
        status=status,
    )


async def _actionable(request: web.Request) -> tuple[ActionSpec, ConversationView] | web.Response:
    actor = request[ACTOR]
    conversation_id = request.match_info["conversation_id"]
    name = request.match_info["action"]
    require(actor, Action.DISCLOSE if name == DISCLOSURE.name else Action.SUBMIT)
    view, locked = await conversation_in_reach(request, conversation_id)
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


async def read_streamed(
    request: web.Request, takes_files: bool, working_language: str
) -> tuple[dict[str, str], dict[str, Upload], dict[str, str]]:
    """The rest of a streamed form (:data:`FORM_STREAM`): its text fields, and its files
    streamed into the node as they arrive (hashed and encrypted, never held whole), or a
    Russian error for a file's field. A file is uploaded in the language the form gave before
    it (a translation in the agreement's ``working_language``)."""
    reader = request[FORM_STREAM]
    fields: dict[str, str] = {}
    uploads: dict[str, Upload] = {}
    errors: dict[str, str] = {}
    parts = 0
    try:
        while (part := await reader.next()) is not None:
            parts += 1  # parts, not names: repeated names are joined, and bounded too
            if not isinstance(part, BodyPartReader) or parts > MAX_FORM_FIELDS:
                raise web.HTTPBadRequest(text="unexpected form part")
            name = part.name or ""
            if name in UPLOAD_FIELDS and takes_files and name not in uploads and part.filename:
                language = _file_language(name, fields, working_language)
                upload, error = await _stream_file(request, part, language)
                if upload is not None:
                    uploads[name] = upload
                if error is not None:
                    errors[name] = error
            elif name and part.filename is None:
                text = await field_text(part)
                # Several values under one name (ticked checkboxes) are joined by commas.
                fields[name] = f"{fields[name]},{text}" if name in fields else text
            else:
                await part.release()  # a file no field of this form takes
    except BaseException:
        await discard_uploads(request, uploads.values())  # the form after a file was refused
        raise
    return fields, uploads, errors


def _file_language(field_name: str, fields: Mapping[str, str], working_language: str) -> str:
    """The language a file is declared in: a translation's is the agreement's working language;
    the file's is its slot's choice (posted before it), the working language when none or
    unknown."""
    slot = slot_of(field_name)
    chosen = fields.get(slot.language, "").strip() if slot is not None else ""
    if slot is None or field_name == slot.translation or chosen not in LANGUAGES_RU:
        return working_language
    return chosen


async def discard_uploads(request: web.Request, uploads: Iterable[Upload]) -> None:
    """Delete uploads a refused form took in (the operator attaches them again, if at all)."""
    service = request.app[CONTEXT].service
    for upload in uploads:
        await service.discard_upload(upload.attachment_id, actor=request[ACTOR])


async def _stream_file(
    request: web.Request, part: BodyPartReader, language: str
) -> tuple[Upload | None, str | None]:
    service = request.app[CONTEXT].service
    meta = AttachmentMeta(
        clean_file_name(part.filename or ""),
        clean_media_type(part.headers.get(CONTENT_TYPE)),
        language=language,
    )

    first = await part.read_chunk(READ_CHUNK)
    if not first:
        return None, "Файл пуст."  # nothing to take in, so nothing to delete

    async def chunks() -> AsyncIterator[bytes]:
        chunk = first
        while chunk:
            yield chunk
            chunk = await part.read_chunk(READ_CHUNK)

    try:
        staged = await service.upload_attachment(meta, chunks(), actor=request[ACTOR])
    except PartTooLarge as too_large:
        return None, (
            f"Файл больше {too_large.limit // (1024 * 1024)} МБ — предела этого узла; "
            "разделите его на части или обратитесь к администратору."
        )
    return Upload(meta.name, staged["attachment_id"]), None


async def action(request: web.Request) -> web.Response:
    found = await _actionable(request)
    if isinstance(found, web.Response):
        return found
    spec, view = found
    uploads: dict[str, Upload] = {}
    upload_errors: dict[str, str] = {}
    if FORM_STREAM in request:
        working_language = PROFILES[view.summary.agreement].language  # CIS Art. 19; SC Art. 11
        fields, uploads, upload_errors = await read_streamed(
            request, spec.uploads, working_language
        )
    else:
        fields = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    form = read_action_form(spec, view, fields, uploads, upload_errors)
    sent = False
    try:
        response = await _act(request, spec, view, form)
        sent = response.status == 303
        return response
    finally:
        if not sent:
            # Refused: the operator attaches the files again with the corrected form, so the
            # bytes taken in for this one are deleted now, not left for the one-day sweep.
            await discard_uploads(request, uploads.values())


async def _act(
    request: web.Request, spec: ActionSpec, view: ConversationView, form: ActionForm
) -> web.Response:
    ctx = request.app[CONTEXT]
    if form.errors:
        return _page(request, spec, view, form, status=422)
    if spec is DISCLOSURE:
        return await _disclose(request, view, form)
    document = build_document(spec, view, form, ctx.clock())
    try:
        result = await ctx.service.submit(document, actor=request[ACTOR])
    except DocumentRejected as rejected:
        by_field = problems_by_field(
            spec, [in_form_words(p) for p in rejected.problems], form.uploads
        )
        errors, general = field_texts(by_field)
        shown = ActionForm(raw=form.raw, values=form.values, errors=errors)
        return _page(request, spec, view, shown, general=general, status=422)
    except ProtocolError as exc:
        return _page(request, spec, view, form, general=(problem_text(exc.problem()),), status=409)
    notice = f"«{spec.title_ru}» принят к отправке (сообщение {result.message_id})."
    flash_sent(request, notice, result.warnings)
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

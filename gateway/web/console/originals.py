"""The console's "original by post" forms (CIS Art. 10 para. 1): on a conversation's page an
operator records when the paper original of our document was posted, with the carrier's
tracking number, and when an original arrived. :mod:`gateway.app.originals` — what ``gateway
originals`` and the local API call — checks the rules, sets each date once and audits it
(``original.sent``, ``original.received``); this module only reads the form and shows the
refusal in Russian, naming the field and the article.

    POST /conversations/{conversation_id}/messages/{message_id}/original/sent      sent_on, tracking
    POST /conversations/{conversation_id}/messages/{message_id}/original/received  received_on
"""

from __future__ import annotations

import re
from datetime import date

from aiohttp import web

from gateway.app import originals
from gateway.exchange.service import Action
from gateway.rules.originals import ARTICLE_RU, MAX_TRACKING, OriginalRefused
from gateway.web.case_acts import run_case_act
from gateway.web.console.auth import error_page, see_other
from gateway.web.console.context import ACTOR, SESSION, acting_user, require

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
"""What an HTML ``date`` input sends."""


def _date(raw: object) -> date | None:
    if not isinstance(raw, str) or not _DATE.fullmatch(raw.strip()):
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        return None


async def original_sent(request: web.Request) -> web.Response:
    require(request[ACTOR], Action.RECORD_ORIGINAL)
    conversation_id = request.match_info["conversation_id"]
    form = await request.post()
    sent_on, tracking = _date(form.get("sent_on")), form.get("tracking")
    if sent_on is None:
        return _refused(request, 400, f"sent_on: укажите дату отправки оригинала ({ARTICLE_RU}).")
    if not isinstance(tracking, str) or len(tracking) > MAX_TRACKING * 2:
        return _refused(request, 400, f"tracking: укажите трек-номер ({ARTICLE_RU}).")
    try:
        await run_case_act(
            originals.mark_sent,
            acting_user(request),
            request.match_info["message_id"],
            sent_on,
            tracking,
        )
    except OriginalRefused as refused:
        return _refused(request, _status(refused), f"{refused.field}: {refused.message_ru}")
    request[SESSION].flash = f"Отправка оригинала почтой отмечена ({ARTICLE_RU})."
    return see_other(request, "conversation", conversation_id=conversation_id)


async def original_received(request: web.Request) -> web.Response:
    require(request[ACTOR], Action.RECORD_ORIGINAL)
    conversation_id = request.match_info["conversation_id"]
    form = await request.post()
    received_on = _date(form.get("received_on"))
    if received_on is None:
        return _refused(
            request, 400, f"received_on: укажите дату получения оригинала ({ARTICLE_RU})."
        )
    try:
        await run_case_act(
            originals.mark_received,
            acting_user(request),
            request.match_info["message_id"],
            received_on,
        )
    except OriginalRefused as refused:
        return _refused(request, _status(refused), f"{refused.field}: {refused.message_ru}")
    request[SESSION].flash = f"Получение оригинала отмечено ({ARTICLE_RU})."
    return see_other(request, "conversation", conversation_id=conversation_id)


def _status(refused: OriginalRefused) -> int:
    return 409 if refused.conflict else 422


def _refused(request: web.Request, status: int, text: str) -> web.Response:
    return error_page(request, status, "Отметка об оригинале не сделана", text)

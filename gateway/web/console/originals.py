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
from collections.abc import Callable
from datetime import date
from typing import Any

from aiohttp import web

from gateway.app import originals
from gateway.exchange.service import Action
from gateway.rules.originals import ARTICLE_RU, MAX_TRACKING, OriginalRefused
from gateway.web.case_acts import run_case_act
from gateway.web.console.auth import back_to_conversation, error_page, refused_page
from gateway.web.console.context import ACTOR, acting_user, require

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
"""What an HTML ``date`` input sends."""

_TITLE = "Отметка об оригинале не сделана"


def _date(raw: object) -> date | None:
    if not isinstance(raw, str) or not _DATE.fullmatch(raw.strip()):
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        return None


def _sent(form: Any) -> dict[str, Any] | str:
    """The posted dispatch (``sent_on``, ``tracking``), or what is wrong with the form."""
    sent_on, tracking = _date(form.get("sent_on")), form.get("tracking")
    if sent_on is None:
        return f"sent_on: укажите дату отправки оригинала ({ARTICLE_RU})."
    if not isinstance(tracking, str) or len(tracking) > MAX_TRACKING * 2:
        return f"tracking: укажите трек-номер ({ARTICLE_RU})."
    return {"sent_on": sent_on, "tracking": tracking}


def _received(form: Any) -> dict[str, Any] | str:
    """The posted arrival (``received_on``), or what is wrong with the form."""
    received_on = _date(form.get("received_on"))
    if received_on is None:
        return f"received_on: укажите дату получения оригинала ({ARTICLE_RU})."
    return {"received_on": received_on}


async def _record(
    request: web.Request,
    read: Callable[[Any], dict[str, Any] | str],
    record: Callable[..., Any],
    done: str,
) -> web.Response:
    """``record(ctx, message_id, **read(form))`` of :mod:`gateway.app.originals` as the
    signed-in user, then back to the conversation saying ``done``. A form ``read`` finds wrong
    is 400 (the act is not taken); the act's refusal names the field."""
    require(request[ACTOR], Action.RECORD_ORIGINAL)
    fields = read(await request.post())
    if isinstance(fields, str):
        return error_page(request, 400, _TITLE, fields)
    try:
        await run_case_act(record, acting_user(request), request.match_info["message_id"], **fields)
    except OriginalRefused as refused:
        return refused_page(request, _TITLE, refused, f"{refused.field}: {refused.message_ru}")
    return back_to_conversation(request, f"{done} ({ARTICLE_RU}).")


async def original_sent(request: web.Request) -> web.Response:
    return await _record(request, _sent, originals.mark_sent, "Отправка оригинала почтой отмечена")


async def original_received(request: web.Request) -> web.Response:
    return await _record(
        request, _received, originals.mark_received, "Получение оригинала отмечено"
    )

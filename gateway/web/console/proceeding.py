"""The console's "proceeding closed" form (CIS Art. 9.6): an operator records when the
proceeding of a conversation was closed; retention policies counting from "proceeding-closed"
start there. :func:`gateway.app.proceedings.close_proceeding` — what ``gateway proceedings
close`` and the local API call — sets the date once and audits it (``proceeding.closed``); this
module only reads the form and shows the refusal in Russian.

    POST /conversations/{conversation_id}/proceeding-closed   closed_at (local), reference
"""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web

from gateway.app.proceedings import (
    MAX_PROCEEDING_REFERENCE,
    ProceedingCloseRefused,
)
from gateway.app.proceedings import (
    close_proceeding as close,
)
from gateway.exchange.service import Action
from gateway.web.case_acts import run_case_act
from gateway.web.console.auth import back_to_conversation, error_page, refused_page
from gateway.web.console.context import ACTOR, CONTEXT, acting_user, require
from gateway.web.xmlchars import first_forbidden

_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
"""What an HTML ``datetime-local`` input sends (seconds are not asked for)."""

_TITLE = "Производство не отмечено закрытым"


async def close_proceeding(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    require(request[ACTOR], Action.CLOSE_PROCEEDING)
    form = await request.post()
    raw_at, reference = form.get("closed_at"), form.get("reference")
    if not isinstance(raw_at, str) or not _LOCAL.fullmatch(raw_at.strip()):
        return _refused(request, "Укажите дату и время закрытия производства.")
    if (
        not isinstance(reference, str)
        or not reference.strip()
        or len(reference) > MAX_PROCEEDING_REFERENCE
        or first_forbidden(reference) is not None
    ):
        return _refused(
            request,
            f"Укажите основание: реквизиты акта о закрытии производства (1–"
            f"{MAX_PROCEEDING_REFERENCE} знаков, без управляющих символов).",
        )
    # The operator enters the time as the console shows times: in the console's zone.
    closed_at = datetime.fromisoformat(raw_at.strip()).replace(tzinfo=ctx.timezone)
    try:
        await run_case_act(
            close, acting_user(request), request.match_info["conversation_id"], closed_at, reference
        )
    except ProceedingCloseRefused as refused:
        return refused_page(request, _TITLE, refused)
    return back_to_conversation(
        request,
        "Производство отмечено закрытым; срок хранения, отсчитываемый от закрытия "
        "производства, начался (ст. 9.6 Соглашения СНГ).",
    )


def _refused(request: web.Request, text: str) -> web.Response:
    """400: the form itself is wrong (the node was not asked)."""
    return error_page(request, 400, _TITLE, text)

"""The console's pages: dashboard, conversations, a conversation, a message.

Every handler calls only :class:`gateway.exchange.service.LocalService` (and the injected
dashboard sources); the service enforces roles and records reads. The console adds what a
person needs on top: masking of confidential values for anyone who has not stated a purpose
(CIS Art. 9.1), Russian labels, deadline highlighting.

Confidential conversations (CIS Art. 16; SC Art. 8.1): a user with the role
``confidential-reader`` states the purpose of reading in a form (POST, CSRF-checked); the
console keeps it in the server-side session for that conversation for
:data:`~gateway.app.sessions.PURPOSE_VALID_FOR` and passes it with every read, which
the service records. Without it, values read «скрыто».
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any

from aiohttp import hdrs, web

from gateway.exchange.attachments import AttachmentCheckRefused
from gateway.exchange.conversation import CLOSED_STATES, ProtocolError, State
from gateway.exchange.sending import ResendRefused
from gateway.exchange.service import (
    ACCESS,
    Action,
    Actor,
    ConversationFilter,
    ConversationSummary,
    ConversationView,
    MessageSummary,
    PermissionDenied,
    PurposeRequired,
    may,
)
from gateway.model.bodies import BODY_ID_PATTERN
from gateway.model.numbers import whole_number
from gateway.model.problems import ConfigurationError, DocumentRejected
from gateway.model.profiles import PROFILES
from gateway.rules.clock import days_left as clock_days_left
from gateway.rules.deadlines import DEFAULT_REMINDER_DAYS_BEFORE
from gateway.rules.originals import AGREEMENTS_WITH_ORIGINAL
from gateway.web.console.actions import (
    ACTION_NAMES,
    DISCLOSURE,
    available_actions,
    disclosure_offered,
)
from gateway.web.console.auth import error_page, refused_page, see_other
from gateway.web.console.context import ACTOR, CONTEXT, SESSION
from gateway.web.console.labels import ROLE_LABELS, STATE_LABELS, article_ru, label
from gateway.web.console.render import field_rows, header_files, render
from gateway.web.console.request_form import agreements_of
from gateway.web.server import stream_attachment
from gateway.web.xmlchars import first_forbidden

PAGE_SIZE = 50
"""Conversations per page: a screenful an operator can scan."""

NEAR_DEADLINE_DAYS = DEFAULT_REMINDER_DAYS_BEFORE
"""Highlight a request from this many days (the agreement's unit) before its due date: the
same point at which the node's reminder job warns (a working week for CIS)."""

DASHBOARD_HORIZON = timedelta(days=10)
"""How far ahead the dashboard looks for due dates: covers NEAR_DEADLINE_DAYS working days
across a weekend and a holiday."""

DASHBOARD_DEADLINE_ROWS = 50
"""Requests the dashboard lists near their deadline, most urgent first."""

MIN_PURPOSE_CHARS = 10
"""A purpose is a sentence naming the proceeding and why (CIS Art. 9.1), not "x"."""

MAX_PURPOSE_CHARS = 500
"""A page of text would be an attempt to bloat the audit trail, not a purpose."""

MAX_CURSOR_CHARS = 512
"""Cursors are the service's own keyset tokens (tens of characters)."""

MAX_FILTER_CHARS = 64
MAX_SEARCH_CHARS = 200
"""A case number or a debtor's name (an organisation's name may be long)."""
"""Longest filter value looked at (codes and dates are far shorter)."""

_CURSOR = re.compile(r"^[A-Za-z0-9\-._~+/=]+$")

DEADLINE_STATES = tuple(s for s in State if s not in CLOSED_STATES and s is not State.IDLE)
"""States in which a conversation's due date still matters."""

OPENING_KINDS = tuple(
    sorted({k.name for p in PROFILES.values() for k in p.kinds.values() if k.opens_conversation})
)


# --- deadlines ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DaysLeft:
    days: int
    working: bool
    """True: working days (CIS Art. 12); False: calendar days (SC Art. 6.1)."""

    @property
    def css(self) -> str:
        if self.days < 0:
            return "overdue"
        return "near" if self.days <= NEAR_DEADLINE_DAYS else ""

    @property
    def text(self) -> str:
        unit = "раб. дн." if self.working else "дн."
        if self.days < 0:
            return f"просрочен на {-self.days} {unit}"
        if self.days == 0:
            return "последний день"
        return f"осталось {self.days} {unit}"


def days_left(request: web.Request, summary: ConversationSummary) -> DaysLeft | None:
    """Days left until the conversation's due date by the one legal clock
    (gateway.rules.clock): the requested party's calendar, zone and the term's unit."""
    if summary.deadline is None or summary.state in CLOSED_STATES:
        return None
    profile = PROFILES.get(summary.agreement)
    if profile is None:
        return None
    ctx = request.app[CONTEXT]
    try:
        days = clock_days_left(
            summary.agreement,
            summary.requested_party,
            summary.deadline,
            ctx.clock(),
            ctx.calendars(),
        )
    except (ValueError, ConfigurationError):
        return None
    return DaysLeft(days, profile.deadline.working_days)


# --- dashboard ---------------------------------------------------------------------------------


async def dashboard(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    actor = request[ACTOR]
    horizon = ctx.today() + DASHBOARD_HORIZON
    # Only what the user's roles allow is asked for (the one table says): the node would
    # refuse the rest and record each refusal, a dozen on every view of this page.
    may_count = may(actor, Action.COUNT_CONVERSATIONS)
    may_list = may(actor, Action.LIST_CONVERSATIONS)
    # The four sources are asked at once: the page takes the longest of them, not their sum
    # (each is a hand-off to a worker thread, which on a busy machine waits for a core). All are
    # cheap: the counts table, one index range a state, the key files, the outbox's due index.
    counted, due, keys, undelivered = await asyncio.gather(
        ctx.service.counts_by_state(actor=actor) if may_count else _nothing(),
        ctx.service.conversations_due(
            tuple(state.value for state in DEADLINE_STATES),
            due_by=horizon,
            limit=DASHBOARD_DEADLINE_ROWS,
            actor=actor,
        )
        if may_list
        else _nothing(),
        # Asked only of users whose roles allow it (None: the page says so, as for the counts).
        ctx.expiring_keys() if may(actor, Action.READ_KEY_EXPIRY) else _nothing(),
        ctx.undelivered(actor) if may_list else _nothing(),
        return_exceptions=True,
    )
    for failed in (keys, undelivered):
        if isinstance(failed, BaseException):
            raise failed
    counts: dict[str, int] | None
    if counted is None or isinstance(counted, PermissionDenied):
        counts = None
    elif isinstance(counted, BaseException):
        raise counted
    else:
        counts = counted
    near: list[tuple[ConversationSummary, DaysLeft]] = []
    deadlines_denied = due is None or isinstance(due, PermissionDenied)
    if isinstance(due, BaseException) and not deadlines_denied:
        raise due
    # Soonest due first, across states (the node's order); days left are shown beside.
    for summary in due if isinstance(due, tuple) else ():
        left = days_left(request, summary)
        if left is not None and left.css:
            near.append((summary, left))
    return render(
        request,
        "dashboard.html",
        {
            "counts": _in_state_order(counts) if counts is not None else None,
            "near": near[:DASHBOARD_DEADLINE_ROWS],
            "deadlines_denied": deadlines_denied,
            "keys": keys,
            "undelivered": undelivered,
        },
    )


async def _nothing() -> None:
    return None


def _in_state_order(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Counts in the protocol's order of states (open ones first), unknown codes last."""
    order = {state: i for i, state in enumerate(STATE_LABELS)}
    return sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))


# --- conversations -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    values: Mapping[str, str]
    """The filters as typed (non-empty ones), to refill the form and build page links."""
    filter: ConversationFilter
    after: str | None
    errors: Mapping[str, str]


def filled_fields(query: Mapping[str, Any], longest: Mapping[str, int]) -> dict[str, str]:
    """The query's non-empty fields among ``longest``'s names, stripped and cut to their
    longest: a filter left empty means "any"."""
    values: dict[str, str] = {}
    for name, most in longest.items():
        raw = query.get(name, "")
        if isinstance(raw, str) and raw.strip():
            values[name] = raw.strip()[:most]
    return values


_FILTER_FIELDS: Mapping[str, int] = MappingProxyType(
    {
        "q": MAX_SEARCH_CHARS,
        **dict.fromkeys(
            ("agreement", "body", "state", "kind", "deadline_before", "confidential"),
            MAX_FILTER_CHARS,
        ),
    }
)


def read_filters(query: Mapping[str, str]) -> Filters:
    """The list's filters from the query string; empty fields mean "any"."""
    values = filled_fields(query, _FILTER_FIELDS)
    errors: dict[str, str] = {}
    if "agreement" in values and values["agreement"] not in PROFILES:
        errors["agreement"] = "Выберите соглашение из списка."
    if "state" in values and values["state"] not in {s.value for s in State}:
        errors["state"] = "Выберите состояние из списка."
    if "kind" in values and values["kind"] not in OPENING_KINDS:
        errors["kind"] = "Выберите вид документа из списка."
    if "body" in values:
        values["body"] = values["body"].upper()
        if not BODY_ID_PATTERN.fullmatch(values["body"]):
            errors["body"] = "Код органа вида RU-FSSP."
    deadline_before: date | None = None
    if "deadline_before" in values:
        try:
            deadline_before = date.fromisoformat(values["deadline_before"])
        except ValueError:
            errors["deadline_before"] = "Дата в виде ГГГГ-ММ-ДД."
    confidential = {"yes": True, "no": False}.get(values.get("confidential", ""))
    if "confidential" in values and confidential is None:
        errors["confidential"] = "Выберите из списка."
    after = query.get("after") or None
    if after is not None and (len(after) > MAX_CURSOR_CHARS or not _CURSOR.fullmatch(after)):
        errors["after"] = "Ссылка на страницу повреждена; начните с первой страницы."
        after = None
    conversation_filter = ConversationFilter(
        agreement=values.get("agreement") if "agreement" not in errors else None,
        body=values.get("body") if "body" not in errors else None,
        state=values.get("state") if "state" not in errors else None,
        kind=values.get("kind") if "kind" not in errors else None,
        deadline_before=deadline_before,
        confidential=confidential,
        search=values.get("q"),
    )
    return Filters(values, conversation_filter, after, errors)


async def _new_requests(request: web.Request) -> tuple[str, ...]:
    """The agreements the user may open a conversation under from here: our body exchanges
    under them and the directory lists a body of another state to send to."""
    if not may(request[ACTOR], Action.SUBMIT):
        return ()
    ctx = request.app[CONTEXT]
    return agreements_of(await ctx.admin.directory(), ctx.identity.body_id)


async def conversations(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    filters = read_filters(request.query)
    context: dict[str, Any] = {
        "new_requests": await _new_requests(request),
        "filters": filters.values,
        "errors": filters.errors,
        "agreements": list(PROFILES),
        "states": [s.value for s in State],
        "kinds": OPENING_KINDS,
        "items": [],
        "next_query": None,
        "first_query": None,
    }
    if filters.errors:
        return render(request, "conversations.html", context, status=400)
    page = await ctx.service.list_conversations(
        filters.filter, after=filters.after, limit=PAGE_SIZE, actor=request[ACTOR]
    )
    context["items"] = [(item, days_left(request, item)) for item in page.items]
    if page.next_cursor is not None:
        context["next_query"] = {**filters.values, "after": page.next_cursor}
    if filters.after is not None:
        context["first_query"] = dict(filters.values)
    return render(request, "conversations.html", context)


# --- one conversation --------------------------------------------------------------------------


def stated_purpose(request: web.Request, conversation_id: str) -> str | None:
    return request[SESSION].purpose_for(conversation_id, request.app[CONTEXT].clock())


@dataclass(frozen=True, slots=True)
class Locked:
    """Why a conversation's content is not shown, and what the user can do about it."""

    needs_purpose: bool
    """True: the user may read it after stating a purpose (has confidential-reader)."""
    role: str | None
    """The Russian name of a role the user lacks, when that is the reason."""


CONFIDENTIAL_READERS = ACCESS[Action.READ_DOCUMENT].confidential or ()
"""Who may read a confidential document once a purpose is stated (from the one table)."""
READERS = ACCESS[Action.READ_DOCUMENT].roles
"""Who may read any other document once a purpose is stated (CIS Art. 9.1)."""


def locked_reason(actor: Actor, exc: PermissionDenied | PurposeRequired | None = None) -> Locked:
    if isinstance(exc, PermissionDenied) and exc.needed not in CONFIDENTIAL_READERS:
        return Locked(False, label(ROLE_LABELS, exc.needed))
    if may(actor, Action.READ_DOCUMENT, confidential=True):
        return Locked(True, None)
    return Locked(False, label(ROLE_LABELS, CONFIDENTIAL_READERS[0]))


async def conversation_in_reach(
    request: web.Request, conversation_id: str
) -> tuple[ConversationView | None, Locked | None]:
    ctx = request.app[CONTEXT]
    actor = request[ACTOR]
    try:
        view = await ctx.service.conversation(
            conversation_id, actor=actor, purpose=stated_purpose(request, conversation_id)
        )
    except (PermissionDenied, PurposeRequired) as exc:
        return None, locked_reason(actor, exc)
    return view, None


def locked_page(
    request: web.Request,
    conversation_id: str,
    locked: Locked | None,
    message_id: str | None = None,
    next_page: str = "",
) -> web.Response:
    """The page of a conversation out of reach: the purpose form (200) when stating one opens
    it, else 403 naming the role; ``next_page``: where the stated purpose leads back to."""
    return render(
        request,
        "locked.html",
        {
            "conversation_id": conversation_id,
            "message_id": message_id,
            "locked": locked,
            "next": next_page,
        },
        status=200 if locked and locked.needs_purpose else 403,
    )


def may_refuse(actor: Actor, view: ConversationView) -> bool:
    summary = view.summary
    return (
        may(actor, Action.SUBMIT)
        and summary.opening_kind == "Request"
        and summary.state not in CLOSED_STATES
        and any(m.kind == "Request" and m.direction == "in" for m in view.messages)
    )


def _actions(actor: Actor, view: ConversationView) -> tuple[Any, ...]:
    """The forms this user may open on this conversation now."""
    actions = available_actions(view) if may(actor, Action.SUBMIT) else ()
    if may(actor, Action.DISCLOSE) and disclosure_offered(view):
        actions = (*actions, DISCLOSURE)
    return actions


async def conversation(request: web.Request) -> web.Response:
    conversation_id = request.match_info["conversation_id"]
    view, locked = await conversation_in_reach(request, conversation_id)
    if view is None:
        return locked_page(request, conversation_id, locked)
    # Counted here as on the overview and the list (the console's "today" in its time zone,
    # the agreement's unit), not taken from view.working_days_left: the same request must
    # never show two different counts on two pages.
    left = days_left(request, view.summary)
    return render(
        request,
        "conversation.html",
        {
            "originals": await _originals(request, view),
            "view": view,
            "summary": view.summary,
            "left": left,
            "purpose_stated": stated_purpose(request, conversation_id) is not None,
            "may_refuse": may_refuse(request[ACTOR], view),
            "actions": _actions(request[ACTOR], view),
            "may_read": may(
                request[ACTOR], Action.READ_DOCUMENT, confidential=view.summary.confidential
            ),
            "can_read": stated_purpose(request, conversation_id) is not None
            and may(request[ACTOR], Action.READ_DOCUMENT, confidential=view.summary.confidential),
        },
    )


async def _originals(request: web.Request, view: ConversationView) -> list[dict[str, Any]]:
    """The documents of this conversation followed by an original by post (CIS Art. 10 para.
    1) with what is recorded of it, for an operator; none under other agreements."""
    actor = request[ACTOR]
    if view.summary.agreement not in AGREEMENTS_WITH_ORIGINAL or not may(
        actor, Action.RECORD_ORIGINAL
    ):
        return []
    conversation_id = view.summary.conversation_id
    return await request.app[CONTEXT].service.originals(
        conversation_id, actor=actor, purpose=stated_purpose(request, conversation_id)
    )


def clean_purpose(raw: Any) -> tuple[str | None, str | None]:
    """(purpose, None) or (None, Russian error)."""
    if not isinstance(raw, str):
        return None, "Укажите цель ознакомления."
    at = first_forbidden(raw)
    if at is not None:
        return None, (
            f"Цель содержит символ U+{ord(raw[at]):04X} (позиция {at + 1}), недопустимый в "
            "XML 1.0 (раздел 2.2, Char); введите её заново, без управляющих символов."
        )
    text = " ".join(raw.split())
    if len(text) < MIN_PURPOSE_CHARS:
        return None, (
            f"Опишите цель не короче {MIN_PURPOSE_CHARS} символов: номер производства и "
            "для чего нужны сведения."
        )
    if len(text) > MAX_PURPOSE_CHARS:
        return None, f"Цель длиннее {MAX_PURPOSE_CHARS} символов; изложите короче."
    if any(unicodedata.category(c) in {"Cc", "Cf", "Co", "Cs"} for c in text):
        return None, "Цель содержит недопустимые символы."
    return text, None


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


async def _may_state_purpose(request: web.Request, actor: Actor, conversation_id: str) -> bool:
    """A purpose is stated only by someone who may then read: a confidential reader, or an
    operator on a conversation the node shows them (not a confidential one)."""
    if may(actor, Action.READ_DOCUMENT, confidential=True):
        return True
    if not may(actor, Action.READ_DOCUMENT):
        return False
    view, _ = await conversation_in_reach(request, conversation_id)
    return view is not None and not view.summary.confidential


async def state_purpose(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    actor = request[ACTOR]
    conversation_id = request.match_info["conversation_id"]
    form = await request.post()
    next_page = form.get("next", "")
    message_id = next_page if isinstance(next_page, str) and _UUID.fullmatch(next_page) else None
    if not await _may_state_purpose(request, actor, conversation_id):
        await ctx.audit(actor.name, "console.purpose_refused", {"conversation_id": conversation_id})
        return error_page(
            request,
            403,
            "Доступ запрещён",
            f"Читать документы этой переписки может только пользователь с ролью "
            f"«{label(ROLE_LABELS, CONFIDENTIAL_READERS[0])}».",
        )
    purpose, error = clean_purpose(form.get("purpose"))
    if purpose is None:
        return render(
            request,
            "locked.html",
            {
                "conversation_id": conversation_id,
                "message_id": message_id,
                "locked": Locked(True, None),
                "purpose_error": error,
            },
            status=400,
        )
    request[SESSION].state_purpose(conversation_id, purpose, ctx.clock())
    # The text itself is sealed in each read it covers (document.read); here only its digest,
    # so the statement can be matched to those reads without the words in clear.
    await ctx.audit(
        actor.name,
        "console.purpose_stated",
        {
            "conversation_id": conversation_id,
            "purpose_sha256": hashlib.sha256(purpose.encode()).hexdigest(),
        },
    )
    if message_id is not None:
        return see_other(request, "message", conversation_id=conversation_id, message_id=message_id)
    if next_page == "refuse":
        return see_other(request, "refuse", conversation_id=conversation_id)
    if (
        isinstance(next_page, str)
        and next_page.startswith("action:")
        and next_page.removeprefix("action:") in ACTION_NAMES
    ):
        return see_other(
            request,
            "action",
            conversation_id=conversation_id,
            action=next_page.removeprefix("action:"),
        )
    return see_other(request, "conversation", conversation_id=conversation_id)


# --- one message -------------------------------------------------------------------------------


def _find(view: ConversationView, message_id: str) -> MessageSummary:
    for message in view.messages:
        if message.message_id == message_id:
            return message
    raise web.HTTPNotFound()


async def message(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    actor = request[ACTOR]
    conversation_id = request.match_info["conversation_id"]
    message_id = request.match_info["message_id"]
    view, locked = await conversation_in_reach(request, conversation_id)
    if view is None:
        return locked_page(request, conversation_id, locked, message_id)
    summary = _find(view, message_id)
    purpose = stated_purpose(request, conversation_id)
    confidential = summary.confidential or view.summary.confidential
    message_view = None
    if confidential and not (may(actor, Action.READ_DOCUMENT, confidential=True) and purpose):
        # Not even asked of the service: the user could not see it anyway (the service would
        # refuse and audit a refusal the user never tried).
        locked = locked_reason(actor)
    elif purpose is None and not summary.purged:
        # Every document's content is read for a stated purpose (CIS Art. 9.1): the form first.
        locked = Locked(may(actor, Action.READ_DOCUMENT), label(ROLE_LABELS, READERS[0]))
    else:
        try:
            message_view = await ctx.service.message(message_id, actor=actor, purpose=purpose)
        except (PermissionDenied, PurposeRequired) as exc:
            locked = locked_reason(actor, exc)
    body = message_view.body if message_view is not None else None
    rows = (
        field_rows(
            body,
            agreement=view.summary.agreement,
            masked=locked is not None,
            timezone=ctx.timezone,
            zone_name=ctx.identity.zone_name,
        )
        if body is not None
        else None
    )
    return render(
        request,
        "message.html",
        {
            "conversation": view.summary,
            "summary": summary,
            "view": message_view,
            "rows": rows,
            "beside": _beside(message_view),
            "locked": locked,
            "purged": summary.purged or (message_view is not None and body is None),
        },
    )


async def reverify(request: web.Request) -> web.Response:
    """Verify the message's signatures again now; the node records the result, and the message
    page shows it (reading never verifies by itself)."""
    conversation_id, message_id, purpose = await _message_in_reach(request)
    await request.app[CONTEXT].service.reverify(message_id, actor=request[ACTOR], purpose=purpose)
    location = request.app.router["message"].url_for(
        conversation_id=conversation_id, message_id=message_id
    )
    raise web.HTTPSeeOther(str(location.with_fragment("verification")))


async def resend(request: web.Request) -> web.Response:
    """Send a document the peer refused for good (or a dead letter) again, same content, as a
    new message linked to it (corrections go through the case system and the API)."""
    conversation_id, message_id, _purpose_text = await _message_in_reach(request)
    try:
        result = await request.app[CONTEXT].service.resend(message_id, None, actor=request[ACTOR])
    except ResendRefused as refused:
        return refused_page(request, "Документ не отправлен повторно", refused)
    except DocumentRejected as rejected:
        text = " ".join(problem_text(p) for p in rejected.problems)
        return error_page(request, 422, "Документ не отправлен повторно", text)
    except ProtocolError as exc:
        return error_page(
            request, 409, "Документ не отправлен повторно", problem_text(exc.problem())
        )
    request[SESSION].flash = (
        f"Документ отправлен повторно как новое сообщение {result.message_id}; "
        f"исходное {message_id} связано с ним."
    )
    return see_other(
        request, "message", conversation_id=conversation_id, message_id=result.message_id
    )


async def _message_in_reach(request: web.Request) -> tuple[str, str, str | None]:
    """The route's conversation and message, when the user may read that conversation, and the
    purpose stated for it (it covers this conversation's messages only)."""
    conversation_id = request.match_info["conversation_id"]
    message_id = request.match_info["message_id"]
    view, locked = await conversation_in_reach(request, conversation_id)
    if view is None:
        if locked is not None and locked.needs_purpose:
            raise PurposeRequired("reading a confidential conversation needs a stated purpose")
        raise PermissionDenied(CONFIDENTIAL_READERS[0], "reading a confidential conversation")
    _find(view, message_id)
    return conversation_id, message_id, stated_purpose(request, conversation_id)


async def _download(request: web.Request, what: str) -> web.Response:
    ctx = request.app[CONTEXT]
    actor = request[ACTOR]
    _, message_id, purpose = await _message_in_reach(request)
    if what == "xml":
        content = await ctx.service.message_xml(message_id, actor=actor, purpose=purpose)
        media_type, suffix = "application/xml", ".xml"
    elif what == "pdf":
        content = await ctx.service.message_pdf(message_id, actor=actor, purpose=purpose)
        media_type, suffix = "application/pdf", ".pdf"
    else:
        content = await ctx.service.receipt_xml(message_id, actor=actor, purpose=purpose)
        media_type, suffix = "application/xml", ".receipt.xml"
    # The file name is the message id (a checked UUID) and a fixed suffix, never a field value.
    return web.Response(
        body=content,
        content_type=media_type,
        headers={hdrs.CONTENT_DISPOSITION: f'attachment; filename="{message_id}{suffix}"'},
    )


def _beside(view: Any) -> list[dict[str, Any]]:
    """The files sent beside the XML, as its signed header lists them (docs/attachments.md)."""
    if view is None:
        return []
    checks = {c["number"]: c for c in view.attachment_checks}
    return [
        {"number": n, **item, "check": checks.get(n)}
        for n, item in enumerate(header_files(view.header), start=1)
    ]


async def message_attachment(request: web.Request) -> web.StreamResponse:
    """One file sent beside the XML, streamed (same reading rights, purpose and audit as the
    document); the file name is the message id and the number, never the sent name."""
    _, message_id, purpose = await _message_in_reach(request)
    number = _attachment_number(request)
    info, read_from = await request.app[CONTEXT].service.open_attachment(
        message_id, number, actor=request[ACTOR], purpose=purpose
    )
    return await stream_attachment(request, info, read_from, message_id, number)


def _attachment_number(request: web.Request) -> int:
    """The path's attachment number, 1 to 50; any other text names no file (404)."""
    number = whole_number(request.match_info["number"], 2)
    if number is None or not 1 <= number <= 50:
        raise web.HTTPNotFound()
    return number


async def verify_attachment(request: web.Request) -> web.Response:
    """Verify the signatures of a signed PDF sent beside the document, read in place from the
    store; the node records the verdict and the message page shows it beside the file."""
    conversation_id, message_id, purpose = await _message_in_reach(request)
    number = _attachment_number(request)
    try:
        await request.app[CONTEXT].service.verify_attachment(
            message_id, number, actor=request[ACTOR], purpose=purpose
        )
    except AttachmentCheckRefused as refused:
        status = 500 if refused.code == AttachmentCheckRefused.DAMAGED else 422
        return error_page(request, status, "Подписи вложения не проверены", refused.message_ru)
    location = request.app.router["message"].url_for(
        conversation_id=conversation_id, message_id=message_id
    )
    raise web.HTTPSeeOther(str(location.with_fragment(f"attachment-check-{number}")))


async def message_xml(request: web.Request) -> web.Response:
    return await _download(request, "xml")


async def message_pdf(request: web.Request) -> web.Response:
    return await _download(request, "pdf")


async def receipt_xml(request: web.Request) -> web.Response:
    return await _download(request, "receipt")


def field_texts(
    by_field: Mapping[str, Sequence[Any]],
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """The node's problems as a form shows them: each field's Russian texts, and those of the
    document as a whole (``""``) for the top of the form."""
    errors = {
        name: tuple(problem_text(p) for p in problems)
        for name, problems in by_field.items()
        if name
    }
    return errors, tuple(problem_text(p) for p in by_field.get("", ()))


def flash_sent(request: web.Request, notice: str, warnings: Sequence[Mapping[str, Any]]) -> None:
    """Tell the user, on the next page, that a document was accepted, and what the node warned."""
    if warnings:
        notice += " Предупреждения: " + " ".join(w.get("message_ru", "") for w in warnings)
    request[SESSION].flash = notice


def problem_text(problem: Any) -> str:
    text = problem.message_ru
    if problem.remedy_ru:
        text += f" Что сделать: {problem.remedy_ru}"
    if problem.article:
        text += f" ({article_ru(problem.article)})"
    return text

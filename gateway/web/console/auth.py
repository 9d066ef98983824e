"""Sign-in, sessions, CSRF and security headers of the console.

Middlewares, outermost first::

    _errors     service exceptions and HTTP errors -> Russian error pages (no detail leaks)
    _session    cookie -> server-side session; every POST must carry the session's CSRF token
                (403 otherwise); every page but sign-in needs a signed-in, enabled user, whose
                roles are re-read on each request (disabling a user ends their session at once)

Every sign-in, failure, lock-out, sign-out and refused CSRF token is reported to the audit
callback. A failed sign-in says the same thing whatever went wrong (unknown name, wrong
password, disabled, locked) and takes the same time, so the page does not tell which names exist.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp import BodyPartReader, MultipartReader, hdrs, web

from gateway.app.passwords import MAX_PASSWORD_CHARS
from gateway.app.user_directory import USERNAME_PATTERN, User, roles_of
from gateway.exchange.service import Actor, NotFound, PermissionDenied, PurposeRequired
from gateway.model.problems import Refused
from gateway.web.console.context import ACTOR, CONTEXT, SESSION, SESSION_ID, ConsoleContext
from gateway.web.console.labels import ROLE_LABELS, label
from gateway.web.console.render import render
from gateway.web.server import log_failure, match_info_of

logger = logging.getLogger(__name__)

MAX_FAILED_ATTEMPTS = 5
"""Failed sign-ins in a row after which an account is locked: enough for typing slips, far too
few for guessing (with the lock below, ~480 guesses a day at most)."""

LOCKOUT_DURATION = timedelta(minutes=15)
"""How long a locked account stays locked; the counter starts again afterwards."""

MAX_FORM_BYTES = 64 * 1024
"""Largest form the console accepts: its biggest form is a refusal's text (4,000 characters,
at most 4 bytes each in UTF-8, then percent-encoded) plus a few small fields."""

UPLOAD_ROUTES = frozenset({"action", "new_request", "admin_directory_import", "admin_key_import"})
"""Named routes whose forms may carry a file. Posted as ``multipart/form-data`` they are read
as a stream (:data:`FORM_STREAM`), the CSRF token first (``gateway.web.console.streamed``), so
an answer's or a request's file of any size goes into the node as it arrives, and the
directory (up to ``MAX_DIRECTORY_BYTES``) or a certificate is held to its own bound; every
other post is held to MAX_FORM_BYTES."""

FORM_STREAM = web.RequestKey("console_form_stream", MultipartReader)
"""An upload route's multipart form after its CSRF token was checked: the handler reads the
rest of the parts from here."""

MAX_TOKEN_BYTES = 256
"""A CSRF token is far shorter; a longer first part is not one."""

PUBLIC_ROUTES = frozenset({"login", "static"})
"""Named routes reachable without signing in."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
"""No script runs on any console page (none is needed: every action is a plain form); styles
only from our own static folder; forms post only back to the console."""

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
"""On every console response, error pages and static files included."""

HSTS = "max-age=31536000"
"""Strict-Transport-Security when served over TLS: browsers then never try plain HTTP."""

SERVER_HEADER = "cis-exchange-gateway"

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_ERRORS: Mapping[int, tuple[str, str]] = {
    400: ("Неверный запрос", "Проверьте введённые значения и повторите."),
    403: ("Доступ запрещён", "Для этого действия у вас нет прав."),
    404: ("Страница не найдена", "Такой страницы, переписки или сообщения нет."),
    405: ("Метод не допускается", "Этот адрес не принимает такой запрос."),
    413: ("Слишком большой запрос", "Форма содержит слишком много данных."),
    416: ("Диапазон за концом файла", "Файл короче запрошенного места: скачайте его заново."),
}


def see_other(request: web.Request, name: str, **parts: str) -> web.Response:
    """A 303 to the named route (a redirect never goes anywhere a request chose)."""
    location = str(request.app.router[name].url_for(**parts))
    return web.Response(status=303, headers={hdrs.LOCATION: location})


def back_to_conversation(request: web.Request, flash: str) -> web.Response:
    """A 303 back to the page of the route's conversation, which says ``flash`` once."""
    request[SESSION].flash = flash
    conversation_id = request.match_info["conversation_id"]
    return see_other(request, "conversation", conversation_id=conversation_id)


def error_page(request: web.Request, status: int, title: str, text: str) -> web.Response:
    return render(
        request, "error.html", {"title": title, "text": text, "status": status}, status=status
    )


def refused_page(
    request: web.Request, title: str, refused: Refused, text: str | None = None
) -> web.Response:
    """The page for an act the node refused (:class:`Refused`): 409 when the record's own
    state is the cause, else 422 — as the local API answers it; ``text``: the refusal's
    Russian message unless given."""
    status = 409 if refused.conflict else 422
    return error_page(request, status, title, refused.message_ru if text is None else text)


def route_name(request: web.Request) -> str | None:
    match_info = match_info_of(request)
    if match_info is None:  # a request aiohttp's parser refused never reached the router
        return None
    if match_info.http_exception is not None or match_info.route.resource is None:
        return None
    return match_info.route.resource.name


@web.middleware
async def errors_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        title, text = _HTTP_ERRORS.get(exc.status, ("Ошибка", "Запрос не выполнен."))
        page = error_page(request, exc.status, title, text)
        if hdrs.CONTENT_RANGE in exc.headers:  # a 416 names the file's size
            page.headers[hdrs.CONTENT_RANGE] = exc.headers[hdrs.CONTENT_RANGE]
        return page
    except NotFound:
        title, text = _HTTP_ERRORS[404]
        return error_page(request, 404, title, text)
    except PermissionDenied as exc:
        return error_page(
            request,
            403,
            "Доступ запрещён",
            f"Для этого действия нужна роль «{label(ROLE_LABELS, exc.needed)}».",
        )
    except PurposeRequired:
        return error_page(
            request,
            403,
            "Нужна цель ознакомления",
            "Документы читаются для указанной цели: откройте переписку и укажите цель "
            "ознакомления (ст. 9.1 Соглашения СНГ).",
        )
    except Exception as exc:
        log_failure(logger, f"console request failed: route={route_name(request)}", exc)
        return error_page(
            request, 500, "Внутренняя ошибка", "Подробности — в журнале узла. Повторите позже."
        )


def _same_origin(request: web.Request) -> bool:
    """False when the browser says the form came from another site (defence in depth beside
    SameSite=Strict and the CSRF token)."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in {"same-origin", "none"}:
        return False
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None or origin == "null":
        # Browsers send "Origin: null" on form posts from pages served with
        # "Referrer-Policy: no-referrer" (ours); the token and SameSite=Strict still decide.
        return True
    return urlsplit(origin).netloc == request.host


async def _refuse_csrf(request: web.Request, ctx: ConsoleContext, reason: str) -> web.Response:
    session = request.get(SESSION)
    actor = session.username if session is not None and session.username else "anonymous"
    await ctx.audit(
        actor,
        "console.csrf_refused",
        {"route": route_name(request) or "", "reason": reason, "remote": request.remote or ""},
    )
    return error_page(
        request,
        403,
        "Форма устарела или отправлена не из консоли",
        "Откройте страницу заново и повторите действие.",
    )


async def _streamed_token(request: web.Request) -> str | None:
    """The CSRF token of a streamed form: its first part (the console's forms put it first),
    read before any other byte, so no file is taken in before the token is checked. The rest
    of the form is left in :data:`FORM_STREAM`."""
    try:
        reader = await request.multipart()
        part = await reader.next()
        if not isinstance(part, BodyPartReader) or part.name != "csrf_token":
            return None
        raw = b""
        while chunk := await part.read_chunk(MAX_TOKEN_BYTES):
            raw += chunk
            if len(raw) > MAX_TOKEN_BYTES:
                return None
    except (ValueError, AssertionError, UnicodeDecodeError):
        return None  # not a multipart form aiohttp can read: no token
    request[FORM_STREAM] = reader
    return raw.decode("ascii", errors="replace")


@web.middleware
async def session_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    name = route_name(request)
    if name == "static" or request.match_info.http_exception is not None:
        return await handler(request)
    ctx = request.app[CONTEXT]
    now = ctx.clock()
    session_id = request.cookies.get(ctx.cookie_name)
    session = await ctx.sessions.get(session_id, now)
    if session is not None and session_id is not None:
        request[SESSION] = session
        request[SESSION_ID] = session_id
    if request.method not in {hdrs.METH_GET, hdrs.METH_HEAD}:
        if not _same_origin(request):
            return await _refuse_csrf(request, ctx, "cross-origin")
        if session is None:
            return await _refuse_csrf(request, ctx, "no-session")
        if name in UPLOAD_ROUTES and request.content_type == "multipart/form-data":
            token = await _streamed_token(request)
        else:
            if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
                title, text = _HTTP_ERRORS[413]
                return error_page(request, 413, title, text)
            token = (await request.post()).get("csrf_token")
        if not isinstance(token, str) or not session.csrf_ok(token):
            return await _refuse_csrf(request, ctx, "bad-token")
    if name not in PUBLIC_ROUTES:
        if session is None or session.username is None:
            raise web.HTTPSeeOther(request.app.router["login"].url_for())
        user = await ctx.users.get(session.username)
        if user is None or user.disabled:
            await ctx.sessions.drop(session_id)
            raise web.HTTPSeeOther(request.app.router["login"].url_for())
        request[ACTOR] = Actor(user.username, roles_of(user))
    try:
        return await handler(request)
    finally:
        # A purpose stated or a flash set or shown: written for the session's next request,
        # whichever process serves it.
        if SESSION in request and SESSION_ID in request:
            await ctx.sessions.save(request[SESSION_ID], request[SESSION])


def add_security_headers(response: web.StreamResponse, *, secure: bool) -> None:
    """The headers every console response carries (``secure``: served over TLS)."""
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    response.headers[hdrs.SERVER] = SERVER_HEADER
    if secure:
        response.headers["Strict-Transport-Security"] = HSTS


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    add_security_headers(response, secure=request.app[CONTEXT].secure_cookies)
    if route_name(request) == "static":
        response.headers[hdrs.CACHE_CONTROL] = "public, max-age=3600"
    else:
        # Pages show documents and personal data: never kept by a browser or a proxy.
        response.headers[hdrs.CACHE_CONTROL] = "no-store"
        response.headers[hdrs.PRAGMA] = "no-cache"


# --- sign-in and sign-out ----------------------------------------------------------------------


def _set_cookie(response: web.StreamResponse, ctx: ConsoleContext, session_id: str) -> None:
    response.set_cookie(
        ctx.cookie_name,
        session_id,
        path="/",
        httponly=True,
        secure=ctx.secure_cookies,
        samesite="Strict",
    )


async def login_page(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    session = request.get(SESSION)
    if session is not None and session.signed_in:
        raise web.HTTPSeeOther(request.app.router["dashboard"].url_for())
    if session is None:
        # An anonymous session carries the sign-in form's CSRF token.
        session_id, session = await ctx.sessions.new(ctx.clock())
        request[SESSION] = session
        request[SESSION_ID] = session_id
        response = render(request, "login.html", {"error": None, "username": ""})
        _set_cookie(response, ctx, session_id)
        return response
    return render(request, "login.html", {"error": None, "username": ""})


def _clean_username(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    name = unicodedata.normalize("NFKC", raw).strip().lower()
    return name if USERNAME_PATTERN.fullmatch(name) else None


async def login(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    form = await request.post()
    username = _clean_username(form.get("username"))
    password = form.get("password")
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
        password = ""
    now = ctx.clock()
    remote = request.remote or ""
    known = await ctx.users.get(username) if username else None
    user: User | None = None
    reason: str | None
    if known is None:
        await ctx.passwords.check(None, password)
        reason = "unknown-user" if username else "malformed-username"
    else:
        user, reason = await _attempt(ctx, known, password, now, remote)
    if reason is not None or user is None:
        await ctx.audit(
            username or "anonymous",
            "console.sign_in_failed",
            {"reason": reason or "unknown", "remote": remote},
        )
        return render(
            request,
            "login.html",
            {
                "error": (
                    "Вход не выполнен: неверное имя пользователя или пароль, либо учётная "
                    "запись отключена или временно заблокирована после "
                    f"{MAX_FAILED_ATTEMPTS} неудачных попыток подряд (на "
                    f"{int(LOCKOUT_DURATION.total_seconds() // 60)} минут)."
                ),
                "username": username or "",
            },
            status=403,
        )
    await ctx.users.record_success(user.username, now=now)
    # A new id at sign-in: an id planted before sign-in (session fixation) is worth nothing.
    await ctx.sessions.drop(request.get(SESSION_ID))
    roles = roles_of(user)
    session_id, _ = await ctx.sessions.new(now, username=user.username, roles=roles)
    await ctx.audit(
        user.username,
        "console.signed_in",
        {"roles": ",".join(sorted(r.value for r in roles)), "remote": remote},
    )
    response = see_other(request, "dashboard")
    _set_cookie(response, ctx, session_id)
    return response


async def _attempt(
    ctx: ConsoleContext, known: User, password: str, now: datetime, remote: str
) -> tuple[User | None, str | None]:
    """One sign-in to an existing account: (the user, None) when it may sign in, else (the
    user, the reason). The attempt is counted before its password is checked
    (:meth:`~gateway.app.user_directory.UserDirectory.claim_sign_in`), so attempts sent at
    once — to one process or to several — get no more passwords checked than the lock-out
    allows."""
    if known.disabled:
        await ctx.passwords.check(None, password)
        return known, "disabled"
    claimed = await ctx.users.claim_sign_in(
        known.username, now=now, max_attempts=MAX_FAILED_ATTEMPTS, lock_for=LOCKOUT_DURATION
    )
    if claimed is None:
        await ctx.passwords.check(None, password)
        return known, "locked"
    if password and await ctx.passwords.check(claimed.password_hash, password):
        return claimed, None
    if claimed.locked(now):
        await ctx.audit(
            claimed.username,
            "console.account_locked",
            {
                "until": claimed.locked_until.isoformat() if claimed.locked_until else "",
                "remote": remote,
            },
        )
    return claimed, "bad-password"


async def logout(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    await ctx.sessions.drop(request.get(SESSION_ID))
    await ctx.audit(request[ACTOR].name, "console.signed_out", {"remote": request.remote or ""})
    response = see_other(request, "login")
    response.del_cookie(ctx.cookie_name, path="/", secure=ctx.secure_cookies, samesite="Strict")
    return response

"""The console as an aiohttp application: :func:`make_console_app`.

Serve it on the local side only (its own site on loopback or the body's internal network,
behind TLS when not on loopback), never on the peer endpoint. Routes::

    GET  /                                                   dashboard
    GET  /login, POST /login, POST /logout                   sign-in and sign-out
    GET  /conversations                                      list: filters, keyset pages
    GET  /conversations/{conversation_id}                    one conversation and its timeline
    GET  /requests/new/{agreement}, POST the same            a new request (a new conversation)
    POST /conversations/{conversation_id}/purpose            state a purpose (CIS Art. 9.1)
    POST /conversations/{conversation_id}/proceeding-closed  mark the proceeding closed (9.6)
    POST /conversations/{conversation_id}/messages/{message_id}/original/sent      original
    POST /conversations/{conversation_id}/messages/{message_id}/original/received  by post (10)
    GET  /conversations/{conversation_id}/messages/{message_id}          one message's fields
    GET  /conversations/{conversation_id}/messages/{message_id}/xml      signed XML
    GET  /conversations/{conversation_id}/messages/{message_id}/pdf      signed PDF rendition
    POST /conversations/{conversation_id}/messages/{message_id}/attachments/{number}/verify
                                                             verify a signed PDF sent beside it
    GET  /conversations/{conversation_id}/messages/{message_id}/attachments/{number}  a file sent
         beside the XML, streamed
    GET  /conversations/{conversation_id}/messages/{message_id}/receipt  signed receipt
    GET  /conversations/{conversation_id}/refuse, POST the same         refusal form
    GET  /conversations/{conversation_id}/actions/{action}, POST the same  other documents
    GET  /admin                                              administration index
    GET  /admin/keys, /admin/directory, /admin/retention, /admin/holds, /admin/jobs
                                                                     (administrator)
    GET  /admin/audit, POST /admin/audit/verify, /export, /checkpoint  audit trail (auditor)
    GET  /static/{filename}                                  CSS
"""

from __future__ import annotations

import functools
import socket
import ssl
from collections.abc import Callable
from datetime import datetime

import aiohttp_jinja2
from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger
from argon2 import PasswordHasher

from gateway.app.context import AppContext
from gateway.app.passwords import PasswordChecker
from gateway.app.sessions import SessionStore
from gateway.app.user_directory import UserDirectory
from gateway.exchange.service import LocalService
from gateway.logs import access
from gateway.model.problems import ConfigurationError
from gateway.web.console import (
    action_pages,
    admin,
    admin_acts,
    auth,
    originals,
    pages,
    proceeding,
    refusal_pages,
    request_pages,
)
from gateway.web.console.actions import ACTION_NAMES
from gateway.web.console.context import (
    CONTEXT,
    AdminSources,
    Audit,
    CalendarsSource,
    ConsoleContext,
    ExpiringKeys,
    NodeIdentity,
    Undelivered,
    plain_calendars,
    utc_now,
)
from gateway.web.console.render import STATIC_DIR, setup_templates
from gateway.web.console.sources import (
    AuditTrail,
    DirectorySource,
    HoldsSource,
    JobRunsSource,
    KeyEntries,
    PurgeRunsSource,
    RetentionSource,
)
from gateway.web.server import LowLevelError, ServerSettings, start_guarded_site

_UUID = "{{{name}:[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}}}"
CONVERSATION = "/conversations/" + _UUID.format(name="conversation_id")
MESSAGE = CONVERSATION + "/messages/" + _UUID.format(name="message_id")
ACTION = CONVERSATION + "/actions/{action:(" + "|".join(ACTION_NAMES) + ")}"


def make_console_app(
    service: LocalService,
    users: UserDirectory,
    *,
    sessions: SessionStore,
    secure_cookies: bool,
    audit: Audit,
    identity: NodeIdentity,
    clock: Callable[[], datetime] = utc_now,
    calendars: CalendarsSource = plain_calendars,
    expiring_keys: ExpiringKeys | None = None,
    undelivered: Undelivered | None = None,
    key_entries: KeyEntries | None = None,
    directory: DirectorySource | None = None,
    retention: RetentionSource | None = None,
    holds: HoldsSource | None = None,
    purge_runs: PurgeRunsSource | None = None,
    job_runs: JobRunsSource | None = None,
    audit_trail: AuditTrail | None = None,
    acts: AppContext | None = None,
    config_hint: str = "node.toml",
    password_hasher: PasswordHasher | None = None,
) -> web.Application:
    """The operator and administrator console (Russian, server-rendered, no JavaScript).

    ``service`` is the node; ``users`` who may sign in; ``sessions`` the node's session table
    (``SessionStore(store)``: every console process on the same store shares sign-ins);
    ``secure_cookies`` True whenever the
    console is served over TLS (cookies then carry ``Secure`` and the ``__Host-`` prefix, and
    responses HSTS). ``audit(actor, event, details)`` receives every sign-in, failure,
    lock-out, sign-out, refused CSRF token and stated purpose. ``identity`` names the node's
    body on every page and gives the zone every time is shown in (and "today"); ``clock`` sets
    "now" (tests pin it); ``calendars`` gives the node's legal-clock calendars and zones
    (gateway.rules.clock; the runtime passes the node's). ``expiring_keys`` and
    ``undelivered`` feed the dashboard;
    ``key_entries``, ``directory``, ``retention``, ``holds``, ``purge_runs``, ``job_runs``
    and ``audit_trail`` the administration pages (:mod:`gateway.web.console.sources`;
    ``node_console_sources(node, executor)`` gives them all). Every source is required: a
    console missing one raises :class:`~gateway.model.problems.ConfigurationError` here, at
    start, instead of serving a page that cannot show what it is for.
    ``config_hint`` is the configuration path the key page's commands show.
    ``password_hasher`` is for tests only (a cheap argon2); production uses RFC 9106's
    parameters.
    """
    _require_sources(
        expiring_keys=expiring_keys,
        undelivered=undelivered,
        key_entries=key_entries,
        directory=directory,
        retention=retention,
        holds=holds,
        purge_runs=purge_runs,
        job_runs=job_runs,
        audit_trail=audit_trail,
    )
    assert job_runs is not None
    assert expiring_keys is not None and undelivered is not None
    assert key_entries is not None and directory is not None and retention is not None
    assert holds is not None and purge_runs is not None and audit_trail is not None
    app = web.Application(
        middlewares=[auth.errors_middleware, auth.session_middleware],
        # Forms with a file are streamed (auth.FORM_STREAM), not read whole: every form read
        # whole is held to MAX_FORM_BYTES, by its declared length and by this.
        client_max_size=auth.MAX_FORM_BYTES,
    )
    app[CONTEXT] = ConsoleContext(
        service=service,
        users=users,
        audit=audit,
        sessions=sessions,
        passwords=PasswordChecker(password_hasher),
        secure_cookies=secure_cookies,
        clock=clock,
        identity=identity,
        calendars=calendars,
        expiring_keys=expiring_keys,
        undelivered=undelivered,
        admin=AdminSources(
            key_entries=key_entries,
            directory=directory,
            retention=retention,
            holds=holds,
            purge_runs=purge_runs,
            job_runs=job_runs,
            audit_trail=audit_trail,
            acts=acts,
            config_hint=config_hint,
        ),
    )
    setup_templates(app)
    router = app.router
    router.add_get("/", pages.dashboard, name="dashboard", allow_head=False)
    router.add_get("/login", auth.login_page, name="login", allow_head=False)
    router.add_post("/login", auth.login, name="login")
    router.add_post("/logout", auth.logout, name="logout")
    router.add_get("/conversations", pages.conversations, name="conversations", allow_head=False)
    router.add_get(CONVERSATION, pages.conversation, name="conversation", allow_head=False)
    router.add_post(CONVERSATION + "/purpose", pages.state_purpose, name="purpose")
    router.add_post(
        CONVERSATION + "/proceeding-closed", proceeding.close_proceeding, name="proceeding_closed"
    )
    router.add_post(
        MESSAGE + "/original/sent",
        originals.original_sent,
        name="original_sent",
    )
    router.add_post(
        MESSAGE + "/original/received",
        originals.original_received,
        name="original_received",
    )
    router.add_get(
        CONVERSATION + "/refuse", refusal_pages.refuse_form, name="refuse", allow_head=False
    )
    router.add_post(CONVERSATION + "/refuse", refusal_pages.refuse, name="refuse")
    router.add_get(
        "/requests/new/{agreement}",
        request_pages.new_request_form,
        name="new_request",
        allow_head=False,
    )
    router.add_post("/requests/new/{agreement}", request_pages.new_request, name="new_request")
    router.add_get(ACTION, action_pages.action_form, name="action", allow_head=False)
    router.add_post(ACTION, action_pages.action, name="action")
    router.add_get("/admin", admin.admin_index, name="admin", allow_head=False)
    router.add_get("/admin/keys", admin.keys, name="admin_keys", allow_head=False)
    router.add_get("/admin/directory", admin.directory, name="admin_directory", allow_head=False)
    router.add_get("/admin/retention", admin.retention, name="admin_retention", allow_head=False)
    router.add_get("/admin/holds", admin.holds, name="admin_holds", allow_head=False)
    router.add_get("/admin/jobs", admin.jobs, name="admin_jobs", allow_head=False)
    router.add_get("/admin/audit", admin.audit, name="admin_audit", allow_head=False)
    admin_acts.add_routes(router)
    router.add_post("/admin/audit/verify", admin.verify_audit, name="admin_audit_verify")
    router.add_post("/admin/audit/export", admin.export_audit, name="admin_audit_export")
    router.add_post(
        "/admin/audit/checkpoint", admin.checkpoint_audit, name="admin_audit_checkpoint"
    )
    router.add_get(MESSAGE, pages.message, name="message", allow_head=False)
    router.add_post(MESSAGE + "/verify", pages.reverify, name="message_verify")
    router.add_post(MESSAGE + "/resend", pages.resend, name="message_resend")
    router.add_get(MESSAGE + "/xml", pages.message_xml, name="message_xml", allow_head=False)
    router.add_get(MESSAGE + "/pdf", pages.message_pdf, name="message_pdf", allow_head=False)
    router.add_get(MESSAGE + "/receipt", pages.receipt_xml, name="receipt_xml", allow_head=False)
    router.add_get(
        MESSAGE + "/attachments/{number}",
        pages.message_attachment,
        name="message_attachment",
        allow_head=False,
    )
    router.add_post(
        MESSAGE + "/attachments/{number}/verify",
        pages.verify_attachment,
        name="message_attachment_verify",
    )
    router.add_static("/static", STATIC_DIR, name="static", follow_symlinks=False)
    app.on_response_prepare.append(auth.security_headers)
    return app


def _require_sources(**sources: object) -> None:
    missing = sorted(name for name, source in sources.items() if source is None)
    if missing:
        raise ConfigurationError(
            "консоль не запущена: не подключены источники данных "
            f"{', '.join(missing)} (console sources missing: {', '.join(missing)}); "
            "передайте их в make_console_app — все сразу даёт "
            "gateway.web.console.node_console_sources(node, executor)"
        )


class ConsoleAccessLogger(AbstractAccessLogger):
    """Access log lines with the route name, status and time only: the query string holds
    filters and paging cursors that need not sit in a log file."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        name = auth.route_name(request) if isinstance(request, web.Request) else None
        access("console", request.method, name or "-", response.status, time)


def low_level_error_page(app: web.Application, error: LowLevelError) -> web.Response:
    """The console's error page for what aiohttp refuses below the app (a malformed request,
    a request head too slow, a failure outside the handlers): the same page and headers as
    every other error of the console, rendered without a request (no user, no session)."""
    ctx = app[CONTEXT]
    title, text = LOW_LEVEL_TEXTS.get(error.code, LOW_LEVEL_TEXTS["INTERNAL_ERROR"])
    html = (
        aiohttp_jinja2.get_env(app)
        .get_template("error.html")
        .render(
            title=title,
            text=text,
            status=error.status,
            actor=None,
            csrf_token="",
            flash=None,
            identity=ctx.identity,
            now=ctx.clock(),
        )
    )
    response = web.Response(status=error.status, text=html, content_type="text/html")
    auth.add_security_headers(response, secure=ctx.secure_cookies)
    response.headers[hdrs.CACHE_CONTROL] = "no-store"
    return response


LOW_LEVEL_TEXTS = {
    "MALFORMED_REQUEST": (
        "Неверный запрос",
        "Браузер или прокси отправили запрос, который не является корректным HTTP. "
        "Обновите страницу; если ошибка повторяется, сообщите администратору.",
    ),
    "REQUEST_TIMEOUT": (
        "Запрос не получен вовремя",
        "Заголовки запроса не пришли вовремя. Проверьте соединение и обновите страницу.",
    ),
    "INTERNAL_ERROR": ("Внутренняя ошибка", "Подробности — в журнале узла. Повторите позже."),
}
"""Russian titles and texts of the low-level errors (gateway.web.server.LowLevelError.code)."""


async def start_console(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8082,
    ssl_context: ssl.SSLContext | None = None,
    sock: socket.socket | None = None,
    *,
    settings: ServerSettings | None = None,
) -> web.AppRunner:
    """Serve ``app`` on ``host:port`` (with ``ssl_context`` for TLS; 0: a free port, see
    ``runner.addresses``) with the request-head timeout of ``settings`` and the console's error
    page even for requests aiohttp's parser refuses; ``await runner.cleanup()`` stops it. Pass
    ``secure_cookies=True`` to the app whenever TLS is on."""
    return await start_guarded_site(
        app,
        host,
        port,
        settings=settings or ServerSettings(),
        error_response=functools.partial(low_level_error_page, app),
        ssl_context=ssl_context,
        sock=sock,
        access_log_class=ConsoleAccessLogger,
    )

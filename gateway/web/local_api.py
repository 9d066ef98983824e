"""The local API: how a body's own case system talks to its node (JSON over HTTP, bearer tokens).

Everything a route does is one call of :class:`gateway.exchange.service.LocalService` or of a use
case of :mod:`gateway.app` (an :class:`~gateway.app.context.AppContext` as its actor); this module
only authenticates, checks the request's shape, maps the service's answers and exceptions to HTTP,
adds security headers and counts. Routes (``docs/local-api.md``; OpenAPI at
``GET /api/v1/openapi.json``)::

    POST /api/v1/messages                           submit a document (JSON mirroring the XSD)
    GET  /api/v1/conversations                      list, filtered, keyset-paged
    GET  /api/v1/conversations/{conversation_id}    one conversation and its messages
    POST /api/v1/conversations/{conversation_id}/proceeding-closed
                                                    mark its proceeding closed (CIS Art. 9.6)
    GET  /api/v1/messages/{message_id}              one message as JSON
    GET  /api/v1/messages/{message_id}/xml          the signed document, byte-exact
    GET  /api/v1/messages/{message_id}/pdf          its signed PDF rendition
    GET  /api/v1/messages/{message_id}/receipt      the signed receipt of it
    GET  /api/v1/messages/{message_id}/report       the verification report (as recorded)
    POST /api/v1/messages/{message_id}/verifications verify again now; recorded
    POST /api/v1/messages/{message_id}/resend       send a refused document again, as a new message
    POST /api/v1/messages/{message_id}/disclosures  disclose it (CIS Art. 9.2–9.3; SC Art. 8.2)
    GET  /api/v1/conversations/{conversation_id}/originals  originals by post (CIS Art. 10 ¶1)
    POST /api/v1/messages/{message_id}/original/sent      its original posted
    POST /api/v1/messages/{message_id}/original/received  its original received
    GET  /api/v1/keys/expiring                      keys ending within 30 days
    GET  /api/v1/holds                              legal holds on purging (CIS Art. 9.6)
    POST /api/v1/conversations/{conversation_id}/holds
                                                    place a legal hold
    POST /api/v1/conversations/{conversation_id}/holds/release
                                                    release the conversation's holds
    GET  /api/v1/openapi.json, /healthz, /metrics   unauthenticated

Each route names its :class:`~gateway.exchange.service.Action`; who may take it is the one table
:data:`gateway.exchange.service.ACCESS`, enforced by the node or, for the acts of
:mod:`gateway.app` (holds, tokens, users, keys, ...; closing a proceeding, an original's marks, a
disclosure: :mod:`gateway.web.case_acts`), by the use case the command line and the console call
too. :func:`roles_table`
renders the docs' route table from both and :func:`openapi_document` adds the roles to the
OpenAPI.

Middlewares, outermost first::

    _measure        count and time every request by route template (never ids or values)
    _errors         exceptions -> {"error": {"code", "message", "message_ru"}} with a stable code
    _authenticate   Authorization: Bearer <token> -> Actor (401 with WWW-Authenticate otherwise)

Exceptions of the service and their answers::

    NotFound           404 NOT_FOUND
    PermissionDenied   403 FORBIDDEN           names the role needed (checked by the service)
    PurposeRequired    428 PURPOSE_REQUIRED    send X-Purpose (CIS Art. 9.1)
    ConcurrentChange   503 TRY_AGAIN           nothing stored; Retry-After: 1
    StorageFault.FULL  503 STORAGE_FULL        SQLite could not write; nothing stored; Retry-After
    StorageFault.UNAVAILABLE
                       503 DATABASE_UNAVAILABLE  the database restarts; nothing stored; Retry-After
    DocumentRejected   422 DOCUMENT_REJECTED   with "problems": [Problem.to_json(), ...]
    ProtocolError      409 its own code        (PROTOCOL_UNEXPECTED_MESSAGE, ...) with "problems"

Every JSON body is checked for characters XML 1.0 does not allow before anything else is done
with it (422 INVALID_CHARACTER, gateway.web.xmlchars). Below the app, :func:`start_local_api`
serves through gateway.web.server: aiohttp's parser refusals are 400 MALFORMED_REQUEST and a
request head slower than the header timeout is 408 REQUEST_TIMEOUT, in the same JSON shape with
the same headers.

Nothing from a request — a document's field, a purpose, a token, a query value — is echoed in an
error or written to a log: error messages name the parameter or the rule, not the value
(DESIGN.md: confidential means confidential everywhere). The local API counts the case system's
submissions itself (``message_submitted`` on 202, ``message_rejected(source=local)`` on 422); the
node counts what it receives and delivers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import socket
import ssl
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime
from enum import Enum, StrEnum
from functools import partial
from typing import Any, TypeVar
from urllib.parse import unquote

import aiohttp
from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import PayloadEncodingError
from aiohttp.web_protocol import RequestPayloadError

from gateway.app import admin, users
from gateway.app import audit as app_audit
from gateway.app import directory as app_directory
from gateway.app import disclosures as app_disclosures
from gateway.app import keys as app_keys
from gateway.app import originals as app_originals
from gateway.app import proceedings as app_proceedings
from gateway.app import purge as app_purge
from gateway.app.audit_checkpoints import checkpoint_file_line
from gateway.app.context import AppContext, StorageFault, storage_fault
from gateway.app.passwords import hash_password, password_problem
from gateway.crypto.algorithms import DEFAULT_KEY_SPEC, KeySpec
from gateway.crypto.keys.generations import RevocationReason
from gateway.crypto.keys.kek import KEY_ID_PATTERN as KEK_ID_PATTERN
from gateway.crypto.keys.keystore import KeyRole
from gateway.exchange.attachments import (
    AttachmentCheckRefused,
    AttachmentDamaged,
    AttachmentMeta,
    PartTooLarge,
    UploadOffsetMismatch,
)
from gateway.exchange.conversation import ProtocolError, State
from gateway.exchange.disclosure import DisclosureRefused
from gateway.exchange.recording import ANSWER_LATE, ConcurrentChange
from gateway.exchange.service import (
    ACCESS,
    Action,
    Actor,
    ConversationFilter,
    IdempotencyKeyReused,
    InvalidCursor,
    LocalService,
    NotFound,
    PermissionDenied,
    PurposeRequired,
)
from gateway.logs import access
from gateway.model.bodies import BODY_ID_PATTERN
from gateway.model.limits import (
    DEFAULT_MAX_ATTACHMENT_BYTES,
    MAX_DIRECTORY_BYTES,
    MAX_JSON_BYTES,
)
from gateway.model.numbers import whole_number
from gateway.model.problems import DocumentRejected, Problem, Refused
from gateway.model.profiles import PROFILES
from gateway.web.case_acts import in_thread, run_case_act
from gateway.web.json_shape import shape_problem
from gateway.web.metrics import UNMATCHED_ROUTE, GatewayMetrics, LateSide, RejectionSource
from gateway.web.openapi import build_openapi
from gateway.web.server import (
    LowLevelError,
    ServerSettings,
    describe,
    log_failure,
    match_info_of,
    start_guarded_site,
    stream_attachment,
)
from gateway.web.streaming import stream_lines
from gateway.web.xmlchars import XML_CHAR_RULE, forbidden_strings, remedy_ru

logger = logging.getLogger(__name__)

T = TypeVar("T")

# --- paths -------------------------------------------------------------------------------------

API_PREFIX = "/api/v1"
MESSAGES = f"{API_PREFIX}/messages"
MESSAGE = f"{API_PREFIX}/messages/{{message_id}}"
MESSAGE_XML = f"{MESSAGE}/xml"
MESSAGE_PDF = f"{MESSAGE}/pdf"
MESSAGE_RECEIPT = f"{MESSAGE}/receipt"
MESSAGE_REPORT = f"{MESSAGE}/report"
MESSAGE_VERIFICATIONS = f"{MESSAGE}/verifications"
MESSAGE_RESEND = f"{MESSAGE}/resend"
MESSAGE_DISCLOSURES = f"{MESSAGE}/disclosures"
MESSAGE_ORIGINAL_SENT = f"{MESSAGE}/original/sent"
MESSAGE_ORIGINAL_RECEIVED = f"{MESSAGE}/original/received"
MESSAGE_ATTACHMENT = f"{MESSAGE}/attachments/{{number}}"
MESSAGE_ATTACHMENT_VERIFICATIONS = f"{MESSAGE_ATTACHMENT}/verifications"
MESSAGE_ATTACHMENT_RETURNS = f"{MESSAGE_ATTACHMENT}/returns"
ATTACHMENTS = f"{API_PREFIX}/attachments"
ATTACHMENT = f"{ATTACHMENTS}/{{attachment_id}}"
CONVERSATIONS = f"{API_PREFIX}/conversations"
CONVERSATION = f"{API_PREFIX}/conversations/{{conversation_id}}"
CONVERSATION_PROCEEDING_CLOSED = f"{CONVERSATION}/proceeding-closed"
CONVERSATION_ORIGINALS = f"{CONVERSATION}/originals"
OPENAPI = f"{API_PREFIX}/openapi.json"
KEYS_EXPIRING = f"{API_PREFIX}/keys/expiring"
HOLDS = f"{API_PREFIX}/holds"
CONVERSATION_HOLDS = f"{CONVERSATION}/holds"
CONVERSATION_HOLDS_RELEASE = f"{CONVERSATION}/holds/release"
TOKENS = f"{API_PREFIX}/tokens"
TOKEN_REVOKE = f"{API_PREFIX}/tokens/{{token_id}}/revoke"
USERS = f"{API_PREFIX}/users"
USER_DISABLE = f"{API_PREFIX}/users/{{username}}/disable"
PURGE_RUNS = f"{API_PREFIX}/purge-runs"
PURGE_REPORT = f"{PURGE_RUNS}/{{run_id}}/report"
PURGE_REPORT_VERIFICATIONS = f"{PURGE_REPORT}-verifications"
KEY_GENERATIONS = f"{API_PREFIX}/keys/{{role}}/generations"
KEY_GENERATION = f"{KEY_GENERATIONS}/{{generation}}"
KEY_PUBLICATIONS = f"{API_PREFIX}/keys/publications"
KEK_ROTATIONS = f"{API_PREFIX}/kek/rotations"
KEK_REWRAPS = f"{API_PREFIX}/kek/rewraps"
KEK_DESTRUCTION = f"{API_PREFIX}/kek/{{kek_id}}/destruction"
AUDIT_VERIFICATIONS = f"{API_PREFIX}/audit/verifications"
AUDIT_CHECKPOINTS = f"{API_PREFIX}/audit/checkpoints"
AUDIT_EXPORT = f"{API_PREFIX}/audit/export"
DIRECTORY = f"{API_PREFIX}/directory"
KEY_ACTIVATE = f"{KEY_GENERATION}/activate"
KEY_REVOKE = f"{KEY_GENERATION}/revoke"
KEY_CERTIFICATE = f"{KEY_GENERATION}/certificate"
HEALTHZ = "/healthz"
METRICS_PATH = "/metrics"

PUBLIC_PATHS = frozenset({OPENAPI, HEALTHZ, METRICS_PATH})
"""Routes served without a token. Metrics hold codes and counts only (gateway.web.metrics), so a
Prometheus scraper needs no credentials; the API itself should listen on loopback or a private
network (docs/local-api.md)."""

# --- limits ------------------------------------------------------------------------------------


JSON_PARSE_IN_THREAD_BYTES = 256 * 1024
"""Bodies above this are parsed in a worker thread: json.loads runs at ~100 MB/s, so 256 KiB
is ~2.5 ms on the event loop, the most one request should stall every other one."""

DEFAULT_PAGE_LIMIT = 50
"""Conversations per page when ``limit`` is absent: a screenful for an operator's list."""

MAX_PAGE_LIMIT = 200
"""Most conversations one page may hold: keeps one response under ~100 KB and one keyset query
cheap; a case system that syncs everything follows ``next_cursor``."""

MAX_TOKEN_CHARS = 512
"""Longest bearer token looked at. Ours are 43 characters (secrets.token_urlsafe(32)); anything
far longer is not a token of ours and is refused before a database lookup."""

MAX_PURPOSE_CHARS = 500
"""Longest stated purpose (CIS Art. 9.1). A purpose is a sentence naming the proceeding and why
(it is recorded in the audit trail); a page of text would be an attempt to bloat the trail."""

MAX_CURSOR_CHARS = 512
"""Longest ``after`` cursor. Cursors are the service's own opaque keyset tokens (tens of
characters); a longer one was not made by us."""

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
"""Message and conversation ids: the XSD's Uuid type (canonical lower case, common.xsd). Only
such ids reach the service, and only they may appear in a download's file name."""

_BEARER = re.compile(r"^Bearer +([A-Za-z0-9\-._~+/]+=*) *$", re.IGNORECASE)
"""RFC 6750 section 2.1: ``Bearer`` then a b64token."""

_CURSOR = re.compile(r"^[A-Za-z0-9\-._~+/=]+$")
"""Cursors are URL-safe printable ASCII (base64 or base64url of the keyset)."""

_KINDS = frozenset(kind for profile in PROFILES.values() for kind in profile.kinds)
_STATES = frozenset(state.value for state in State)

XML_MEDIA_TYPE = "application/xml"
PDF_MEDIA_TYPE = "application/pdf"
SERVER_HEADER = "cis-exchange-gateway"
"""Replaces aiohttp's ``Server: Python/3.x aiohttp/3.y``: versions only help an attacker."""

SECURITY_HEADERS: Mapping[str, str] = {
    # Documents and personal data must not stay in a browser's or a proxy's cache.
    hdrs.CACHE_CONTROL: "no-store",
    hdrs.PRAGMA: "no-cache",
    # A downloaded XML or PDF is never to be reinterpreted as HTML by a browser.
    "X-Content-Type-Options": "nosniff",
    # Nothing here is meant to be framed, scripted or referred from.
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
"""Added to every response of the local API, errors included."""

SERVICE = web.AppKey("local_service", LocalService)
METRICS = web.AppKey("gateway_metrics", GatewayMetrics)
OPENAPI_BYTES = web.AppKey("openapi_bytes", bytes)
ADMIN = web.AppKey("app_context", AppContext)
ATTACHMENT_LIMIT = web.AppKey("max_attachment_bytes", int)
"""The application layer's context over the node's store; each request acts as its token."""
ACTOR = web.RequestKey("actor", Actor)
"""Who is asking, set by the authentication middleware on every non-public route."""

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- errors ------------------------------------------------------------------------------------


class ErrorCode(StrEnum):
    """Stable codes of the local API's errors. Programs may rely on them; they never change."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    """No ``Authorization: Bearer`` token, or one the node does not know (401)."""
    FORBIDDEN = "FORBIDDEN"
    """The token's actor lacks the role the action needs; ``role`` names it (403)."""
    PURPOSE_REQUIRED = "PURPOSE_REQUIRED"
    """A document's content (or a confidential conversation) is read without a stated purpose
    (428; CIS Art. 9.1)."""
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    INVALID_JSON = "INVALID_JSON"
    """The body is not one JSON object in UTF-8 (400); the message says where, not what."""
    INVALID_PARAMETER = "INVALID_PARAMETER"
    """A path id, query parameter or header is malformed, unknown or repeated (400)."""
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    """POST /messages needs ``Content-Type: application/json`` (415)."""
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    """Over MAX_JSON_BYTES (413)."""
    DOCUMENT_REJECTED = "DOCUMENT_REJECTED"
    """The document breaks the schema or the rules; ``problems`` lists them (422)."""
    INVALID_CHARACTER = "INVALID_CHARACTER"
    """A string of the JSON body holds a character XML 1.0 does not allow (a control
    character, a lone surrogate); ``problems`` names each field by JSON Pointer (422)."""
    DOCUMENT_TOO_COMPLEX = "DOCUMENT_TOO_COMPLEX"
    """The JSON body breaks a bound on its shape (an array over 100 items, nesting over 32
    levels, over 5,000 values: gateway.web.json_shape); ``problems`` names the field and the
    bound. No valid document comes near them; nothing was converted (422)."""
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    """The ``Idempotency-Key`` was used within the last 24 hours for a different body; nothing
    was stored. Use a new key for a new document (422)."""
    BAD_REQUEST = "BAD_REQUEST"
    ATTACHMENT_TOO_LARGE = "ATTACHMENT_TOO_LARGE"
    """An upload over ``[limits] max_attachment_bytes`` (413): refused on its Content-Length
    before a byte is read, or as soon as a chunked body passes it; nothing is kept."""
    UPLOAD_INCOMPLETE = "UPLOAD_INCOMPLETE"
    """The upload ended before its Content-Length (the connection broke); nothing is kept:
    upload the file again (400). A resumable upload's part keeps its whole segments: ask the
    upload for its ``offset`` and go on from there."""
    RANGE_NOT_SATISFIABLE = "RANGE_NOT_SATISFIABLE"
    """A download's ``Range`` starts at or past the file's end; ``Content-Range`` gives the
    file's size (416)."""
    UPLOAD_OFFSET_MISMATCH = "UPLOAD_OFFSET_MISMATCH"
    """A resumable upload's part does not start where its stored bytes end (``offset`` says
    where they do), or the upload is already complete (``complete``); nothing of the part was
    stored (409)."""
    UPLOAD_TOO_LONG = "UPLOAD_TOO_LONG"
    """A resumable upload's part runs past the ``Upload-Length`` declared at its creation; the
    bytes before it are kept (400)."""
    DISCLOSURE_REFUSED = "DISCLOSURE_REFUSED"
    """The disclosure is not allowed (403); ``article``, ``rule`` and ``remedy_ru`` say why
    and what to do (CIS Art. 9.2–9.3, 16; SC Art. 8.2)."""
    MALFORMED_REQUEST = "MALFORMED_REQUEST"
    """aiohttp's HTTP parser refused the request (a line over 8190 bytes, Content-Length with
    Transfer-Encoding, a broken chunk...); the message names the rule, never the bytes (400)."""
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
    """The request head did not arrive within the header timeout; the connection closes (408)."""
    TRY_AGAIN = "TRY_AGAIN"
    """The conversation kept changing under the submission (other documents of it were being
    stored at the same moment) more times than the node retries; nothing was stored. Submit the
    same document again after ``Retry-After`` seconds (503)."""
    HOLD_REFUSED = "HOLD_REFUSED"
    """A legal hold cannot be placed: no such stored conversation, or the reason is not 1..128
    characters (422)."""
    NO_ACTIVE_HOLD = "NO_ACTIVE_HOLD"
    """Releasing found no active hold on the conversation; nothing changed (409)."""
    TOKEN_REFUSED = "TOKEN_REFUSED"  # noqa: S105 - an error code, not a secret
    """A token cannot be added (label, roles, expiry) or revoked (unknown, already revoked);
    the message names the field (422)."""
    USER_REFUSED = "USER_REFUSED"
    """A console user cannot be added or disabled: ``rule`` says why (``USERNAME_TAKEN``,
    ``USER_INVALID``, ``USER_NOT_FOUND``, ``PASSWORD_WEAK``) (409, 404 or 422)."""
    KEY_REFUSED = "KEY_REFUSED"
    """A key generation cannot be activated or revoked as asked (not published, certificate not
    valid then, unknown generation, documents waiting for a routine revocation...); the message
    names the rule and what to do (422)."""
    PURGE_LOCKED = "PURGE_LOCKED"
    """Another process of the node is running the purge; this run did not start (409)."""
    PURGE_REFUSED = "PURGE_REFUSED"
    """The purge cannot run: no seal to sign its report, or a bad retention policy (503)."""
    STORAGE_FULL = "STORAGE_FULL"
    """The node could not write to its SQLite store: the disk is full (or a write failed).
    Nothing was stored; the operator frees space in the data folder, then the same request
    succeeds (503, ``Retry-After``)."""
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    """The database server is unreachable or restarting; nothing was stored. The node
    reconnects by itself: send the same request again after ``Retry-After`` seconds (503)."""
    INTERNAL_ERROR = "INTERNAL_ERROR"
    """Our fault (500); the log has the exception's type and stack, never its message."""


class ApiError(Exception):
    """Raised inside the app to answer with a JSON error; never leaves the app."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        message_ru: str,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.message_ru = message_ru
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "message_ru": self.message_ru,
        }
        payload: dict[str, Any] = {"error": error}
        for key, value in self.extra.items():
            (payload if key == "problems" else error)[key] = value
        return _json(payload, status=self.status, headers=self.headers)


def _bad_parameter(name: str, en: str, ru: str) -> ApiError:
    """A 400 naming the parameter (one of ours) and the rule, never the value sent."""
    return ApiError(
        400,
        ErrorCode.INVALID_PARAMETER,
        f"parameter {name!r}: {en}",
        f"Параметр «{name}»: {ru}",
        extra={"parameter": name},
    )


def _unauthenticated(error: str | None) -> ApiError:
    challenge = 'Bearer realm="gateway"'
    if error:
        challenge += f', error="{error}"'
    return ApiError(
        401,
        ErrorCode.UNAUTHENTICATED,
        "send a valid API token: Authorization: Bearer <token>",
        "Передайте действующий токен API в заголовке Authorization: Bearer <токен>.",
        headers={hdrs.WWW_AUTHENTICATE: challenge},
    )


_HTTP_ERRORS: Mapping[int, tuple[ErrorCode, str, str]] = {
    404: (ErrorCode.NOT_FOUND, "no such route", "Такого адреса нет в API."),
    405: (
        ErrorCode.METHOD_NOT_ALLOWED,
        "method not allowed on this route",
        "Этот метод не допускается для данного адреса.",
    ),
    413: (
        ErrorCode.BODY_TOO_LARGE,
        f"the body is over {MAX_JSON_BYTES} bytes",
        f"Тело запроса больше {MAX_JSON_BYTES} байт.",
    ),
    416: (
        ErrorCode.RANGE_NOT_SATISFIABLE,
        "the Range starts at or past the file's end (Content-Range gives its size)",
        "Запрошенный диапазон начинается за концом файла (размер — в Content-Range).",
    ),
}


STORAGE_RETRY_AFTER_SECONDS = 5
"""A restarting PostgreSQL is back within seconds; space freed on a disk takes longer, but a
retry costs one refused request."""


def _storage_error(fault: StorageFault) -> ApiError:
    """503 for the store's state, never a verdict on the request. Logged (once per request, one
    line, no stack: the cause is outside the code) for the operator's alerting."""
    retry = {hdrs.RETRY_AFTER: str(STORAGE_RETRY_AFTER_SECONDS)}
    if fault is StorageFault.FULL:
        logger.error("local API: the store could not write (disk full?); nothing was stored")
        return ApiError(
            503,
            ErrorCode.STORAGE_FULL,
            "the node could not write to its store (disk full); nothing was stored. The "
            "node's operator must free space in its data folder; then submit the same document"
            " again",
            "Узел не смог записать в своё хранилище (диск заполнен); ничего не сохранено. "
            "Администратору узла нужно освободить место в каталоге данных; затем отправьте "
            "тот же документ повторно.",
            headers=retry,
        )
    logger.error("local API: the database is unavailable; nothing was stored")
    return ApiError(
        503,
        ErrorCode.DATABASE_UNAVAILABLE,
        "the node's database is unavailable (restarting?); nothing was stored. The node "
        "reconnects by itself: send the same request again",
        "База данных узла недоступна (перезапускается?); ничего не сохранено. Узел "
        "переподключится сам: повторите тот же запрос.",
        headers=retry,
    )


def _translate(exc: BaseException) -> ApiError | None:
    """The API error for an exception of the service, or None when it is not one of them."""
    if isinstance(exc, ApiError):
        return exc
    fault = storage_fault(exc)
    if fault is not None:
        return _storage_error(fault)
    if isinstance(exc, IdempotencyKeyReused):
        return ApiError(
            422,
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            str(exc),
            "Этот Idempotency-Key уже использован для другого документа (ключи хранятся "
            "24 часа); ничего не сохранено. Для нового документа нужен новый ключ.",
        )
    if isinstance(exc, ConcurrentChange):
        # Not a verdict on the document: the same bytes succeed once the conversation is quiet.
        return ApiError(
            503,
            ErrorCode.TRY_AGAIN,
            "the conversation changed while the document was being stored; nothing was stored,"
            " submit it again",
            "Переписка менялась во время сохранения документа; ничего не сохранено,"
            " отправьте документ повторно.",
            headers={hdrs.RETRY_AFTER: "1"},
        )
    if isinstance(exc, DocumentRejected):
        return ApiError(
            422,
            ErrorCode.DOCUMENT_REJECTED,
            f"the document was refused: {len(exc.problems)} problem(s), see 'problems'",
            f"Документ отклонён: замечаний — {len(exc.problems)}, см. «problems».",
            extra={"problems": [p.to_json() for p in exc.problems]},
        )
    if isinstance(exc, ProtocolError):
        problem = exc.problem()
        return ApiError(
            409,
            exc.code,
            f"the conversation does not allow this document now (state {exc.state})",
            f"Переписка в состоянии «{exc.state}» сейчас не допускает этот документ.",
            extra={"problems": [problem.to_json()]},
        )
    if isinstance(exc, DisclosureRefused):
        decision = exc.decision
        return ApiError(
            403,
            ErrorCode.DISCLOSURE_REFUSED,
            f"disclosure refused: {decision.code} ({decision.article})",
            f"Раскрытие не допускается: {decision.reason_ru} Что сделать: {decision.remedy_ru}",
            extra={
                "rule": decision.code,
                "article": decision.article,
                "remedy_ru": decision.remedy_ru,
            },
        )
    if isinstance(exc, Refused):
        # The rule's own words (a record of an original, a proceeding's closing, a resend): they
        # name the field, the rule, the dates and message ids, never a document's content.
        return ApiError(
            409 if exc.conflict else 422, exc.code, str(exc), exc.message_ru, extra=exc.extra
        )
    if isinstance(exc, admin.HoldRefused):
        # The store's words name the rule (length, unknown id), never the reason sent.
        return ApiError(
            422,
            ErrorCode.HOLD_REFUSED,
            str(exc),
            "Запрет не поставлен: переписки с таким идентификатором нет или основание не "
            "1..128 знаков (реквизиты решения, без персональных данных).",
            extra={"article": "CIS Art. 9.6"},
        )
    if isinstance(exc, admin.TokenRefused):
        return ApiError(422, ErrorCode.TOKEN_REFUSED, str(exc), "Токен не изменён: " + str(exc))
    if isinstance(exc, users.UserRefused):
        status = {"USERNAME_TAKEN": 409, "USER_NOT_FOUND": 404}.get(exc.code, 422)
        return ApiError(
            status,
            ErrorCode.USER_REFUSED,
            str(exc),
            "Пользователь не изменён: " + str(exc),
            extra={"rule": exc.code},
        )
    if isinstance(exc, app_purge.PurgeLocked):
        return ApiError(
            409,
            ErrorCode.PURGE_LOCKED,
            "the purge is running on another process of the node; this run did not start",
            "Уничтожение уже выполняется; этот запуск не начат.",
        )
    if isinstance(exc, app_purge.PurgeRefused):
        return ApiError(
            503, ErrorCode.PURGE_REFUSED, str(exc), "Уничтожение не запущено: " + str(exc)
        )
    if isinstance(exc, admin.NoActiveHold):
        return ApiError(
            409,
            ErrorCode.NO_ACTIVE_HOLD,
            "no active legal hold on this conversation; nothing changed",
            "Действующих запретов на эту переписку нет; ничего не изменено.",
        )
    if isinstance(exc, AttachmentDamaged):
        return ApiError(500, exc.code, str(exc), exc.message_ru)
    if isinstance(exc, AttachmentCheckRefused):
        # Our own words: the code, why and what to do; never the file's name or content.
        return ApiError(
            500 if exc.code == AttachmentCheckRefused.DAMAGED else 422,
            exc.code,
            str(exc),
            exc.message_ru,
        )
    if isinstance(exc, InvalidCursor):
        return _bad_parameter(
            "after",
            "the page cursor is not valid; start again from the first page",
            "Курсор страницы недействителен; начните с первой страницы.",
        )
    if isinstance(exc, PermissionDenied):
        needed = str(exc.needed)
        # Our own text from the role alone: the service's message is not ours to vet.
        return ApiError(
            403,
            ErrorCode.FORBIDDEN,
            f"this action needs the role {needed}",
            f"Для этого действия нужна роль «{needed}».",
            extra={"role": needed},
        )
    if isinstance(exc, PurposeRequired):
        return ApiError(
            428,
            ErrorCode.PURPOSE_REQUIRED,
            "reading a document's content needs a stated purpose: give it in the X-Purpose "
            "header or the 'purpose' query parameter (CIS Art. 9.1)",
            "Для ознакомления с документом укажите цель в заголовке X-Purpose или "
            "параметре purpose (ст. 9.1 Соглашения СНГ).",
        )
    if isinstance(exc, NotFound):
        return ApiError(
            404,
            ErrorCode.NOT_FOUND,
            "no such conversation or message",
            "Такой переписки или сообщения нет.",
        )
    if isinstance(exc, web.HTTPException) and exc.status in _HTTP_ERRORS:
        code, en, ru = _HTTP_ERRORS[exc.status]
        headers = {}
        for kept in (hdrs.ALLOW, hdrs.CONTENT_RANGE):
            if kept in exc.headers:
                headers[kept] = exc.headers[kept]
        return ApiError(exc.status, code, en, ru, headers=headers)
    if isinstance(exc, RequestPayloadError):
        # The parser found the body's framing broken while a handler read it (a bad chunk):
        # the client's fault, answered like the parser's own refusals.
        error = describe(400, PayloadEncodingError("body framing"))
        return ApiError(error.status, error.code, error.message, error.message_ru)
    if isinstance(exc, web.HTTPException) and 400 <= exc.status < 500:
        return ApiError(exc.status, ErrorCode.BAD_REQUEST, "bad request", "Неверный запрос.")
    return None


def _bad_body(message: str, message_ru: str) -> ApiError:
    """400 for a JSON body that is not what the route takes: the message shows what to send."""
    return ApiError(400, ErrorCode.BAD_REQUEST, message, message_ru)


async def _body_fields(
    request: web.Request, readers: Mapping[str, Callable[[Any], Any]], send: str, send_ru: str
) -> dict[str, Any]:
    """The JSON body's fields, each read by its reader (None: not valid). A field missing or
    not valid, or one the route does not take: 400 saying what to send."""
    body = await _read_json_body(request)
    values = {name: read(body.get(name)) for name, read in readers.items()}
    if set(body) - set(readers) or any(value is None for value in values.values()):
        raise _bad_body(send, send_ru)
    return values


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _text(longest: int) -> Callable[[Any], str | None]:
    """A reader of a string of 1..``longest`` characters."""
    return lambda value: value if isinstance(value, str) and 0 < len(value) <= longest else None


# --- JSON --------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """A view (frozen dataclasses, dates, enums, sets) as plain JSON values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(to_jsonable(v) for v in value)
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


_dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def _json(
    payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(to_jsonable(payload), status=status, headers=headers, dumps=_dumps)


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers may keep different ones of two equal keys; a document must mean one thing.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKey
    return result


def _no_constants(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _invalid_json(en: str, ru: str) -> ApiError:
    return ApiError(400, ErrorCode.INVALID_JSON, en, ru)


def parse_json_document(raw: bytes) -> dict[str, Any]:
    """One JSON object from UTF-8 bytes, strictly (no duplicate keys, no NaN), or a 400.

    The error says where the problem is (line, column) and what kind it is, never the text.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid_json(
            f"the body is not UTF-8 (byte {exc.start})",
            f"Тело запроса не в кодировке UTF-8 (байт {exc.start}).",
        ) from None
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        # exc.msg is the parser's fixed wording ("Expecting ',' delimiter"), never document text.
        raise _invalid_json(
            f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            f"Тело запроса не является JSON: ошибка в строке {exc.lineno}, столбце {exc.colno}.",
        ) from None
    except _DuplicateKey:
        raise _invalid_json(
            "an object has the same key twice",
            "В объекте JSON один и тот же ключ повторяется.",
        ) from None
    except RecursionError:
        raise _invalid_json(
            "the JSON is nested too deeply", "JSON слишком глубоко вложен."
        ) from None
    except ValueError:
        raise _invalid_json(
            "NaN and Infinity are not allowed", "Значения NaN и Infinity в JSON недопустимы."
        ) from None
    if not isinstance(document, dict):
        raise _invalid_json(
            'the body must be one JSON object {"header": …, "body": …}',
            'Тело запроса должно быть объектом JSON {"header": …, "body": …}.',
        )
    return document


# --- request parts -----------------------------------------------------------------------------


def bearer_token(request: web.Request) -> str:
    """The bearer token of the request, or a 401 (missing, repeated, malformed, over-long)."""
    values = request.headers.getall(hdrs.AUTHORIZATION, [])
    if not values:
        raise _unauthenticated(None)
    if len(values) > 1 or len(values[0]) > MAX_TOKEN_CHARS + len("Bearer "):
        raise _unauthenticated("invalid_request")
    match = _BEARER.fullmatch(values[0])
    if match is None:
        raise _unauthenticated("invalid_request")
    return match.group(1)


def _only_params(request: web.Request, allowed: frozenset[str]) -> None:
    for name in request.query:
        if name not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            # The unknown name is not echoed: it is the client's text, not ours.
            raise ApiError(
                400,
                ErrorCode.INVALID_PARAMETER,
                f"unknown query parameter; this route takes: {names}",
                f"Неизвестный параметр запроса; допустимы: {names}.",
            )
        if len(request.query.getall(name)) > 1:
            raise _bad_parameter(name, "given more than once", "указан более одного раза.")


def _path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _UUID.fullmatch(value):
        raise _bad_parameter(
            name,
            "must be a UUID in canonical lower-case form",
            "должен быть UUID в каноническом виде (строчные буквы).",
        )
    return value


def _clean_purpose(raw: str, source: str) -> str | None:
    try:
        text = unquote(raw, encoding="utf-8", errors="strict")
        text.encode("utf-8")  # surrogates left by a header that was not UTF-8
    except UnicodeError:
        raise _bad_parameter(
            source,
            "must be UTF-8 (percent-encoded or plain)",
            "должен быть в UTF-8 (как есть или в %-кодировке).",
        ) from None
    text = text.strip()
    if not text:
        return None
    if len(text) > MAX_PURPOSE_CHARS:
        raise _bad_parameter(
            source,
            f"longer than {MAX_PURPOSE_CHARS} characters",
            f"длиннее {MAX_PURPOSE_CHARS} символов.",
        )
    if any(unicodedata.category(c) in {"Cc", "Cf"} for c in text):
        raise _bad_parameter(source, "contains control characters", "содержит управляющие символы.")
    return text


def stated_purpose(request: web.Request) -> str | None:
    """The purpose of a confidential read (CIS Art. 9.1): the ``X-Purpose`` header or the
    ``purpose`` query parameter (percent-encoded UTF-8 or plain UTF-8); None when absent."""
    headers = request.headers.getall("X-Purpose", [])
    if len(headers) > 1:
        raise _bad_parameter("X-Purpose", "given more than once", "указан более одного раза.")
    from_header = _clean_purpose(headers[0], "X-Purpose") if headers else None
    query = request.query.get("purpose")
    from_query = _clean_purpose(query, "purpose") if query is not None else None
    if from_header is not None and from_query is not None and from_header != from_query:
        raise _bad_parameter(
            "purpose",
            "differs from the X-Purpose header; send one of them",
            "расходится с заголовком X-Purpose; укажите что-то одно.",
        )
    return from_header if from_header is not None else from_query


def _choice(name: str, value: str, allowed: frozenset[str]) -> str:
    if value not in allowed:
        raise _bad_parameter(
            name,
            f"must be one of: {', '.join(sorted(allowed))}",
            f"допустимые значения: {', '.join(sorted(allowed))}.",
        )
    return value


_LIST_PARAMS = frozenset(
    {"q", "agreement", "body", "state", "kind", "deadline_before", "confidential", "after", "limit"}
)
MAX_SEARCH_CHARS = 200
"""A case number or a debtor's name (an organisation's name may be long)."""


def conversation_query(request: web.Request) -> tuple[ConversationFilter, str | None, int]:
    """Filters, cursor and limit of ``GET /conversations``, each checked; a 400 names the one."""
    _only_params(request, _LIST_PARAMS)
    q = request.query
    agreement = (
        _choice("agreement", q["agreement"], frozenset(PROFILES)) if "agreement" in q else None
    )
    state = _choice("state", q["state"], _STATES) if "state" in q else None
    kind = _choice("kind", q["kind"], _KINDS) if "kind" in q else None
    body = q.get("body")
    if body is not None and not BODY_ID_PATTERN.fullmatch(body):
        raise _bad_parameter(
            "body",
            "must be a body id such as RU-FSSP",
            "должен быть кодом органа, например RU-FSSP.",
        )
    deadline_before = None
    if "deadline_before" in q:
        try:
            deadline_before = date.fromisoformat(q["deadline_before"])
            if len(q["deadline_before"]) != len("2026-12-31"):
                raise ValueError
        except ValueError:
            raise _bad_parameter(
                "deadline_before", "must be a date YYYY-MM-DD", "должен быть датой ГГГГ-ММ-ДД."
            ) from None
    confidential = None
    if "confidential" in q:
        confidential = {"true": True, "false": False}.get(q["confidential"])
        if confidential is None:
            raise _bad_parameter(
                "confidential", "must be true or false", "допустимо true или false."
            )
    after = q.get("after")
    if after is not None and (len(after) > MAX_CURSOR_CHARS or not _CURSOR.fullmatch(after)):
        raise _bad_parameter(
            "after",
            "is not a cursor of this API; pass next_cursor of the previous page as it is",
            "не является курсором API; передайте next_cursor предыдущей страницы без изменений.",
        )
    limit = DEFAULT_PAGE_LIMIT
    if "limit" in q:
        asked = whole_number(q["limit"], 4)
        if asked is None or not 1 <= asked <= MAX_PAGE_LIMIT:
            raise _bad_parameter(
                "limit",
                f"must be a whole number from 1 to {MAX_PAGE_LIMIT}",
                f"должен быть целым числом от 1 до {MAX_PAGE_LIMIT}.",
            )
        limit = asked
    search = q.get("q")
    if search is not None and not 0 < len(search.strip()) <= MAX_SEARCH_CHARS:
        raise _bad_parameter(
            "q",
            f"must be a case number or a debtor's name, 1 to {MAX_SEARCH_CHARS} characters",
            f"должен быть номером производства или именем должника, от 1 до {MAX_SEARCH_CHARS} "
            "знаков.",
        )
    filters = ConversationFilter(
        agreement=agreement,
        body=body,
        state=state,
        kind=kind,
        deadline_before=deadline_before,
        confidential=confidential,
        search=search.strip() if search else None,
    )
    return filters, after, limit


async def _read_json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(
            415,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "send the document with Content-Type: application/json",
            "Передайте документ с заголовком Content-Type: application/json.",
        )
    charset = request.charset
    if charset is not None and charset.lower().replace("-", "") != "utf8":
        raise ApiError(
            415,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "JSON must be UTF-8",
            "JSON должен быть в кодировке UTF-8.",
        )
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_JSON_BYTES, request.content_length)
    raw = await request.read()  # the app's client_max_size stops a chunked body over the limit
    if len(raw) > JSON_PARSE_IN_THREAD_BYTES:
        # The character check walks every string too: for a large body it would stall the
        # loop (and the peer endpoint served on it) as long as the parse would.
        return await asyncio.to_thread(_parsed_and_checked, raw)
    return _parsed_and_checked(raw)


def _parsed_and_checked(raw: bytes) -> dict[str, Any]:
    document = parse_json_document(raw)
    check_json_shape(document)
    check_xml_chars(document)
    return document


_SHAPE_RULES = {
    "MAX_ARRAY_ITEMS": ("holds more than {limit} items", "содержит больше {limit} элементов"),
    "MAX_DEPTH": ("is nested deeper than {limit} levels", "вложен глубже {limit} уровней"),
    "MAX_VALUES": (
        "is where the document passes {limit} values in all",
        "— здесь документ превышает {limit} значений",
    ),
}


def check_json_shape(document: Mapping[str, Any]) -> None:
    """A 422 ``DOCUMENT_TOO_COMPLEX`` naming the field and the bound, before any conversion:
    the CPU a submission may take is bounded by its shape (gateway.web.json_shape)."""
    found = shape_problem(document)
    if found is None:
        return
    en, ru = (text.format(limit=found.limit) for text in _SHAPE_RULES[found.rule])
    where = found.pointer or "the document"
    problem = Problem(
        code=found.rule,
        path=found.pointer,
        message_en=f"{where} {en} ({found.rule}); the schemas allow no document this large",
        message_ru=f"Поле {where} {ru} ({found.rule}): схемы не допускают такого документа.",
        remedy_ru="Проверьте, как система формирует документ: повторяющихся элементов не "
        "больше, чем допускает схема (не больше 100).",
    )
    raise ApiError(
        422,
        ErrorCode.DOCUMENT_TOO_COMPLEX,
        f"{where} {en} ({found.rule}); nothing was converted: send a document the schema allows",
        f"Поле {where} {ru} ({found.rule}); документ не обработан.",
        extra={"problems": [problem.to_json()]},
    )


XML_CHAR_PROBLEM = "XML_CHAR_NOT_ALLOWED"
"""Problem code of a string holding a character XML 1.0 does not allow."""

MAX_CHAR_PROBLEMS = 20
"""Strings with forbidden characters listed in one answer; a body full of them needs one fix
(strip control characters before sending), not a megabyte of problems."""


def check_xml_chars(document: Mapping[str, Any]) -> None:
    """A 422 ``INVALID_CHARACTER`` when any string of ``document`` (value or key) holds a
    character outside XML 1.0's Char production; checked before any conversion."""
    found = []
    for bad in forbidden_strings(document):
        where = "a key of the object at" if bad.in_key else "the string at"
        where_ru = "ключ объекта" if bad.in_key else "строка"
        found.append(
            Problem(
                code=XML_CHAR_PROBLEM,
                path=bad.pointer,
                message_en=(
                    f"{where} {bad.pointer} holds {bad.char_name} at position {bad.offset + 1}: "
                    f"characters not allowed in XML 1.0 ({XML_CHAR_RULE}); remove control "
                    "characters other than tab, line feed and carriage return"
                ),
                message_ru=(
                    f"{where_ru} {bad.pointer} содержит символ {bad.char_name} (позиция "
                    f"{bad.offset + 1}), недопустимый в XML 1.0 (раздел 2.2, Char)."
                ),
                remedy_ru=remedy_ru(),
            )
        )
        if len(found) == MAX_CHAR_PROBLEMS:
            break
    if found:
        raise ApiError(
            422,
            ErrorCode.INVALID_CHARACTER,
            f"{len(found)} string(s) hold characters not allowed in XML 1.0 ({XML_CHAR_RULE}); "
            "see 'problems' for each field (a JSON Pointer), remove those characters and send "
            "again",
            f"Строк с символами, недопустимыми в XML 1.0: {len(found)}; поля названы в "
            "«problems». Удалите эти символы и отправьте снова.",
            extra={"problems": [p.to_json() for p in found]},
        )


def _header_code(document: Mapping[str, Any], name: str) -> str:
    header = document.get("header")
    value = header.get(name) if isinstance(header, Mapping) else None
    return value if isinstance(value, str) else ""


# --- handlers ----------------------------------------------------------------------------------


IDEMPOTENCY_KEY = "Idempotency-Key"
IDEMPOTENT_REPLAYED = "Idempotent-Replayed"
MAX_IDEMPOTENCY_KEY_CHARS = 200
_IDEMPOTENCY_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY_CHARS}}}")
"""Visible ASCII: a UUID, a ULID or the case system's own request number all fit."""


def idempotency_key(request: web.Request) -> str | None:
    """The request's ``Idempotency-Key``, None without one; a 400 naming the header if it is
    repeated or not 1..200 visible ASCII characters."""
    values = request.headers.getall(IDEMPOTENCY_KEY, [])
    if not values:
        return None
    if len(values) > 1 or not _IDEMPOTENCY_KEY.fullmatch(values[0]):
        raise ApiError(
            400,
            ErrorCode.INVALID_PARAMETER,
            f"the {IDEMPOTENCY_KEY} header must be given once, 1..{MAX_IDEMPOTENCY_KEY_CHARS} "
            "visible ASCII characters (a UUID, say)",
            f"Заголовок {IDEMPOTENCY_KEY} указывается один раз: от 1 до "
            f"{MAX_IDEMPOTENCY_KEY_CHARS} видимых символов ASCII (например, UUID).",
        )
    return values[0]


async def submit_message(request: web.Request) -> web.Response:
    _only_params(request, frozenset())
    metrics = request.app[METRICS]
    try:
        document = await _read_json_body(request)
    except ApiError as error:
        if error.code == ErrorCode.INVALID_CHARACTER:
            metrics.message_rejected(XML_CHAR_PROBLEM, RejectionSource.LOCAL)
        elif error.code == ErrorCode.DOCUMENT_TOO_COMPLEX:
            metrics.message_rejected(error.extra["problems"][0]["code"], RejectionSource.LOCAL)
        raise
    try:
        result = await request.app[SERVICE].submit(
            document, actor=request[ACTOR], idempotency_key=idempotency_key(request)
        )
    except ConcurrentChange:
        raise  # busy, not refused: not counted as a rejection
    except DocumentRejected as rejected:
        metrics.message_rejected(rejected.code, RejectionSource.LOCAL)
        raise
    # Labels are checked against the profiles' codes by GatewayMetrics itself.
    if not result.replayed:
        agreement = _header_code(document, "Agreement")
        metrics.message_submitted(agreement, _header_code(document, "Kind"))
        if any(w.get("code") == ANSWER_LATE for w in result.warnings):
            metrics.answer_late(agreement, LateSide.SENT)
    headers = {IDEMPOTENT_REPLAYED: "true"} if result.replayed else {}
    if _UUID.fullmatch(result.message_id):
        headers[hdrs.LOCATION] = MESSAGE.format(message_id=result.message_id)
    answer = to_jsonable(result)
    del answer["replayed"]  # said by the header: a replay's body is the first answer's
    return _json(answer, status=202, headers=headers)


async def list_conversations(request: web.Request) -> web.Response:
    filters, after, limit = conversation_query(request)
    page = await request.app[SERVICE].list_conversations(
        filters, after=after, limit=limit, actor=request[ACTOR]
    )
    return _json(page)


async def _read(
    request: web.Request, name: str, read: Callable[[LocalService], Callable[..., Awaitable[T]]]
) -> T:
    """``read(service)`` of the path's ``name`` id as the token's actor, for the purpose stated
    (the only query parameter such a route takes)."""
    _only_params(request, frozenset({"purpose"}))
    return await read(request.app[SERVICE])(
        _path_id(request, name), actor=request[ACTOR], purpose=stated_purpose(request)
    )


async def get_conversation(request: web.Request) -> web.Response:
    return _json(await _read(request, "conversation_id", lambda s: s.conversation))


MAX_DISCLOSURE_FIELD_CHARS = 500
"""A recipient's name or a purpose: a sentence, not a document."""


async def post_disclosure(request: web.Request) -> web.Response:
    """Disclose a stored document to a party of the proceeding or a third party — allowed only
    as the agreements say (a third party needs the providing body's consent); recorded."""
    _only_params(request, frozenset())
    message_id = _path_id(request, "message_id")
    text = _text(MAX_DISCLOSURE_FIELD_CHARS)
    fields = await _body_fields(
        request,
        {"recipient": text, "category": text, "purpose": text},
        'send {"recipient": "…", "category": "creditor|debtor|third-party", "purpose": "…"}'
        f" (each 1..{MAX_DISCLOSURE_FIELD_CHARS} characters, nothing else)",
        "Укажите recipient, category (creditor, debtor или third-party) и purpose.",
    )
    if fields["category"] not in {"creditor", "debtor", "third-party"}:
        raise _bad_parameter(
            "category", "one of creditor, debtor, third-party", "creditor, debtor или third-party"
        )
    done = await run_case_act(
        app_disclosures.disclose, _admin_context(request), message_id, **fields
    )
    return _json(
        {
            "disclosure_id": done.disclosure_id,
            "message_id": done.message_id,
            "article": done.decision.article,
            "code": done.decision.code,
            "conditions": list(done.conditions),
            "procedure": list(done.procedure),
        },
        status=201,
    )


async def post_proceeding_closed(request: web.Request) -> web.Response:
    """Mark the conversation's proceeding closed (CIS Art. 9.6): the retention clock counting
    from "proceeding-closed" starts at ``closed_at``. Set once; audited."""
    _only_params(request, frozenset())
    conversation_id = _path_id(request, "conversation_id")
    fields = await _body_fields(
        request,
        {"closed_at": _aware_datetime, "reference": _string},
        'send {"closed_at": "2027-03-01T10:00:00+03:00", "reference": "…"}: when the '
        "proceeding was closed (ISO 8601 with a time zone) and the act that closed it",
        "Укажите closed_at (дата и время закрытия производства с часовым поясом) и "
        "reference (реквизиты акта).",
    )
    stored = await run_case_act(
        app_proceedings.close_proceeding,
        _admin_context(request),
        conversation_id,
        fields["closed_at"],
        fields["reference"],
    )
    return _json(
        {
            "conversation_id": conversation_id,
            "proceeding_closed_at": stored.isoformat(),
            "reference": fields["reference"].strip(),
        }
    )


async def get_originals(request: web.Request) -> web.Response:
    """The conversation's documents followed by an original by post (CIS Art. 10 ¶1), with
    what is recorded of each (dates and tracking numbers only)."""
    _only_params(request, frozenset({"purpose"}))
    conversation_id = _path_id(request, "conversation_id")
    found = await request.app[SERVICE].originals(
        conversation_id, actor=request[ACTOR], purpose=stated_purpose(request)
    )
    return _json({"conversation_id": conversation_id, "originals": found})


async def post_original_sent(request: web.Request) -> web.Response:
    """Mark the original of our document posted (CIS Art. 10 ¶1): ``sent_on`` (the node's
    date) and ``tracking`` (carrier and tracking number). Set once; audited."""
    _only_params(request, frozenset())
    message_id = _path_id(request, "message_id")
    fields = await _body_fields(
        request,
        {"sent_on": _iso_date, "tracking": _string},
        'send {"sent_on": "2027-03-01", "tracking": "EMS RA123456789RU"}: the date the '
        "original was posted and its carrier and tracking number (CIS Art. 10 ¶1)",
        "Укажите sent_on (дата отправки оригинала, ГГГГ-ММ-ДД) и tracking (почтовая служба "
        "и трек-номер), ч. 1 ст. 10 Соглашения СНГ.",
    )
    row = await run_case_act(app_originals.mark_sent, _admin_context(request), message_id, **fields)
    return _json(row.to_json())


async def post_original_received(request: web.Request) -> web.Response:
    """Mark the original of a document received (``received_on``, the node's date): here for
    one received, at the other party for ours. Set once; audited."""
    _only_params(request, frozenset())
    message_id = _path_id(request, "message_id")
    fields = await _body_fields(
        request,
        {"received_on": _iso_date},
        'send {"received_on": "2027-03-10"}: the date the original arrived (CIS Art. 10 ¶1)',
        "Укажите received_on (дата получения оригинала, ГГГГ-ММ-ДД), ч. 1 ст. 10 Соглашения СНГ.",
    )
    row = await run_case_act(
        app_originals.mark_received, _admin_context(request), message_id, **fields
    )
    return _json(row.to_json())


def _iso_date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _aware_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None and parsed.utcoffset() is not None else None


async def get_expiring_keys(request: web.Request) -> web.Response:
    """Keys in use whose certificates end within 30 days (administrators, auditors)."""
    _only_params(request, frozenset())
    keys = await request.app[SERVICE].expiring_keys(actor=request[ACTOR])
    return _json({"keys": keys})


def _admin_context(request: web.Request) -> AppContext:
    """The application context acting as this request's actor (its token)."""
    return request.app[ADMIN].acting_as(request[ACTOR])


async def _hold_reason(request: web.Request) -> str:
    fields = await _body_fields(
        request,
        {"reason": _string},
        'send {"reason": "…"}: the order or case reference (1..128 characters, no personal data)',
        "Укажите reason: реквизиты решения или дела (до 128 знаков, без персональных данных).",
    )
    return str(fields["reason"])


async def get_holds(request: web.Request) -> web.Response:
    """Legal holds, newest first: active ones, or every one with ``all=yes``; one
    conversation's with ``conversation_id``."""
    _only_params(request, frozenset({"all", "conversation_id"}))
    everything = _choice("all", request.query.get("all", "no"), frozenset({"yes", "no"}))
    conversation_id = request.query.get("conversation_id")
    if conversation_id is not None and not _UUID.fullmatch(conversation_id):
        raise _bad_parameter("conversation_id", "a UUID in lower case", "UUID в нижнем регистре")
    holds = await in_thread(
        admin.list_holds,
        _admin_context(request),
        active_only=everything == "no",
        conversation_id=conversation_id,
    )
    return _json({"holds": holds})


async def post_hold(request: web.Request) -> web.Response:
    """Put the conversation under a legal hold (CIS Art. 9.6): nothing of it is purged until
    released. Audited (``hold.placed``)."""
    _only_params(request, frozenset())
    conversation_id = _path_id(request, "conversation_id")
    reason = await _hold_reason(request)
    hold_id = await in_thread(admin.place_hold, _admin_context(request), conversation_id, reason)
    return _json({"hold_id": hold_id, "conversation_id": conversation_id}, status=201)


async def post_hold_release(request: web.Request) -> web.Response:
    """Release every active hold on the conversation. Audited (``hold.released``)."""
    _only_params(request, frozenset())
    conversation_id = _path_id(request, "conversation_id")
    reason = await _hold_reason(request)
    released = await in_thread(
        admin.release_holds, _admin_context(request), conversation_id, reason
    )
    return _json({"released": released, "conversation_id": conversation_id})


TOKEN_FIELDS = frozenset({"label", "roles", "expires_in_days"})


def _string_list(value: Any) -> list[str] | None:
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


async def post_token(request: web.Request) -> web.Response:
    """Add a token for this API (gateway.app.admin.add_token); it is answered once, only its
    hash is kept. Audited (``token.created``)."""
    _only_params(request, frozenset())
    body = await _read_json_body(request)
    label, roles, days = body.get("label"), body.get("roles"), body.get("expires_in_days")
    if (
        set(body) - TOKEN_FIELDS
        or not isinstance(label, str)
        or _string_list(roles) is None
        or not (days is None or (isinstance(days, int) and not isinstance(days, bool)))
    ):
        raise _bad_body(
            'send {"label": "…", "roles": ["…"], "expires_in_days": N or null}',
            "Укажите label, roles и (необязательно) expires_in_days.",
        )
    issued = await in_thread(admin.add_token, _admin_context(request), label, roles, days)
    expires = issued.expires_at.isoformat() if issued.expires_at else None
    return _json(
        {"token_id": issued.token_id, "token": issued.token, "expires_at": expires}, status=201
    )


def _admin_rows(
    key: str, listing: Callable[[AppContext], Sequence[Any]], row: Callable[[Any, datetime], Any]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler answering ``{key: [row(item, now), ...]}`` for ``listing(ctx)``."""

    async def handler(request: web.Request) -> web.Response:
        _only_params(request, frozenset())
        ctx = _admin_context(request)
        found = await in_thread(listing, ctx)
        now = ctx.clock()
        return _json({key: [row(item, now) for item in found]})

    return handler


get_tokens = _admin_rows("tokens", admin.list_tokens, admin.token_row)
"""Every token of this API, oldest first (gateway.app.admin.list_tokens): never the token
itself, only its label, roles and state."""
get_users = _admin_rows("users", users.list_users, users.user_row)
"""The console's users by name (gateway.app.users.list_users): never a password's hash."""


async def post_token_revoke(request: web.Request) -> web.Response:
    """Stop a token at once (gateway.app.admin.revoke_token). Audited (``token.revoked``)."""
    _only_params(request, frozenset())
    token_id = whole_number(request.match_info["token_id"], 18)
    if token_id is None:
        raise _bad_parameter("token_id", "a token's number", "номер токена")
    await in_thread(admin.revoke_token, _admin_context(request), token_id)
    return _json({"token_id": token_id, "revoked": True})


async def post_user(request: web.Request) -> web.Response:
    """Add a console user (gateway.app.users.add_user); the password is checked and hashed
    here, as the console and ``gateway users add`` do. Audited (``user.added``)."""
    _only_params(request, frozenset())
    fields = await _body_fields(
        request,
        {"username": _string, "password": _string, "roles": _string_list},
        'send {"username": "…", "password": "…", "roles": ["…"]}',
        "Укажите username, password и roles.",
    )
    username, password, roles = fields["username"], fields["password"], fields["roles"]
    problem = password_problem(password)
    if problem is not None:
        raise users.UserRefused(f"password: {problem}", "PASSWORD_WEAK")
    ctx = _admin_context(request)

    def add() -> users.User:  # hashing costs tens of milliseconds: off the event loop too
        return users.add_user(ctx, username, hash_password(password), roles)

    user = await in_thread(add)
    return _json({"username": user.username, "roles": sorted(user.roles)}, status=201)


async def post_user_disable(request: web.Request) -> web.Response:
    """Disable a console user (gateway.app.users.disable_user). Audited (``user.disabled``)."""
    _only_params(request, frozenset())
    username = request.match_info["username"]
    if not users.USERNAME_PATTERN.fullmatch(username):
        raise _bad_parameter("username", "a console user's name", "имя пользователя консоли")
    await in_thread(users.disable_user, _admin_context(request), username)
    return _json({"username": username, "disabled": True})


async def post_purge_run(request: web.Request) -> web.Response:
    """Run the retention purge now (gateway.app.purge.run_purge_now), signed with the node's
    seal, under the node-wide purge lock. Audited (``purge.started``, ``purge.finished``)."""
    _only_params(request, frozenset())
    ctx = _admin_context(request)
    report = await in_thread(app_purge.run_purge_now, ctx, None, ctx.clock())
    return _json(
        {
            "run_id": report.run_id,
            "state": report.state,
            "purged": report.purged,
            "errors": report.errors,
        },
        status=201,
    )


def _no_report(run_id: str) -> ApiError:
    return ApiError(
        404,
        ErrorCode.NOT_FOUND,
        f"no signed report is stored for purge run {run_id}",
        f"Подписанного отчёта запуска уничтожения {run_id} нет.",
    )


async def get_purge_report(request: web.Request) -> web.Response:
    """A purge run's signed report as stored (gateway.app.purge.report_files, as ``gateway
    purge report --out`` writes it), for checking away from the node: ``report`` is the exact
    signed text (write it as UTF-8), ``signature`` the DER signature in base64, ``certificate``
    the seal's certificate in PEM, ``timestamp`` the TSA's token in base64 or null; 404 when
    none is stored."""
    _only_params(request, frozenset())
    run_id = _path_id(request, "run_id")
    files = await in_thread(app_purge.report_files, _admin_context(request), run_id)
    if files is None:
        raise _no_report(run_id)
    return _json(
        {
            "run_id": run_id,
            "report": files.report_json.decode("utf-8"),
            "signature": base64.b64encode(files.signature).decode("ascii"),
            "certificate": files.seal_pem.decode("ascii"),
            "timestamp": (
                None
                if files.timestamp is None
                else base64.b64encode(files.timestamp).decode("ascii")
            ),
        }
    )


async def post_purge_report_verification(request: web.Request) -> web.Response:
    """Verify a purge run's signed report now (gateway.app.purge.check_report, as ``gateway
    purge verify-report`` does): the seal signature by one of this node's seal generations in
    its window, the run it names and its tombstones → 200 with ``confirmed`` true or false and
    why; 404 when no report is stored for the run. Records nothing (a read)."""
    _only_params(request, frozenset())
    run_id = _path_id(request, "run_id")
    check = await in_thread(app_purge.check_report, _admin_context(request), run_id)
    if not check.stored:
        raise _no_report(run_id)
    return _json(
        {"run_id": run_id, "confirmed": check.ok, "reason": check.reason, "report": check.report}
    )


async def post_audit_verification(request: web.Request) -> web.Response:
    """Verify the whole audit trail now (gateway.app.audit.verify): the hash chain, the signed
    checkpoints against the node's seal, the purge reports and the tombstones. Recorded
    (``audit.verified``) → 201, intact or not."""
    _only_params(request, frozenset())
    result = await in_thread(app_audit.verify, _admin_context(request))
    return _json(
        {
            "intact": result.intact,
            "events_checked": result.events_checked,
            "last_seq": result.last_seq,
            "checkpoints_checked": result.checkpoints_checked,
            "broken_at": result.broken_at,
            "tampering": result.tampering,
            "reason": result.reason,
        },
        status=201,
    )


def _audit_bound(request: web.Request, name: str) -> tuple[int | None, datetime | None]:
    try:
        return app_audit.parse_bound(request.query.get(name))
    except ValueError:
        raise _bad_parameter(
            name,
            "an event number or an ISO 8601 time (2026-11-01T00:00:00Z)",
            "номер события или время ISO 8601 (2026-11-01T00:00:00Z)",
        ) from None


async def get_audit_export(request: web.Request) -> web.StreamResponse:
    """A segment of the audit trail as JSON Lines with its hashes (gateway.app.audit.
    export_lines), ``from``/``to`` an event number or a time; checked away from the node by
    ``gateway audit verify-export``. Recorded (``audit.exported``) once sent whole."""
    _only_params(request, frozenset({"from", "to"}))
    (seq_from, since), (seq_to, until) = _audit_bound(request, "from"), _audit_bound(request, "to")
    lines = app_audit.export_lines(
        _admin_context(request), seq_from=seq_from, seq_to=seq_to, since=since, until=until
    )
    return await stream_lines(request, lines, "audit-export.jsonl")


JSONL = "application/jsonl"


async def post_audit_checkpoint(request: web.Request) -> web.Response:
    """Sign the audit chain's head with the node's seal now (gateway.app.audit.checkpoint, as
    ``gateway audit checkpoint`` does) and answer the checkpoint line for the caller to keep off
    the node (``gateway audit verify --checkpoint FILE`` checks the trail against it). Recorded
    (``audit.checkpoint``) → 201: JSON with the line, or, asked with ``Accept:
    application/jsonl``, the line itself as a file to save."""
    _only_params(request, frozenset())
    ctx, keys = _key_context(request)
    done = await _key_act(lambda: app_audit.checkpoint(ctx, keys.seal()))
    line = checkpoint_file_line(done)
    # The file name is the checkpoint's number: nothing of the request.
    disposition = f'attachment; filename="audit-checkpoint-{done.checkpoint_id}.jsonl"'
    if JSONL in request.headers.get(hdrs.ACCEPT, ""):
        return web.Response(
            body=(line + "\n").encode("utf-8"),
            status=201,
            content_type=JSONL,
            charset="utf-8",
            headers={hdrs.CONTENT_DISPOSITION: disposition},
        )
    return _json(
        {
            "checkpoint_id": done.checkpoint_id,
            "seq": done.seq,
            "hash": done.hash.hex(),
            "at": done.at.isoformat(),
            "line": line,
        },
        status=201,
    )


async def post_directory(request: web.Request) -> web.Response:
    """Install a new version of the depositary's signed directory (the XML file, as the body):
    gateway.app.directory.import_directory verifies its signature and that it follows the
    installed one, swaps the file and records ``directory.imported``; the node takes it at
    once. 201; 200 when that very file was installed already."""
    _only_params(request, frozenset())
    if request.content_length is not None and request.content_length > MAX_DIRECTORY_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_DIRECTORY_BYTES, request.content_length)
    data = await request.read()  # a chunked body: the app refuses it over MAX_DIRECTORY_BYTES
    done = await in_thread(app_directory.import_directory, _admin_context(request), data)
    return _json(
        {"version": done.version, "already": done.already}, status=200 if done.already else 201
    )


ACTIVATE_FIELDS = frozenset({"name", "at", "force"})
REVOKE_FIELDS = frozenset({"name", "reason", "at", "confirm"})
ROTATE_FIELDS = frozenset({"name", "algorithm"})
KEK_ROTATE_FIELDS = frozenset({"at", "confirm"})


def _key_context(request: web.Request) -> tuple[AppContext, Any]:
    """The node's context (as the token's actor) and its key store."""
    ctx = _admin_context(request)
    if ctx.keys is None:  # the running node always passes its keys (gateway.web.runtime)
        raise RuntimeError("the local API's context was built without the node's keys")
    return ctx, ctx.keys


def _is_value_of(kind: type[StrEnum], value: object) -> bool:
    """Whether a JSON value is one of ``kind``'s values (an object or a list is not, and must
    not reach the enum's lookup: it is unhashable)."""
    return isinstance(value, str) and value in kind._value2member_map_


def _key_role(request: web.Request) -> KeyRole:
    role = request.match_info["role"]
    if role not in KeyRole._value2member_map_ or role == KeyRole.KEK:
        raise _bad_parameter(
            "role", "seal, official, tls or encryption", "seal, official, tls или encryption"
        )
    return KeyRole(role)


async def post_key_rotation(request: web.Request) -> web.Response:
    """A new PENDING generation of a key (gateway.app.keys.rotate): certified by the node's
    demo CA if it has one in its keys folder, else with a certificate request beside it.
    Audited (``key.rotated``)."""
    _only_params(request, frozenset())
    ctx, keys = _key_context(request)
    role = _key_role(request)
    body = await _read_json_body(request)
    name, algorithm = body.get("name", ""), body.get("algorithm", str(DEFAULT_KEY_SPEC))
    if (
        set(body) - ROTATE_FIELDS
        or not isinstance(name, str)
        or not _is_value_of(KeySpec, algorithm)
    ):
        specs = ", ".join(KeySpec)
        raise _key_body_error(f'{{"name": "…", "algorithm": one of {specs}}}')
    done = await _key_act(app_keys.rotate, ctx, keys, role, name, algorithm=KeySpec(algorithm))
    return _json(
        {
            "key": done.stem,
            "generation": done.generation,
            "algorithm": done.algorithm,
            "certified_by_demo_ca": done.demo_ca,
        },
        status=201,
    )


async def post_key_publication(request: web.Request) -> web.Response:
    """The certificates the depositary must list in the next directory version
    (gateway.app.keys.publish). Audited (``key.publication.exported``)."""
    _only_params(request, frozenset())
    ctx, keys = _key_context(request)
    published = await _key_act(app_keys.publish, ctx, keys)
    return _json({"certificates": [p.to_json() for p in published]})


async def post_kek_rotation(request: web.Request) -> web.Response:
    """A new KEK, active from ``at`` (gateway.app.keys.rotate_kek_ring); ``confirm`` must name
    the KEK in force. Audited (``kek.rotated``); then POST /kek/rewraps."""
    _only_params(request, frozenset())
    ctx, keys = _key_context(request)
    body = await _read_json_body(request)
    at, confirm = body.get("at", "now"), body.get("confirm")
    if set(body) - KEK_ROTATE_FIELDS or not isinstance(at, str) or not isinstance(confirm, str):
        raise _key_body_error('{"confirm": "the id of the KEK in force", "at": "now"}')

    def act() -> app_keys.RotatedKek:
        when = app_keys.parse_time(at, ctx.clock())
        return app_keys.rotate_kek_ring(ctx, keys, at=when, confirm=confirm)

    done = await _key_act(act)
    return _json(
        {
            "kek_id": done.key_id,
            "active_from": done.active_from.isoformat(),
            "previous": done.previous,
        },
        status=201,
    )


async def post_kek_rewrap(request: web.Request) -> web.Response:
    """Re-wrap every stored data key under the KEK in force (gateway.app.keys.rewrap;
    resumable). Audited (``kek.rewrap.finished``)."""
    _only_params(request, frozenset())
    ctx, keys = _key_context(request)
    done = await _key_act(app_keys.rewrap, ctx, keys)
    result = done.result
    return _json(
        {
            "kek_id": result.active,
            "rewrapped": result.rewrapped,
            "complete": result.complete,
            "retired": done.retired,
        }
    )


KEK_DESTROY_FIELDS = frozenset({"confirm", "acknowledge"})


def _kek_id(request: web.Request) -> str:
    kek_id = request.match_info["kek_id"]
    if not KEK_ID_PATTERN.fullmatch(kek_id):
        raise _bad_parameter(
            "kek_id",
            "a KEK's id as `gateway keys list` shows it (kek-…)",
            "идентификатор KEK, как его показывает `gateway keys list` (kek-…)",
        )
    return kek_id


def _notice_json(notice: app_keys.DestructionNotice) -> dict[str, Any]:
    return {
        "kek_id": notice.key_id,
        "warnings": list(notice.warnings),
        "acknowledge": notice.acknowledge,
    }


async def get_kek_destruction(request: web.Request) -> web.Response:
    """What destroying a retired KEK ends (gateway.app.keys.destruction_notice): the warnings
    ``gateway keys destroy-kek`` prints, and the ``acknowledge`` value a POST must send back.
    Changes nothing."""
    _only_params(request, frozenset())
    ctx, keys = _key_context(request)
    notice = await _key_act(app_keys.destruction_notice, ctx, keys, _kek_id(request))
    return _json(_notice_json(notice))


async def post_kek_destruction(request: web.Request) -> web.Response:
    """Destroy a retired KEK (gateway.app.keys.destroy): ``confirm`` must be its id and
    ``acknowledge`` the value of the warnings as GET answered them; a mismatch is 422
    CONFIRMATION_MISMATCH with the warnings as they are now. Irreversible. Audited
    (``kek.destroyed``)."""
    _only_params(request, frozenset())
    ctx, keys = _key_context(request)
    kek_id = _kek_id(request)
    body = await _read_json_body(request)
    confirm, acknowledge = body.get("confirm"), body.get("acknowledge")
    if (
        set(body) - KEK_DESTROY_FIELDS
        or not isinstance(confirm, str)
        or not isinstance(acknowledge, str)
    ):
        raise _key_body_error(
            '{"confirm": "the id of the KEK", "acknowledge": "the value GET answered with '
            'the warnings"}'
        )
    destroyed = await _key_act(
        app_keys.destroy, ctx, keys, kek_id, confirm=confirm, acknowledge=acknowledge
    )
    return _json({"kek_id": destroyed, "destroyed": True})


async def post_key_certificate(request: web.Request) -> web.Response:
    """Install the certificate a CA issued for a generation's request
    (gateway.app.keys.import_certificate, as ``gateway keys import`` does): the body is the
    certificate, PEM (then its issuers) or DER, at most MAX_CERTIFICATE_BYTES; ``name``
    (query) names an official's key. Audited (``key.certificate.imported``) → 201."""
    _only_params(request, frozenset({"name"}))
    ctx, keys, role, generation = _key_target(request)
    name = request.query.get("name", "")
    limit, declared = app_keys.MAX_CERTIFICATE_BYTES, request.content_length or 0
    data = await request.content.read(limit + 1) if declared <= limit else b""
    if declared > limit or len(data) > limit:  # refused before more is read
        raise ApiError(
            status=413,
            code=ErrorCode.BODY_TOO_LARGE,
            message=f"body (the certificate): over {limit} bytes; send the certificate the CA "
            "issued (then its issuers), nothing else",
            message_ru=f"Тело (сертификат) больше {limit} байт: передайте выданный УЦ "
            "сертификат (и его издателей), ничего больше.",
        )
    done = await _key_act(
        app_keys.import_certificate,
        ctx,
        keys,
        role,
        name,
        generation,
        data,
        source="body (the certificate)",
    )
    leaf = done.certificate
    return _json(
        {
            "key": done.stem,
            "subject": leaf.subject.rfc4514_string(),
            "not_after": leaf.not_valid_after_utc.isoformat(),
            "certificate_sha256": done.sha256,
            "chain_length": done.chain_length,
        },
        status=201,
    )


def _key_target(request: web.Request) -> tuple[AppContext, Any, KeyRole, int]:
    """The node's context (as the token's actor), its key store, the role and generation."""
    ctx, keys = _key_context(request)
    role = _key_role(request)
    generation = whole_number(request.match_info["generation"], 6)
    if generation is None:
        raise _bad_parameter("generation", "a generation's number", "номер поколения ключа")
    return ctx, keys, role, generation


async def _key_act(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return await in_thread(fn, *args, **kwargs)
    except app_keys.REFUSALS as exc:
        # Our own words about the key's manifest and certificate: rules and stems, no secret.
        extra: dict[str, Any] = {"rule": getattr(exc, "code", "")}
        if isinstance(exc, app_keys.DestructionUnconfirmed):
            extra.update(_notice_json(exc.notice))  # what was not acknowledged, as it is now
        raise ApiError(
            422, ErrorCode.KEY_REFUSED, str(exc), "Ключ не изменён: " + str(exc), extra=extra
        ) from None


def _key_body_error(shape: str) -> ApiError:
    return ApiError(400, ErrorCode.BAD_REQUEST, f"send {shape}", f"Укажите {shape}.")


async def post_key_activate(request: web.Request) -> web.Response:
    """Schedule the switch to a generation at ``at`` (gateway.app.keys.activate), once the
    directory in force lists its certificate (or ``force`` says why not). Audited
    (``key.activated``)."""
    _only_params(request, frozenset())
    ctx, keys, role, generation = _key_target(request)
    body = await _read_json_body(request)
    name, at, force = body.get("name", ""), body.get("at"), body.get("force")
    if (
        set(body) - ACTIVATE_FIELDS
        or not isinstance(name, str)
        or not isinstance(at, str)
        or not (force is None or isinstance(force, str))
    ):
        raise _key_body_error('{"at": "now" or ISO 8601, "name": "…", "force": "why"}')

    def act() -> app_keys.Activated:
        when = app_keys.parse_time(at, ctx.clock())
        return app_keys.activate(ctx, keys, role, name, generation, when, force=force)

    done = await _key_act(act)
    return _json({"key": done.stem, "at": done.at.isoformat(), "notes": done.notes})


async def post_key_revoke(request: web.Request) -> web.Response:
    """Stop a generation now (gateway.app.keys.revoke); ``confirm`` must name it (``seal.2``).
    Audited (``key.revoked``)."""
    _only_params(request, frozenset())
    ctx, keys, role, generation = _key_target(request)
    body = await _read_json_body(request)
    name, reason, at = body.get("name", ""), body.get("reason"), body.get("at", "now")
    confirm = body.get("confirm")
    if (
        set(body) - REVOKE_FIELDS
        or not isinstance(name, str)
        or not _is_value_of(RevocationReason, reason)
        or not isinstance(at, str)
        or not isinstance(confirm, str)
    ):
        reasons = ", ".join(RevocationReason)
        raise _key_body_error(
            f'{{"reason": one of {reasons}, "confirm": the generation\'s name ("seal.2"), '
            '"name": "…", "at": "now"}'
        )

    def act() -> app_keys.Revoked:
        when = app_keys.parse_time(at, ctx.clock())
        return app_keys.revoke(
            ctx, keys, role, name, generation, RevocationReason(reason), when, confirm=confirm
        )

    done = await _key_act(act)
    return _json({"key": done.stem, "at": done.at.isoformat(), "reason": done.reason.value})


async def get_message(request: web.Request) -> web.Response:
    return _json(await _read(request, "message_id", lambda s: s.message))


async def get_message_report(request: web.Request) -> web.Response:
    view = await _read(request, "message_id", lambda s: s.message)
    return _json(view.report)


async def post_message_verification(request: web.Request) -> web.Response:
    return _json(await _read(request, "message_id", lambda s: s.reverify), status=201)


async def post_message_resend(request: web.Request) -> web.Response:
    """Send a document the peer refused for good (or whose delivery was given up) again, as a
    new message linked to it: the body is the corrected document (the JSON of a submission);
    an empty body resends the same content."""
    _only_params(request, frozenset())
    message_id = _path_id(request, "message_id")
    document = await _read_json_body(request) if request.can_read_body else None
    result = await request.app[SERVICE].resend(message_id, document, actor=request[ACTOR])
    location = (
        MESSAGE.format(message_id=result.message_id) if _UUID.fullmatch(result.message_id) else None
    )
    return _json(result, status=202, headers={hdrs.LOCATION: location} if location else None)


def _download(content: bytes, media_type: str, message_id: str, suffix: str) -> web.Response:
    # The file name is the message id (a checked UUID) and a fixed suffix: never a field value,
    # which could carry a name or path characters.
    disposition = f'attachment; filename="{message_id}{suffix}"'
    return web.Response(
        body=content,
        content_type=media_type,
        headers={hdrs.CONTENT_DISPOSITION: disposition},
    )


def _message_file(
    read: Callable[[LocalService], Callable[..., Awaitable[bytes]]], media_type: str, suffix: str
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler downloading one file of a message — its signed XML, its PDF rendition, its
    Receipt — read by ``read(service)`` under the stated purpose."""

    async def handler(request: web.Request) -> web.Response:
        content = await _read(request, "message_id", read)
        return _download(content, media_type, request.match_info["message_id"], suffix)

    return handler


get_message_xml = _message_file(lambda s: s.message_xml, XML_MEDIA_TYPE, ".xml")
get_message_pdf = _message_file(lambda s: s.message_pdf, PDF_MEDIA_TYPE, ".pdf")
get_message_receipt = _message_file(lambda s: s.receipt_xml, XML_MEDIA_TYPE, ".receipt.xml")


# --- attachments (docs/attachments.md) ---------------------------------------------------------

UPLOAD_READ_BYTES = 256 * 1024
"""Bytes read from an upload's body at a time."""

_FILE_NAME = re.compile(r'[^/\\:*?"<>|\x00-\x1f]{1,255}')
_MEDIA_TYPE = re.compile(r"[a-z]+/[a-z0-9][a-z0-9.+\-]{0,90}")
_LANGUAGE = re.compile(r"[a-z]{2,3}")


def _upload_meta(request: web.Request) -> AttachmentMeta:
    _only_params(request, frozenset({"name", "media_type", "language"}))
    name = request.query.get("name", "")
    media_type = request.query.get("media_type") or request.content_type
    language = request.query.get("language")
    if not _FILE_NAME.fullmatch(name) or name.strip() != name:
        raise _bad_parameter(
            "name",
            'the file name: 1..255 characters, no folders, none of / \\ : * ? " < > |',
            'имя файла: 1..255 знаков, без папок и знаков / \\ : * ? " < > |',
        )
    if not _MEDIA_TYPE.fullmatch(media_type):
        raise _bad_parameter(
            "media_type", "a media type such as application/pdf", "тип вида application/pdf"
        )
    if language is not None and not _LANGUAGE.fullmatch(language):
        raise _bad_parameter("language", "ISO 639 code in lower case", "код ISO 639, строчными")
    return AttachmentMeta(name, media_type, language)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        ErrorCode.ATTACHMENT_TOO_LARGE,
        f"the attachment is over this node's limit of {limit} bytes ([limits] "
        "max_attachment_bytes)",
        f"Вложение больше предела узла ({limit} байт, [limits] max_attachment_bytes): "
        "разделите файл.",
    )


async def _exactly(
    request: web.Request, declared: int | None, *, resumable: bool = False
) -> AsyncIterator[bytes]:
    """The body's chunks; an upload that ends before its Content-Length is an error (so that
    nothing half-uploaded is ever kept as if whole)."""
    total = 0
    try:
        async for chunk in request.content.iter_chunked(UPLOAD_READ_BYTES):
            total += len(chunk)
            yield chunk
    except (aiohttp.ClientPayloadError, ConnectionError) as exc:
        raise _incomplete(total, declared, resumable) from exc
    if declared is not None and total != declared:
        raise _incomplete(total, declared, resumable)


def _incomplete(total: int, declared: int | None, resumable: bool) -> ApiError:
    if resumable:
        return ApiError(
            400,
            ErrorCode.UPLOAD_INCOMPLETE,
            f"the part ended after {total} of {declared} bytes; the upload keeps its whole "
            "segments: GET it for the offset to go on from",
            f"Часть прервалась ({total} из {declared} байт); загрузка хранит полные сегменты: "
            "запросите её (GET), чтобы узнать, с какого байта продолжить.",
        )
    return ApiError(
        400,
        ErrorCode.UPLOAD_INCOMPLETE,
        f"the upload ended after {total} of {declared} bytes; nothing was kept: upload again",
        f"Загрузка прервалась ({total} из {declared} байт); ничего не сохранено: загрузите "
        "файл снова.",
    )


UPLOAD_LENGTH = "Upload-Length"
UPLOAD_OFFSET = "Upload-Offset"


def _byte_count_header(request: web.Request, name: str, *, least: int) -> int:
    raw = request.headers.getall(name, [])
    value = whole_number(raw[0], 19) if len(raw) == 1 else None
    if value is None:
        raise _bad_parameter(name, "one whole number of bytes", "одно целое число байт")
    if value < least:
        raise _bad_parameter(name, f"at least {least}", f"не меньше {least}")
    return value


def _no_such_upload() -> ApiError:
    return ApiError(
        404,
        ErrorCode.NOT_FOUND,
        "no such resumable upload still unsent (never created, already sent, or deleted a day "
        "after it was created)",
        "Такой возобновляемой загрузки нет (не создана, уже отправлена или удалена через сутки "
        "после создания).",
    )


async def _begin_resumable(request: web.Request, meta: AttachmentMeta) -> web.Response:
    """``POST /attachments`` with ``Upload-Length`` and no body: a resumable upload."""
    length = _byte_count_header(request, UPLOAD_LENGTH, least=1)
    if request.can_read_body:
        raise _bad_parameter(
            UPLOAD_LENGTH,
            "creates a resumable upload and goes without a body: send the file's parts with "
            "PATCH to the upload's address",
            "создаёт возобновляемую загрузку и передаётся без тела: части файла отправляйте "
            "запросом PATCH по адресу загрузки",
        )
    limit = request.app[ATTACHMENT_LIMIT]
    try:
        result = await request.app[SERVICE].begin_upload(meta, length, actor=request[ACTOR])
    except PartTooLarge:
        raise _too_large(limit) from None
    response = _json(result, status=201)
    response.headers[hdrs.LOCATION] = f"{ATTACHMENTS}/{result['attachment_id']}"
    return response


async def get_attachment_upload(request: web.Request) -> web.Response:
    """Where a resumable upload stands: ``offset`` (the next part starts there), ``length``,
    ``complete`` and, once complete, ``sha256``."""
    _only_params(request, frozenset())
    attachment_id = _path_id(request, "attachment_id")
    try:
        result = await request.app[SERVICE].upload_status(attachment_id, actor=request[ACTOR])
    except NotFound:
        raise _no_such_upload() from None
    return _json(result)


async def patch_attachment_upload(request: web.Request) -> web.Response:
    """The next part of a resumable upload, from ``Upload-Offset`` (raw body, streamed); the
    part that reaches the declared length completes it → 200 with the upload's state."""
    _only_params(request, frozenset())
    attachment_id = _path_id(request, "attachment_id")
    offset = _byte_count_header(request, UPLOAD_OFFSET, least=0)
    chunks = _exactly(request, request.content_length, resumable=True)
    try:
        result = await request.app[SERVICE].append_upload(
            attachment_id, offset, chunks, actor=request[ACTOR]
        )
    except NotFound:
        raise _no_such_upload() from None
    except UploadOffsetMismatch as mismatch:
        state = mismatch.state
        raise ApiError(
            409,
            ErrorCode.UPLOAD_OFFSET_MISMATCH,
            "the upload is already complete"
            if state.complete
            else f"the part starts at byte {offset}; the stored bytes end at {state.offset}: "
            "send from there",
            "Загрузка уже завершена."
            if state.complete
            else f"Часть начинается с байта {offset}, а сохранено {state.offset} байт: "
            "продолжайте с этого места.",
            extra={"offset": state.offset, "complete": state.complete},
        ) from None
    except PartTooLarge as too_long:
        raise ApiError(
            400,
            ErrorCode.UPLOAD_TOO_LONG,
            f"the part runs past the declared {UPLOAD_LENGTH} ({too_long.limit} bytes were "
            "left); the bytes before it are kept: GET the upload for its offset",
            f"Часть длиннее заявленного {UPLOAD_LENGTH} (оставалось {too_long.limit} байт); "
            "сохранённое до этого места сохранено: запросите загрузку (GET), чтобы узнать "
            "смещение.",
        ) from None
    return _json(result)


async def post_attachment(request: web.Request) -> web.Response:
    """Stream one file into the node (hashed and encrypted as it arrives, never held whole);
    → 201 with its id, size and SHA-256, to list in a submission's ``attachments``."""
    meta = _upload_meta(request)
    if UPLOAD_LENGTH in request.headers:
        return await _begin_resumable(request, meta)
    limit = request.app[ATTACHMENT_LIMIT]
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)  # before a byte of the body is read
    try:
        result = await request.app[SERVICE].upload_attachment(
            meta, _exactly(request, declared), actor=request[ACTOR]
        )
    except PartTooLarge:
        raise _too_large(limit) from None
    return _json(result, status=201)


def _message_attachment(request: web.Request) -> tuple[str, int]:
    """The route's message id and attachment number (1-based, as its signed header lists
    them); only ``purpose`` may be asked."""
    _only_params(request, frozenset({"purpose"}))
    message_id = _path_id(request, "message_id")
    number = whole_number(request.match_info["number"], 2)
    if number is None or not 1 <= number <= 50:
        raise _bad_parameter("number", "1..50", "от 1 до 50")
    return message_id, number


async def get_message_attachment(request: web.Request) -> web.StreamResponse:
    """The message's attachment ``number``, streamed; the same role, purpose and audit as
    reading the document."""
    message_id, number = _message_attachment(request)
    info, read_from = await request.app[SERVICE].open_attachment(
        message_id, number, actor=request[ACTOR], purpose=stated_purpose(request)
    )
    return await stream_attachment(request, info, read_from, message_id, number)


async def post_attachment_verification(request: web.Request) -> web.Response:
    """Verify the signatures of the message's signed PDF attachment ``number``, streamed from
    the store, with the node's trust and CRLs now; the verdict is recorded → 201."""
    message_id, number = _message_attachment(request)
    check = await request.app[SERVICE].verify_attachment(
        message_id, number, actor=request[ACTOR], purpose=stated_purpose(request)
    )
    return _json(check.to_json(), status=201)


async def post_attachment_return(request: web.Request) -> web.Response:
    """Take a received message's file in again as an upload, to list in a refusal that returns
    it (CIS Art. 13) → 201 with the upload's id, size and SHA-256, as ``POST attachments``."""
    message_id, number = _message_attachment(request)
    copy = await request.app[SERVICE].return_attachment(
        message_id, number, actor=request[ACTOR], purpose=stated_purpose(request)
    )
    return _json(copy, status=201)


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_BYTES], content_type="application/json")


async def get_health(request: web.Request) -> web.Response:
    _only_params(request, frozenset())
    return _json({"status": "ok"})


async def get_metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    response = web.Response(body=metrics.exposition())
    response.headers[hdrs.CONTENT_TYPE] = metrics.content_type
    return response


@dataclass(frozen=True, slots=True)
class Route:
    """One route of the local API."""

    method: str
    path: str
    """The path template (``/api/v1/messages/{message_id}``)."""
    handler: _Handler
    action: Action | None
    """What it asks of the node (:data:`gateway.exchange.service.ACCESS` says who may); None
    for the public routes."""
    summary: str
    """What it does, for docs/local-api.md's route table."""


ROUTES: tuple[Route, ...] = (
    Route(
        hdrs.METH_POST, MESSAGES, submit_message, Action.SUBMIT, "submit a document (JSON) → 202"
    ),
    Route(
        hdrs.METH_GET,
        CONVERSATIONS,
        list_conversations,
        Action.LIST_CONVERSATIONS,
        "list conversations, filtered, paged",
    ),
    Route(
        hdrs.METH_GET,
        CONVERSATION,
        get_conversation,
        Action.READ_CONVERSATION,
        "one conversation and its messages",
    ),
    Route(
        hdrs.METH_POST,
        ATTACHMENTS,
        post_attachment,
        Action.SUBMIT,
        "upload one attachment (raw body, streamed) → 201 with its id; with "
        "`Upload-Length` and no body, start a resumable upload",
    ),
    Route(
        hdrs.METH_GET,
        ATTACHMENT,
        get_attachment_upload,
        Action.SUBMIT,
        "a resumable upload's state: the offset its next part starts at",
    ),
    Route(
        hdrs.METH_PATCH,
        ATTACHMENT,
        patch_attachment_upload,
        Action.SUBMIT,
        "the next part of a resumable upload, from `Upload-Offset` (raw body, streamed)",
    ),
    Route(hdrs.METH_GET, MESSAGE, get_message, Action.READ_DOCUMENT, "one message as JSON"),
    Route(
        hdrs.METH_GET,
        MESSAGE_ATTACHMENT,
        get_message_attachment,
        Action.READ_DOCUMENT,
        "one attachment of the message, streamed",
    ),
    Route(
        hdrs.METH_POST,
        MESSAGE_ATTACHMENT_RETURNS,
        post_attachment_return,
        Action.SUBMIT,
        "take a received file in again as an upload, to return it with a refusal (CIS "
        "Art. 13) → 201",
    ),
    Route(
        hdrs.METH_POST,
        MESSAGE_ATTACHMENT_VERIFICATIONS,
        post_attachment_verification,
        Action.READ_DOCUMENT,
        "verify a signed PDF attachment's signatures, streamed; recorded → 201",
    ),
    Route(
        hdrs.METH_GET,
        MESSAGE_XML,
        get_message_xml,
        Action.READ_DOCUMENT,
        "the signed document, byte-exact",
    ),
    Route(
        hdrs.METH_GET,
        MESSAGE_PDF,
        get_message_pdf,
        Action.READ_DOCUMENT,
        "the signed PDF rendition (PAdES)",
    ),
    Route(
        hdrs.METH_GET,
        MESSAGE_RECEIPT,
        get_message_receipt,
        Action.READ_DOCUMENT,
        "the signed receipt for the message",
    ),
    Route(
        hdrs.METH_GET,
        MESSAGE_REPORT,
        get_message_report,
        Action.READ_DOCUMENT,
        "the verification report recorded at receipt, or at the last re-verification",
    ),
    Route(
        hdrs.METH_POST,
        MESSAGE_VERIFICATIONS,
        post_message_verification,
        Action.READ_DOCUMENT,
        "verify the signatures again now; the result is recorded → 201",
    ),
    Route(
        hdrs.METH_POST,
        MESSAGE_RESEND,
        post_message_resend,
        Action.SUBMIT,
        "send a document the peer refused (or a dead letter) again as a new message, linked "
        "to it; body: the corrected document, or empty for the same content → 202",
    ),
    Route(
        hdrs.METH_POST,
        MESSAGE_DISCLOSURES,
        post_disclosure,
        Action.DISCLOSE,
        "disclose the document (CIS Art. 9.2–9.3; SC Art. 8.2) → 201",
    ),
    Route(
        hdrs.METH_GET,
        CONVERSATION_ORIGINALS,
        get_originals,
        Action.RECORD_ORIGINAL,
        "the conversation's originals by post: sent on, tracking number, received on",
    ),
    Route(
        hdrs.METH_POST,
        MESSAGE_ORIGINAL_SENT,
        post_original_sent,
        Action.RECORD_ORIGINAL,
        "mark the document's original sent by post, with its tracking number (CIS Art. 10 ¶1)",
    ),
    Route(
        hdrs.METH_POST,
        MESSAGE_ORIGINAL_RECEIVED,
        post_original_received,
        Action.RECORD_ORIGINAL,
        "mark the document's original received (CIS Art. 10 ¶1)",
    ),
    Route(
        hdrs.METH_POST,
        CONVERSATION_PROCEEDING_CLOSED,
        post_proceeding_closed,
        Action.CLOSE_PROCEEDING,
        "mark the proceeding closed: its retention clock starts (CIS Art. 9.6)",
    ),
    Route(
        hdrs.METH_GET,
        KEYS_EXPIRING,
        get_expiring_keys,
        Action.READ_KEY_EXPIRY,
        "keys whose certificates end within 30 days",
    ),
    Route(
        hdrs.METH_GET, HOLDS, get_holds, Action.LIST_HOLDS, "legal holds on purging, newest first"
    ),
    Route(
        hdrs.METH_POST,
        CONVERSATION_HOLDS,
        post_hold,
        Action.MANAGE_HOLDS,
        "place a legal hold: nothing of it is purged (CIS Art. 9.6) → 201",
    ),
    Route(
        hdrs.METH_POST,
        CONVERSATION_HOLDS_RELEASE,
        post_hold_release,
        Action.MANAGE_HOLDS,
        "release the conversation's legal holds",
    ),
    Route(
        hdrs.METH_POST, TOKENS, post_token, Action.MANAGE_TOKENS, "add an API token (shown once)"
    ),
    Route(
        hdrs.METH_GET,
        TOKENS,
        get_tokens,
        Action.MANAGE_TOKENS,
        "every token: label, roles, state (never the token)",
    ),
    Route(hdrs.METH_POST, TOKEN_REVOKE, post_token_revoke, Action.MANAGE_TOKENS, "revoke a token"),
    Route(
        hdrs.METH_GET,
        USERS,
        get_users,
        Action.MANAGE_USERS,
        "the console's users: roles, state, last sign-in",
    ),
    Route(hdrs.METH_POST, USERS, post_user, Action.MANAGE_USERS, "add a console user → 201"),
    Route(
        hdrs.METH_POST,
        USER_DISABLE,
        post_user_disable,
        Action.MANAGE_USERS,
        "disable a console user",
    ),
    Route(
        hdrs.METH_POST,
        KEY_GENERATIONS,
        post_key_rotation,
        Action.MANAGE_KEYS,
        "make a new pending generation of a key → 201",
    ),
    Route(
        hdrs.METH_POST,
        KEY_PUBLICATIONS,
        post_key_publication,
        Action.MANAGE_KEYS,
        "the certificates for the next directory version (PEM)",
    ),
    Route(
        hdrs.METH_POST,
        KEY_ACTIVATE,
        post_key_activate,
        Action.MANAGE_KEYS,
        "schedule a key generation's switch (once published) → 200",
    ),
    Route(
        hdrs.METH_POST,
        KEY_REVOKE,
        post_key_revoke,
        Action.MANAGE_KEYS,
        "revoke a key generation now",
    ),
    Route(
        hdrs.METH_POST,
        KEY_CERTIFICATE,
        post_key_certificate,
        Action.MANAGE_KEYS,
        "install the certificate a CA issued for a generation (PEM or DER body) → 201",
    ),
    Route(
        hdrs.METH_POST,
        KEK_ROTATIONS,
        post_kek_rotation,
        Action.MANAGE_KEYS,
        "rotate the KEK ring; `confirm` names the KEK in force → 201",
    ),
    Route(
        hdrs.METH_POST,
        KEK_REWRAPS,
        post_kek_rewrap,
        Action.MANAGE_KEYS,
        "re-wrap the stored data keys under the KEK in force",
    ),
    Route(
        hdrs.METH_GET,
        KEK_DESTRUCTION,
        get_kek_destruction,
        Action.MANAGE_KEYS,
        "what destroying a retired KEK ends: its warnings and their `acknowledge` value",
    ),
    Route(
        hdrs.METH_POST,
        KEK_DESTRUCTION,
        post_kek_destruction,
        Action.MANAGE_KEYS,
        "destroy a retired KEK (irreversible); `confirm` its id, `acknowledge` its warnings",
    ),
    Route(
        hdrs.METH_POST,
        AUDIT_VERIFICATIONS,
        post_audit_verification,
        Action.READ_AUDIT,
        "verify the audit trail (chain, signed checkpoints, purge reports); recorded → 201",
    ),
    Route(
        hdrs.METH_GET,
        AUDIT_EXPORT,
        get_audit_export,
        Action.READ_AUDIT,
        "a segment of the audit trail as JSON Lines with its hashes; recorded",
    ),
    Route(
        hdrs.METH_POST,
        AUDIT_CHECKPOINTS,
        post_audit_checkpoint,
        Action.READ_AUDIT,
        "sign the audit chain's head now; the checkpoint line to keep off the node → 201",
    ),
    Route(
        hdrs.METH_POST,
        DIRECTORY,
        post_directory,
        Action.IMPORT_DIRECTORY,
        "install a new version of the depositary's signed directory (XML body) → 201",
    ),
    Route(
        hdrs.METH_POST,
        PURGE_RUNS,
        post_purge_run,
        Action.RUN_PURGE,
        "run the retention purge now (CIS Art. 9.6); its signed report is stored → 201",
    ),
    Route(
        hdrs.METH_GET,
        PURGE_REPORT,
        get_purge_report,
        Action.READ_AUDIT,
        "a purge run's signed report, signature and seal certificate, to check off the node",
    ),
    Route(
        hdrs.METH_POST,
        PURGE_REPORT_VERIFICATIONS,
        post_purge_report_verification,
        Action.READ_AUDIT,
        "verify a purge run's signed report now, as `gateway purge verify-report` does",
    ),
    Route(hdrs.METH_GET, OPENAPI, get_openapi, None, "this API's OpenAPI 3.1 description"),
    Route(hdrs.METH_GET, HEALTHZ, get_health, None, '`{"status": "ok"}` when the node answers'),
    Route(hdrs.METH_GET, METRICS_PATH, get_metrics, None, "Prometheus text; labels are codes only"),
)
"""Every route of the local API. HEAD is not served."""


def _roles_cell(action: Action | None) -> str:
    if action is None:
        return "none"
    access = ACCESS[action]
    cell = " or ".join(f"`{role}`" for role in access.roles)
    if access.purpose_always:
        cell += " + stated purpose (audited)"
    if access.confidential is not None:
        readers = " or ".join(f"`{role}`" for role in access.confidential)
        cell += f"; confidential: {readers} + stated purpose (audited)"
    return cell


def roles_table() -> str:
    """docs/local-api.md's route table (Markdown), generated from :data:`ROUTES` and
    :data:`gateway.exchange.service.ACCESS`; a test holds the document equal to it."""
    lines = [
        "| method and path | what | roles (checked by the node) |",
        "|---|---|---|",
    ]
    for route in ROUTES:
        lines.append(
            f"| `{route.method} {route.path}` | {route.summary} | {_roles_cell(route.action)} |"
        )
    return "\n".join(lines) + "\n"


# --- middlewares and the app -------------------------------------------------------------------


def route_template(request: web.Request) -> str:
    """The matched route's template (``/api/v1/messages/{message_id}``), never the raw path."""
    match_info = match_info_of(request)
    if match_info is None or match_info.http_exception is not None:
        return UNMATCHED_ROUTE
    return match_info.route.resource.canonical if match_info.route.resource else UNMATCHED_ROUTE


@web.middleware
async def _measure(request: web.Request, handler: _Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 499  # the client went away before an answer (nginx's convention)
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        request.app[METRICS].api_request(
            request.method, route_template(request), status, time.perf_counter() - started
        )


@web.middleware
async def _errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as exc:
        error = _translate(exc)
        if error is not None:
            return error.response()
        log_failure(logger, f"local API request failed: route={route_template(request)}", exc)
        return ApiError(
            500,
            ErrorCode.INTERNAL_ERROR,
            "internal error; the node's log has the details",
            "Внутренняя ошибка узла; подробности — в журнале узла.",
        ).response()


@web.middleware
async def _authenticate(request: web.Request, handler: _Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None:
        raise request.match_info.http_exception
    if route_template(request) in PUBLIC_PATHS:
        return await handler(request)
    token = bearer_token(request)
    actor = await request.app[SERVICE].authenticate_token(token)
    if actor is None:
        logger.warning("local API: unknown token refused: remote=%s", request.remote)
        raise _unauthenticated("invalid_token")
    request[ACTOR] = actor
    return await handler(request)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    _add_security_headers(response)


def _add_security_headers(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers[hdrs.SERVER] = SERVER_HEADER


def low_level_error_response(error: LowLevelError) -> web.Response:
    """The API's answer to what aiohttp refuses below the app (a malformed request, a request
    head too slow, a failure outside the handlers): the same JSON shape and headers as every
    other error of the API."""
    response = ApiError(error.status, error.code, error.message, error.message_ru).response()
    _add_security_headers(response)
    return response


def openapi_document() -> dict[str, Any]:
    """The OpenAPI description served at ``/api/v1/openapi.json``: gateway.web.openapi's, with
    each operation's roles (``x-roles``) from the one access table, as the docs' table."""
    spec = build_openapi()
    for route in ROUTES:
        if route.action is None:
            continue
        access = ACCESS[route.action]
        roles: dict[str, Any] = {"any_of": [str(r) for r in access.roles]}
        if access.purpose_always:
            roles["purpose_required"] = True
        if access.confidential is not None:
            roles["confidential"] = {
                "any_of": [str(r) for r in access.confidential],
                "purpose_required": True,
            }
        spec["paths"][route.path][route.method.lower()]["x-roles"] = roles
    return spec


def make_local_api_app(
    service: LocalService,
    metrics: GatewayMetrics,
    admin_context: AppContext,
    *,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
) -> web.Application:
    """The local API as an aiohttp application (serve it alone on its own site, e.g. loopback).

    ``service`` is the node (:class:`LocalService`); ``metrics`` is shared with the node, which
    records receipts and deliveries in it, and is exposed at ``GET /metrics``;
    ``admin_context`` is the application layer's context over the node's store, for the
    administration routes (the node's keys in it for the key routes).
    """
    app = web.Application(
        middlewares=[_measure, _errors, _authenticate],
        client_max_size=MAX_JSON_BYTES,
    )
    app[SERVICE] = service
    app[METRICS] = metrics
    app[ATTACHMENT_LIMIT] = max_attachment_bytes
    app[OPENAPI_BYTES] = json.dumps(openapi_document(), ensure_ascii=False, indent=1).encode()
    app[ADMIN] = admin_context
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    app.on_response_prepare.append(_security_headers)
    return app


class LocalApiAccessLogger(AbstractAccessLogger):
    """Access log lines (:func:`gateway.logs.access`) with the route template, status and time
    only.

    aiohttp's default line holds the request line, and so the query string, where a stated
    purpose (CIS Art. 9.1) may stand; that text belongs in the audit trail, not in a log file.
    Use it as ``web.AppRunner(app, access_log_class=LocalApiAccessLogger)``.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = route_template(request) if isinstance(request, web.Request) else UNMATCHED_ROUTE
        access("api", request.method, route, response.status, time)


async def start_local_api(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8081,
    sock: socket.socket | None = None,
    *,
    settings: ServerSettings | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> web.AppRunner:
    """Serve ``app`` on ``host:port`` (0: a free port, see ``runner.addresses``) with the
    purpose-safe access log, the request-head timeout of ``settings`` and the API's JSON
    errors even for requests aiohttp's parser refuses; ``await runner.cleanup()`` stops it.
    Without ``ssl_context`` (``[api] tls_cert_file``) bind to loopback only: tokens and
    documents would cross the network in clear."""
    metrics = app[METRICS]

    def error_response(error: LowLevelError) -> web.Response:
        # Counted like any request no route matched: a run of them is a signal to look at.
        metrics.api_request("-", UNMATCHED_ROUTE, error.status, 0.0)
        return low_level_error_response(error)

    return await start_guarded_site(
        app,
        host,
        port,
        settings=settings or ServerSettings(),
        error_response=error_response,
        ssl_context=ssl_context,
        sock=sock,
        access_log_class=LocalApiAccessLogger,
    )

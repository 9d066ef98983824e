"""Serving an aiohttp app so that even aiohttp's own answers keep our contract and our limits.

Two things happen below the application, where no middleware runs:

* **aiohttp's HTTP parser refuses a request** (a 10 KB header line, ``Content-Length`` together
  with ``Transfer-Encoding``, a broken request line, a bad chunk). aiohttp answers through
  ``RequestHandler.handle_error`` with plain text, without our error body or security headers,
  and logs the parser's message, which may quote the request's bytes. Here ``handle_error`` is
  overridden: the answer is built by the app's own ``error_response(status, exc)`` (the local
  API's JSON problem, the console's HTML page), with its headers, and only the exception's
  type is logged.
* **A client never finishes its request head** (slowloris). aiohttp has no timeout for that:
  a connection that dribbles header bytes is held until the keep-alive timeout. Here a timer
  starts when a connection opens and whenever the first byte of a new request arrives; when
  :attr:`ServerSettings.header_timeout` passes before the head is complete, the client gets a
  408 in the contract's shape and the connection is closed.

aiohttp hard-wires its ``RequestHandler`` class in ``web.Server.__call__``;
:class:`GuardedAppRunner` builds the server with :class:`GuardedRequestHandler` instead. Use
:func:`start_guarded_site` (or the runner with any ``web.TCPSite`` subclass). It depends on
aiohttp internals named in comments below (``RequestHandler._messages``, ``_waiter``,
``_request_count``, ``_ErrInfo``, ``Server._kwargs``); the tests in
tests/web/api/test_server_guard.py break first if an aiohttp upgrade changes them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import traceback
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, http_exceptions, web
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from aiohttp.web_request import BaseRequest

logger = logging.getLogger(__name__)


def log_failure(log: logging.Logger, what: str, exc: BaseException | None) -> None:
    """Log a request that failed on our side: ``what`` (which request), then the exception's
    type and stack but never its message, which may quote a confidential document (DESIGN.md:
    confidential everywhere, logs included)."""
    stack = "".join(traceback.format_tb(exc.__traceback__)) if exc is not None else ""
    log.error("%s error=%s\n%s", what, type(exc).__qualname__, stack)


HEADER_TIMEOUT = 10.0
"""Seconds a client has to send a whole request head (request line and headers) from the
moment the connection opens or the request's first byte arrives. A real client sends its head
in one packet, milliseconds; ten seconds covers a slow mobile link many times over, while a
slowloris client trickling bytes holds a socket for ten seconds instead of minutes."""

LOCAL_KEEPALIVE_TIMEOUT = 75.0
"""Idle seconds before the local API or the console closes a keep-alive connection: longer
than a browser's or a case system's usual reuse gap (browsers keep idle sockets ~60 s), far
shorter than aiohttp's default of an hour."""

MAX_LINE_BYTES = 8190
"""Longest request line or header line aiohttp's parser takes (its default, named here): our
URLs and headers are well under 1 KB; an 8 KB line is an attack or a mistake."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Connection limits of one listener (the local API, the console; reusable for the peer
    endpoint: pass ``keepalive_timeout`` from gateway.web.limits)."""

    header_timeout: float = HEADER_TIMEOUT
    """Seconds to receive a complete request head; then 408 and close."""
    keepalive_timeout: float = LOCAL_KEEPALIVE_TIMEOUT
    """Idle seconds before a keep-alive connection is closed."""

    def __post_init__(self) -> None:
        for name in ("header_timeout", "keepalive_timeout"):
            value = getattr(self, name)
            if not 0 < value <= 3600:
                raise ValueError(f"{name} must be more than 0 and at most 3600 seconds")


@dataclass(frozen=True, slots=True)
class LowLevelError:
    """What went wrong below the app, in the words an error answer uses (never the request's
    own bytes, which the parser's messages may quote)."""

    status: int
    code: str
    """``MALFORMED_REQUEST``, ``REQUEST_TIMEOUT`` or ``INTERNAL_ERROR``."""
    message: str
    message_ru: str


ErrorResponse = Callable[[LowLevelError], web.Response]
"""Builds the app's error answer (JSON for the API, an HTML page for the console) with all the
headers the app's own responses carry: ``on_response_prepare`` does not run for these."""


def match_info_of(request: web.BaseRequest) -> Any | None:
    """The request's route match, or None for a request aiohttp's parser refused (it never
    reached the router; aiohttp's ``Request.match_info`` asserts instead of saying so)."""
    return getattr(request, "_match_info", None)


class HeaderTimeout(Exception):
    """The request head did not arrive within :attr:`ServerSettings.header_timeout`."""


def describe(status: int, exc: BaseException | None) -> LowLevelError:
    """The answer to an error aiohttp raises outside the app's handlers."""
    if isinstance(exc, HeaderTimeout):
        return LowLevelError(
            408,
            "REQUEST_TIMEOUT",
            "the request's headers did not arrive in time; send the whole request head at once",
            "Заголовки запроса не получены вовремя; отправьте заголовки запроса целиком.",
        )
    if status >= 500 or not isinstance(exc, http_exceptions.HttpProcessingError):
        return LowLevelError(
            500,
            "INTERNAL_ERROR",
            "internal error; the node's log has the details",
            "Внутренняя ошибка узла; подробности — в журнале узла.",
        )
    if isinstance(exc, http_exceptions.LineTooLong):
        rule = f"a request line or header line is longer than {MAX_LINE_BYTES} bytes"
        rule_ru = f"строка запроса или заголовка длиннее {MAX_LINE_BYTES} байт"
    elif isinstance(exc, http_exceptions.BadStatusLine):
        rule = "the request line is not 'METHOD /path HTTP/1.1'"
        rule_ru = "строка запроса не вида «МЕТОД /путь HTTP/1.1»"
    elif isinstance(exc, http_exceptions.InvalidHeader):
        rule = "a header's name or value holds characters HTTP does not allow"
        rule_ru = "имя или значение заголовка содержит недопустимые в HTTP символы"
    elif isinstance(exc, http_exceptions.PayloadEncodingError):
        rule = "the body does not match its framing (Content-Length, chunked encoding)"
        rule_ru = "тело не соответствует Content-Length или chunked-кодированию"
    else:
        rule = (
            "the request is not well-formed HTTP/1.1 (for instance Content-Length together "
            "with Transfer-Encoding, RFC 9112 section 6.1)"
        )
        rule_ru = (
            "запрос не является корректным HTTP/1.1 (например, Content-Length вместе с "
            "Transfer-Encoding, RFC 9112 раздел 6.1)"
        )
    return LowLevelError(
        400,
        "MALFORMED_REQUEST",
        f"malformed HTTP request: {rule}; fix the client or the proxy in front of it",
        f"Некорректный HTTP-запрос: {rule_ru}. Исправьте клиент или прокси перед ним.",
    )


@dataclass(frozen=True, slots=True)
class _Guard:
    settings: ServerSettings
    error_response: ErrorResponse


class GuardedRequestHandler(RequestHandler):
    """aiohttp's protocol with a request-head timer and our error answers."""

    def __init__(self, manager: web.Server, *, guard: _Guard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_expired = False
        self._last_payload: StreamReader | None = None
        """The body of the newest parsed request: bytes arriving once it is complete belong to
        the next request's head."""

    # --- the request-head timer -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()  # an idle new connection must send its head in time too

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_expired:
            return  # the 408 is queued; nothing more is parsed on this connection
        awaiting_head = self._last_payload is None or self._last_payload.is_eof()
        if data and awaiting_head and self._head_timer is None:
            self._arm_head_timer()
        parsed_before = self._request_count  # aiohttp: +1 per parsed head (or parse error)
        super().data_received(data)
        if self._request_count != parsed_before:
            self._disarm_head_timer()
            if self._messages:  # aiohttp's queue of (message, payload) not yet handled
                self._last_payload = self._messages[-1][1]

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self._loop.call_later(
            self._guard.settings.header_timeout, self._head_timed_out
        )

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._force_close or self._close or self.transport is None:
            return
        self._head_expired = True
        logger.info("request head not complete in %ss: 408", self._guard.settings.header_timeout)
        # Queued as aiohttp queues its own parse errors: start() answers it through
        # handle_error (our 408 body) after any request in progress, then closes.
        timeout = HeaderTimeout()
        self._messages.append((_ErrInfo(status=408, exc=timeout, message=""), EMPTY_PAYLOAD))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- error answers ------------------------------------------------------------------------

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The app's own error answer; the log gets the exception's type, never its text."""
        error = describe(status, exc)
        if error.status >= 500:
            log_failure(logger, "request failed outside the app's handlers:", exc)
        elif not isinstance(exc, HeaderTimeout):
            logger.info(
                "malformed request refused: %s remote=%s", type(exc).__qualname__, request.remote
            )
        if request.writer.output_size > 0:
            # Part of an answer is on the wire already: only closing is left (aiohttp's rule).
            raise ConnectionError("response already started; cannot send an error answer")
        response = self._guard.error_response(error)
        response.force_close()
        return response


class _GuardedServer(web.Server):
    """``web.Server`` making :class:`GuardedRequestHandler` protocols."""

    def __init__(self, inner: web.Server, guard: _Guard) -> None:
        # aiohttp's Server keeps the handler arguments (debug, access log class,
        # keepalive_timeout, ...) in ``_kwargs``; they are passed on unchanged.
        super().__init__(
            inner.request_handler,
            request_factory=inner.request_factory,
            handler_cancellation=inner.handler_cancellation,
            **inner._kwargs,
        )
        self._guard = guard

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, guard=self._guard, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections use :class:`GuardedRequestHandler`."""

    def __init__(
        self,
        app: web.Application,
        *,
        settings: ServerSettings,
        error_response: ErrorResponse,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            app,
            keepalive_timeout=settings.keepalive_timeout,
            max_line_size=MAX_LINE_BYTES,
            max_field_size=MAX_LINE_BYTES,
            **kwargs,
        )
        self._guard = _Guard(settings, error_response)

    async def _make_server(self) -> web.Server:
        return _GuardedServer(await super()._make_server(), self._guard)


async def start_guarded_site(
    app: web.Application,
    host: str,
    port: int,
    *,
    settings: ServerSettings,
    error_response: ErrorResponse,
    ssl_context: ssl.SSLContext | None = None,
    sock: socket.socket | None = None,
    **runner_kwargs: Any,
) -> web.AppRunner:
    """Serve ``app`` on ``host:port`` (0: a free port; read it from ``runner.addresses``), or on
    ``sock`` bound beforehand (``gateway serve --workers``), with the request-head timeout and
    ``error_response`` for errors below the app; ``runner_kwargs`` go to the runner
    (``access_log_class``, ``shutdown_timeout``, ...). ``await runner.cleanup()`` stops it."""
    runner = GuardedAppRunner(
        app, settings=settings, error_response=error_response, **runner_kwargs
    )
    await runner.setup()
    try:
        site = (
            web.SockSite(runner, sock, ssl_context=ssl_context)
            if sock is not None
            else web.TCPSite(runner, host, port, ssl_context=ssl_context)
        )
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def _wanted_range(request: web.Request, size: int, etag: str) -> tuple[int, int] | None:
    """The one byte range a download asks for, as ``(start, stop)``; None for the whole file:
    no ``Range``, one this server does not serve (several ranges, another unit: RFC 9110 lets
    it send the whole file instead), or an ``If-Range`` that names another file. Raises 416
    for a range that starts at or past the end."""
    if hdrs.RANGE not in request.headers:
        return None
    if_range = request.headers.get(hdrs.IF_RANGE)
    if if_range is not None and if_range != etag:
        return None
    try:
        wanted = request.http_range
    except ValueError:
        return None
    if wanted.start is not None and wanted.start >= size:
        # Each app answers it in its own format (the local API: RANGE_NOT_SATISFIABLE).
        raise web.HTTPRequestRangeNotSatisfiable(headers={hdrs.CONTENT_RANGE: f"bytes */{size}"})
    start, stop, _ = wanted.indices(size)
    return (start, stop) if stop > start else None


async def stream_attachment(
    request: web.Request,
    info: Any,
    read_from: Callable[[int], AsyncGenerator[bytes, None]],
    message_id: str,
    number: int,
) -> web.StreamResponse:
    """A message's attachment streamed as the local API and the console serve it: named by the
    message id and the number, never the file's own name (it may name a person or carry path
    characters); its SHA-256 in ``X-Content-SHA256`` and, quoted, as its ``ETag`` (a stored
    file never changes). One byte range (``Range: bytes=N-``, ``N-M``, ``-N``) is served as
    206 Partial Content, so that a broken download goes on where it stopped (``curl -C -``);
    only the segments from the range's start are read and decrypted."""
    etag = f'"{info.sha256.hex()}"'
    wanted = _wanted_range(request, info.size, etag)
    start, stop = wanted if wanted is not None else (0, info.size)
    response = web.StreamResponse(
        status=206 if wanted is not None else 200,
        headers={
            "Content-Type": info.meta.media_type,
            "Content-Disposition": f'attachment; filename="{message_id}.{number}"',
            "X-Content-SHA256": info.sha256.hex(),
            hdrs.ETAG: etag,
            hdrs.ACCEPT_RANGES: "bytes",
        },
    )
    if wanted is not None:
        response.headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{stop - 1}/{info.size}"
    response.content_length = stop - start
    await response.prepare(request)
    left = stop - start
    pieces = read_from(start)
    try:
        async for piece in pieces:
            if len(piece) >= left:
                await response.write(piece[:left])
                break
            await response.write(piece)
            left -= len(piece)
    finally:
        await pieces.aclose()
    await response.write_eof()
    return response

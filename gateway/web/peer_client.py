"""Our side of the link to peers: POST an envelope to a peer endpoint over mutual TLS.

One :class:`aiohttp.ClientSession` per peer origin, kept open, so that deliveries reuse
keep-alive connections: a new TLS connection per request costs the peer ~1.3 ms of CPU and
caps a link at ~500 req/s (FACTS.md), against ~11,000 req/s over kept connections.

Exception tree::

    GatewayError
    └── PeerTransportError     one class for every failure; .code says which, .retryable
                               whether the outbox should try again later

Anything but a 2xx answer raises; the answer (a signed Rejection, say) is on ``.response``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

from gateway.model.limits import MAX_RESPONSE_BYTES
from gateway.model.numbers import whole_number
from gateway.model.problems import GatewayError
from gateway.web.limits import (
    CLIENT_CONNECT_TIMEOUT,
    CLIENT_CONNECTIONS_PER_PEER,
    CLIENT_KEEPALIVE_TIMEOUT,
    CLIENT_TOTAL_TIMEOUT,
    time_limit_for,
)
from gateway.web.peer_server import (
    MESSAGES_PATH,
    PART_CONTENT_TYPE,
    PARTS_PATH,
    READ_CHUNK_BYTES,
    REPR_DIGEST,
    UPLOAD_LENGTH,
    UPLOAD_OFFSET,
    XML_CONTENT_TYPE,
)

logger = logging.getLogger(__name__)

USER_AGENT = "cis-exchange-gateway"
"""No version numbers: they only help an attacker."""


@dataclass(frozen=True, slots=True)
class PeerResponse:
    """A peer's answer to one POST."""

    status: int
    body: bytes
    content_type: str
    """Media type without parameters, e.g. ``application/xml``."""


class TransportErrorCode(StrEnum):
    """Why a delivery failed. Stable names for logs, metrics and the outbox."""

    BAD_ENDPOINT = "BAD_ENDPOINT"
    """The endpoint URL is not ``https://host[:port]/path``: fix the directory entry."""
    CONNECT_FAILED = "CONNECT_FAILED"
    """Connection refused, unreachable or name not resolved."""
    TLS_FAILED = "TLS_FAILED"
    """Handshake failed: the peer's certificate is not trusted or not for this host, or the
    peer refused ours (an asyncio server refuses by cutting the connection mid-handshake, so a
    reset after TCP connected counts here). Needs an operator (keys or directory); retryable,
    so that the message leaves by itself once they fixed it."""
    TIMEOUT = "TIMEOUT"
    CONNECTION_LOST = "CONNECTION_LOST"
    """The peer closed or reset the connection before answering in full."""
    HTTP_STATUS = "HTTP_STATUS"
    """The peer answered with a status other than 2xx; see ``status`` and ``response``."""
    RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"


class PeerTransportError(GatewayError):
    """A delivery to a peer failed. ``retryable`` tells the outbox whether to try again."""

    def __init__(
        self,
        code: TransportErrorCode,
        endpoint: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        response: PeerResponse | None = None,
    ) -> None:
        what = f"HTTP {status}" if status is not None else code.value
        super().__init__(
            f"{code.value}: delivery to {endpoint} failed ({what}); "
            + ("the outbox retries later" if retryable else "not retried: needs an operator")
        )
        self.code = code
        self.endpoint = endpoint
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        """Seconds the peer asked us to wait (``Retry-After`` on 429/503), if it said."""
        self.response = response


RETRYABLE_STATUSES = frozenset({408, 416, 429, 500, 502, 503, 504})
"""Statuses after which the same message may succeed later; other 4xx mean it never will
(416: a resumed part the peer no longer holds; the retry asks again, or sends it whole)."""


def messages_url(base_url: str) -> str:
    """The peer's message endpoint under its base URL from the directory."""
    return str(URL(base_url).with_path(MESSAGES_PATH))


def held_part_url(base_url: str, name: bytes | str, length: int) -> str:
    """Where the peer says how much it holds of a part (``GET``, docs/attachments.md): a plain
    part named by its SHA-256, a sealed one by our id for it (the sealing's ``sealed_as``)."""
    path = (
        f"{PARTS_PATH}/{name.hex()}" if isinstance(name, bytes) else f"{PARTS_PATH}/sealed/{name}"
    )
    return str(URL(base_url).with_path(path).with_query(length=str(length)))


class PeerClient:
    """Delivers payloads to peers over mutual TLS, keeping connections alive per peer.

    ``ssl_context`` comes from :func:`gateway.app.tls.client_context` (or a
    :class:`~gateway.app.tls.ReloadableContext` around one). Use ``async with`` or :meth:`close`.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        connections_per_peer: int = CLIENT_CONNECTIONS_PER_PEER,
        keepalive_timeout: float = CLIENT_KEEPALIVE_TIMEOUT,
    ) -> None:
        if ssl_context.verify_mode != ssl.CERT_REQUIRED or not ssl_context.check_hostname:
            raise ValueError("the peer client needs a context that verifies peers and hosts")
        self._ssl = ssl_context
        self._timeout = timeout or aiohttp.ClientTimeout(
            total=CLIENT_TOTAL_TIMEOUT, connect=CLIENT_CONNECT_TIMEOUT
        )
        self._max_response_bytes = max_response_bytes
        self._connections_per_peer = connections_per_peer
        self._keepalive_timeout = keepalive_timeout
        self._sessions: dict[tuple[str, int], aiohttp.ClientSession] = {}

    async def __aenter__(self) -> PeerClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every peer's connections."""
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions))

    async def drop_connections(self) -> None:
        """Close kept connections so the next deliveries handshake anew (after a key or
        trust-anchor reload). The client stays usable."""
        await self.close()

    def _session_for(self, url: URL) -> aiohttp.ClientSession:
        key = (url.host or "", url.port or 443)
        session = self._sessions.get(key)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self._ssl,
                limit=self._connections_per_peer,
                limit_per_host=self._connections_per_peer,
                keepalive_timeout=self._keepalive_timeout,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,
                trust_env=False,  # no proxy from the environment between us and a peer
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": USER_AGENT},
            )
            self._sessions[key] = session
        return session

    async def post_message(
        self, endpoint_url: str, payload: bytes, parts: Sequence[PartPayload] = ()
    ) -> PeerResponse:
        """POST ``payload`` (an envelope, ``application/xml``) to ``endpoint_url``; with
        ``parts``, one ``multipart/mixed`` delivery: the envelope, then each part streamed.

        Returns the peer's 2xx answer; raises :class:`PeerTransportError` otherwise.
        """
        url = _checked_endpoint(endpoint_url)
        session = self._session_for(url)
        data: Any = payload
        headers = {"Content-Type": XML_CONTENT_TYPE}
        timeout = None  # the session's
        if parts:
            data, headers = _delivery(payload, parts)
            timeout = aiohttp.ClientTimeout(
                total=time_limit_for(self._timeout.total or 0.0, data.size),
                connect=self._timeout.connect,
            )
        try:
            async with session.post(
                url,
                data=data,
                headers=headers,
                allow_redirects=False,
                **({"timeout": timeout} if timeout is not None else {}),
            ) as resp:
                body = await self._read_limited(resp, endpoint_url)
                answer = PeerResponse(resp.status, body, resp.content_type)
                if 200 <= resp.status < 300:
                    return answer
                raise PeerTransportError(
                    TransportErrorCode.HTTP_STATUS,
                    endpoint_url,
                    retryable=resp.status in RETRYABLE_STATUSES,
                    status=resp.status,
                    retry_after=_retry_after(resp.headers.get("Retry-After")),
                    response=answer,
                )
        except PeerTransportError:
            raise
        except aiohttp.ClientSSLError as exc:
            raise _tls_failed(endpoint_url) from exc
        except aiohttp.ClientConnectorError as exc:
            # Refused/unreachable happen before TCP is up; a reset or an SSL error after it
            # means the TLS handshake failed.
            if isinstance(exc.os_error, ssl.SSLError | ConnectionResetError | BrokenPipeError):
                raise _tls_failed(endpoint_url) from exc
            raise PeerTransportError(
                TransportErrorCode.CONNECT_FAILED, endpoint_url, retryable=True
            ) from exc
        except TimeoutError as exc:
            raise PeerTransportError(
                TransportErrorCode.TIMEOUT, endpoint_url, retryable=True
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            if _caused_by_tls_alert(exc):
                raise _tls_failed(endpoint_url) from exc
            raise PeerTransportError(
                TransportErrorCode.CONNECTION_LOST, endpoint_url, retryable=True
            ) from exc

    async def held_offset(self, endpoint_url: str, name: bytes | str, length: int) -> int:
        """How many bytes of a part (``name``: its SHA-256, or a sealed part's ``sealed_as``;
        and its length as sent) the peer holds from a delivery of ours that broke off: where
        the retry's part may start. 0 when it holds none, or cannot say (an older node, an
        error): the part then goes whole, as it always could."""
        try:
            url = _checked_endpoint(held_part_url(endpoint_url, name, length))
            async with self._session_for(url).get(url, allow_redirects=False) as resp:
                if resp.status != 200:
                    return 0
                offset = json.loads(await self._read_limited(resp, endpoint_url))["offset"]
        except (PeerTransportError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.info("asking %s for a held part failed: %s", endpoint_url, type(exc).__name__)
            return 0
        except (ValueError, KeyError, TypeError):
            return 0
        # Only ever where the bytes we send from start: an offset out of range is ignored.
        if type(offset) is not int or not 0 <= offset <= length:
            return 0
        return offset

    async def _read_limited(self, resp: aiohttp.ClientResponse, endpoint: str) -> bytes:
        limit = self._max_response_bytes
        too_large = PeerTransportError(
            TransportErrorCode.RESPONSE_TOO_LARGE, endpoint, retryable=False, status=resp.status
        )
        if resp.content_length is not None and resp.content_length > limit:
            resp.close()
            raise too_large
        chunks: list[bytes] = []
        total = 0
        async for chunk in resp.content.iter_chunked(READ_CHUNK_BYTES):
            total += len(chunk)
            if total > limit:
                resp.close()
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)


class PartPayload(aiohttp.payload.AsyncIterablePayload):
    """One attachment part of a delivery: its bytes come from ``chunks`` as they are sent
    (decrypted from the store batch by batch); its size is known, so the delivery carries a
    Content-Length the receiver can refuse before reading."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        size: int,
        *,
        whole: tuple[int, bytes | None] | None = None,
        offset: int = 0,
    ) -> None:
        """``size``: the bytes ``chunks`` brings. ``whole``: the whole part's length and
        SHA-256 (None for a sealed part, named by its sealing), declared so that the peer
        holds what came if the delivery breaks off (a resumable part); ``offset``: where
        ``chunks`` starts in it (a retry going on from what the peer holds,
        :meth:`PeerClient.held_offset`)."""
        headers = {}
        if whole is not None:
            length, sha256 = whole
            headers = {UPLOAD_LENGTH: str(length), UPLOAD_OFFSET: str(offset)}
            if sha256 is not None:
                headers[REPR_DIGEST] = f"sha-256=:{base64.b64encode(sha256).decode()}:"
        super().__init__(chunks, content_type=PART_CONTENT_TYPE, headers=headers)
        self._size = size


def _delivery(payload: bytes, parts: Sequence[PartPayload]) -> tuple[Any, dict[str, str]]:
    writer = aiohttp.MultipartWriter("mixed")
    writer.append(payload, {"Content-Type": XML_CONTENT_TYPE})
    for part in parts:
        writer.append_payload(part)
    return writer, {"Content-Type": writer.content_type}


def _checked_endpoint(endpoint_url: str) -> URL:
    try:
        url = URL(endpoint_url)
    except (ValueError, TypeError):
        url = None
    if (
        url is None
        or url.scheme != "https"
        or not url.host
        or url.user is not None
        or url.password is not None
        or url.fragment
    ):
        raise PeerTransportError(TransportErrorCode.BAD_ENDPOINT, endpoint_url, retryable=False)
    return url


def _tls_failed(endpoint: str) -> PeerTransportError:
    return PeerTransportError(TransportErrorCode.TLS_FAILED, endpoint, retryable=True)


def _caused_by_tls_alert(exc: BaseException) -> bool:
    """True when the peer's TLS stack refused us with an alert (TLS 1.3 reports a rejected
    client certificate only at the first read, after our side thinks the handshake is done)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds; the HTTP-date form and nonsense are ignored (None)."""
    seconds = whole_number(value.strip(), 9) if value is not None else None
    return None if seconds is None else float(min(seconds, 24 * 3600))

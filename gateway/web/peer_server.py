"""The peer endpoint: where other nodes POST signed envelopes to us, over mutual TLS.

Two routes: ``POST /exchange/v1/messages`` with ``Content-Type: application/xml`` (or
``multipart/mixed``, the XML and its attachment parts), and ``GET /exchange/v1/parts/{sha256}``,
how much of a part of a delivery that broke off the node holds for its retry. What happens
to the bytes is the receive pipeline's business (injected); this module only lets through
requests from a peer the directory knows, at a rate, size and speed that cannot hurt the node.

Middlewares, outermost first::

    _errors        any failure -> a stable code in plain text, no detail for an attacker
    _time_limit    the whole request (body + pipeline) within PeerLimits.request_time_limit
    _identify      verified client certificate -> body id of the directory, else 403
    _rate_limit    a token bucket and a cap on requests in flight per body id, else 429
                   with Retry-After

The handler then reserves the body's declared length (the largest message when undeclared) in a
byte budget shared by all peers (PeerLimits.bytes_in_flight), reads the body and runs the
pipeline, and gives the bytes back with its answer. A request that finds no room waits in line
for PeerLimits.room_wait seconds, then gets 503 BUSY: however many peers send large bodies at
once, the node holds at most that many bytes of them (and their trees).

Refusals are ``text/plain`` bodies holding one code of :class:`PeerErrorCode` (the lead turns
them into signed Rejections later). Codes never change once published.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from aiohttp import BodyPartReader, HttpVersion11, MultipartReader, hdrs, web
from aiohttp.abc import AbstractAccessLogger

from gateway.app.context import storage_fault
from gateway.crypto.recipient import is_encrypted
from gateway.crypto.segments import SegmentOpener, sealed_size
from gateway.exchange.attachments import (
    HeldClaim,
    HeldPartMissing,
    PartShort,
    PartTooLarge,
    StagedPart,
    sealed_claim,
)
from gateway.logs import access
from gateway.model.limits import DELIVERY_FRAMING_BYTES
from gateway.web.budget import ByteBudget, NoRoom, give_back_freed_memory
from gateway.web.limits import (
    PEER_HEADER_TIMEOUT,
    RETRY_AFTER_BUSY,
    RETRY_AFTER_NO_ROOM,
    RETRY_AFTER_TIMEOUT,
    SERVER_KEEPALIVE_TIMEOUT,
    TLS_HANDSHAKE_TIMEOUT,
    PeerLimits,
    PerPeerRateLimiter,
    time_limit_for,
)
from gateway.web.server import GuardedAppRunner, LowLevelError, ServerSettings, log_failure

logger = logging.getLogger(__name__)

MESSAGES_PATH = "/exchange/v1/messages"
PARTS_PATH = "/exchange/v1/parts"
XML_CONTENT_TYPE = "application/xml"
DELIVERY_CONTENT_TYPE = "multipart/mixed"
"""A delivery with attachments: the signed XML first, then each attachment part in the order
of the header's list (docs/attachments.md)."""
PART_CONTENT_TYPE = "application/octet-stream"
PART_READ_BYTES = 256 * 1024


class PartSink(Protocol):
    """Where a delivery's attachment parts go: staged in the store as they stream in, then
    handed with the XML to the receive pipeline (which links or refuses them)."""

    async def openers(self, payload: bytes) -> Sequence[SegmentOpener | None]:
        """For an encrypted document, before its parts: what opens each listed one as it is
        stored (``gateway.exchange.receiving.part_openers``)."""
        ...

    async def stage(
        self,
        chunks: AsyncIterator[bytes],
        limit: int,
        *,
        sealed: bool = False,
        opener: SegmentOpener | None = None,
    ) -> StagedPart:
        """Hash, seal and store a part (``sealed``: store its segments as they come, opened
        and hashed by ``opener``); raises PartTooLarge over ``limit``."""
        ...

    async def discard(self, attachment_ids: list[str]) -> None:
        """Delete staged parts not linked to a message."""
        ...

    async def held(self, claim: HeldClaim) -> int | None:
        """How many bytes of the part ``claim`` names are held for its peer (None: none)."""
        ...

    async def stage_held(
        self,
        claim: HeldClaim,
        offset: int,
        chunks: AsyncIterator[bytes],
        on_staged: Callable[[str], None],
        opener: SegmentOpener | None = None,
    ) -> StagedPart:
        """A part that declared its length (and digest), from ``offset`` (0, or where its
        held bytes end: ``gateway.exchange.attachments.stage_held``); with ``opener``, a
        sealed one, held as its records came."""
        ...

    async def keep(self, peer: str, attachment_ids: list[str], most_bytes: int) -> None:
        """A delivery broke off: its parts are held for the retry; the peer's oldest held
        parts go past ``most_bytes``."""
        ...

    async def receive(
        self, sender: str, payload: bytes, parts: Sequence[StagedPart]
    ) -> tuple[int, bytes, str]:
        """The receive pipeline for a document with its staged parts."""
        ...


TRIM_AFTER_BYTES = 1024 * 1024
"""After a body at least this large is answered, the C heap's free pages go back to the system
(:func:`~gateway.web.budget.give_back_freed_memory`): its trees took ~10 times its size."""

READ_CHUNK_BYTES = 64 * 1024
"""Body is read in chunks of this size so that the size limit is checked as bytes arrive."""

SERVER_HEADER = "cis-exchange-gateway"
"""Replaces aiohttp's ``Server: Python/3.x aiohttp/3.y``: versions only help an attacker."""

IdentifyPeer = Callable[[bytes], str | None]
"""Verified client certificate (DER) -> body id in the directory, or None when unknown."""

Pipeline = Callable[[str, bytes], Awaitable[tuple[int, bytes, str]]]
"""``(sender body id, payload) -> (status, response body, content type)``: the receive pipeline."""

AuditRefusal = Callable[[str, "PeerErrorCode"], Awaitable[None]]
"""``(actor, code) -> None``: audit a refusal the endpoint made itself (403, 413); ``actor`` is
``peer:<body id>``, or ``peer-unknown:<address>`` when the certificate names no body."""

PEER_BODY_ID = web.RequestKey("peer_body_id", str)
"""The body id of the peer that sent the request, set by the identity middleware."""

PEER_RATE_LIMITER = web.AppKey("peer_rate_limiter", PerPeerRateLimiter)
BODY_BUDGET = web.AppKey("body_budget", ByteBudget)
"""The bytes of bodies in flight (PeerLimits.bytes_in_flight); tests and metrics read it."""


class PeerErrorCode(StrEnum):
    """Stable codes sent to peers. They say what to do, never why in detail."""

    PEER_UNKNOWN = "PEER_UNKNOWN"
    """No verified client certificate, or it belongs to no body of the directory (403)."""
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    """Body over the limit (413); do not retry the same message."""
    RATE_LIMITED = "RATE_LIMITED"
    """Too many requests from this body (429); retry after ``Retry-After`` seconds."""
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    """Not ``application/xml``, or a ``Content-Encoding`` other than identity (415)."""
    TIMEOUT = "TIMEOUT"
    """Body or processing took longer than the time limit (503); retry later."""
    BUSY = "BUSY"
    """No room for the body among those in flight within the wait (503); retry after
    ``Retry-After`` seconds."""
    UNAVAILABLE = "UNAVAILABLE"
    """Our store cannot take the document now (the database restarting, the disk full): nothing
    was stored (503); retry after ``Retry-After`` seconds."""
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    BAD_REQUEST = "BAD_REQUEST"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    """Our fault (500); retry later. Details are in our log only."""
    PART_OFFSET_MISMATCH = "PART_OFFSET_MISMATCH"
    """A part resumes (``Upload-Offset``) where we hold nothing of it (416): ask
    ``GET /exchange/v1/parts/{sha256}`` again, or send the part whole."""


STORE_UNAVAILABLE_RETRY_AFTER = 5
"""Seconds a peer waits after 503 UNAVAILABLE: a restarting database is back within seconds."""

_STATUS_OF = {
    PeerErrorCode.PEER_UNKNOWN: 403,
    PeerErrorCode.MESSAGE_TOO_LARGE: 413,
    PeerErrorCode.RATE_LIMITED: 429,
    PeerErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    PeerErrorCode.TIMEOUT: 503,
    PeerErrorCode.BUSY: 503,
    PeerErrorCode.UNAVAILABLE: 503,
    PeerErrorCode.NOT_FOUND: 404,
    PeerErrorCode.METHOD_NOT_ALLOWED: 405,
    PeerErrorCode.BAD_REQUEST: 400,
    PeerErrorCode.INTERNAL_ERROR: 500,
    PeerErrorCode.PART_OFFSET_MISMATCH: 416,
}

AUDITED_AT_ENDPOINT = frozenset({PeerErrorCode.PEER_UNKNOWN, PeerErrorCode.MESSAGE_TOO_LARGE})
"""The endpoint's own refusals that reach the audit trail (gateway.exchange.refusals: per peer,
code and minute); the others are the peer's pace (429, 503) or plain mistakes, logged only."""

_CODE_OF_HTTP_STATUS = {
    404: PeerErrorCode.NOT_FOUND,
    405: PeerErrorCode.METHOD_NOT_ALLOWED,
    413: PeerErrorCode.MESSAGE_TOO_LARGE,
    415: PeerErrorCode.UNSUPPORTED_MEDIA_TYPE,
}


class PeerRefused(Exception):
    """Raised inside the peer app to answer with a stable code; never leaves the app."""

    def __init__(self, code: PeerErrorCode, *, retry_after: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.retry_after = retry_after


def refusal(code: PeerErrorCode, *, retry_after: str | None = None) -> web.Response:
    """The plain-text response for ``code`` (placeholder for a signed Rejection)."""
    response = web.Response(
        status=_STATUS_OF[code], text=f"{code.value}\n", content_type="text/plain"
    )
    if retry_after is not None:
        response.headers[hdrs.RETRY_AFTER] = retry_after
    if code in {PeerErrorCode.MESSAGE_TOO_LARGE, PeerErrorCode.BAD_REQUEST, PeerErrorCode.BUSY}:
        # The rest of the body is unread; closing is cheaper than draining it.
        response.force_close()
    return response


def peer_certificate(request: web.Request) -> bytes | None:
    """The DER client certificate that the TLS layer verified for this request's connection."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    return ssl_object.getpeercert(binary_form=True)


def make_peer_app(
    identify_peer: IdentifyPeer,
    pipeline: Pipeline,
    limits: PeerLimits | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    audit_refusal: AuditRefusal | None = None,
    parts: PartSink | None = None,
) -> web.Application:
    """The peer endpoint as an aiohttp application (serve it alone on the mTLS site).

    ``identify_peer`` maps the verified client certificate to a body id (None: 403).
    ``pipeline`` receives ``(sender body id, payload bytes)`` and returns the response.
    ``clock`` is monotonic seconds for the rate limiter; tests pin it.
    ``audit_refusal`` audits the refusals of :data:`AUDITED_AT_ENDPOINT` before they are sent.
    ``parts`` takes deliveries with attachments (``multipart/mixed``); without it they get 415.
    """
    limits = limits or PeerLimits()

    async def audited(request: web.Request, code: PeerErrorCode) -> web.Response:
        if audit_refusal is not None and code in AUDITED_AT_ENDPOINT:
            peer = request.get(PEER_BODY_ID)
            actor = f"peer:{peer}" if peer else f"peer-unknown:{request.remote or '?'}"
            try:
                await audit_refusal(actor[:64], code)
            except Exception as exc:  # the refusal goes out even when its audit failed
                logger.error("auditing a refusal failed: %s", type(exc).__name__)
        return refusal(code, retry_after=None)

    @web.middleware
    async def _errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except PeerRefused as refused:
            if refused.code in AUDITED_AT_ENDPOINT:
                return await audited(request, refused.code)
            return refusal(refused.code, retry_after=refused.retry_after)
        except web.HTTPException as exc:
            code = _CODE_OF_HTTP_STATUS.get(exc.status, PeerErrorCode.BAD_REQUEST)
            return await audited(request, code)
        except Exception as exc:
            fault = storage_fault(exc)
            if fault is not None:  # the store's state, not a bug: one line, no stack
                logger.error(
                    "peer request failed: peer=%s the store is %s; answered 503",
                    request.get(PEER_BODY_ID),
                    fault,
                )
                return refusal(
                    PeerErrorCode.UNAVAILABLE, retry_after=str(STORE_UNAVAILABLE_RETRY_AFTER)
                )
            if isinstance(exc, ConnectionError):  # the peer's link went: nobody to answer
                logger.warning(
                    "peer connection lost mid-request: peer=%s path=%s (%s)",
                    request.get(PEER_BODY_ID),
                    request.path,
                    type(exc).__name__,
                )
                return refusal(PeerErrorCode.BAD_REQUEST)
            # The peer learns only that it was our fault; the pipeline logs its own errors.
            log_failure(
                logger,
                f"peer request failed: peer={request.get(PEER_BODY_ID)} path={request.path}",
                exc,
            )
            return refusal(PeerErrorCode.INTERNAL_ERROR)

    @web.middleware
    async def _time_limit(request: web.Request, handler: _Handler) -> web.StreamResponse:
        # A delivery with attachments may take longer, in proportion to its declared size.
        deadline = asyncio.timeout(
            time_limit_for(limits.request_time_limit, request.content_length)
        )
        try:
            async with deadline:
                return await handler(request)
        except TimeoutError:
            if not deadline.expired():
                raise  # a timeout of the pipeline's own (database, say): its error, not ours
        logger.warning("peer request over the time limit: peer=%s", request.get(PEER_BODY_ID))
        raise PeerRefused(PeerErrorCode.TIMEOUT, retry_after=str(RETRY_AFTER_TIMEOUT))

    @web.middleware
    async def _identify(request: web.Request, handler: _Handler) -> web.StreamResponse:
        cert_der = peer_certificate(request)
        body_id = identify_peer(cert_der) if cert_der else None
        if body_id is None:
            logger.warning("peer not in the directory refused: remote=%s", request.remote)
            raise PeerRefused(PeerErrorCode.PEER_UNKNOWN)
        request[PEER_BODY_ID] = body_id
        return await handler(request)

    in_flight: dict[str, int] = {}

    @web.middleware
    async def _rate_limit(request: web.Request, handler: _Handler) -> web.StreamResponse:
        peer = request[PEER_BODY_ID]
        if in_flight.get(peer, 0) >= limits.max_concurrent_per_peer:
            raise PeerRefused(PeerErrorCode.RATE_LIMITED, retry_after=str(RETRY_AFTER_BUSY))
        decision = request.app[PEER_RATE_LIMITER].check(peer, clock())
        if not decision.allowed:
            raise PeerRefused(PeerErrorCode.RATE_LIMITED, retry_after=decision.retry_after_header)
        in_flight[peer] = in_flight.get(peer, 0) + 1
        try:
            return await handler(request)
        finally:
            in_flight[peer] -= 1
            if not in_flight[peer]:
                del in_flight[peer]

    async def receive_message(request: web.Request) -> web.StreamResponse:
        if request.headers.get(hdrs.CONTENT_ENCODING, "identity").lower() != "identity":
            # A compressed body could expand far past the size limit (a zip bomb).
            raise PeerRefused(PeerErrorCode.UNSUPPORTED_MEDIA_TYPE)
        if request.content_type == DELIVERY_CONTENT_TYPE and parts is not None:
            return await receive_delivery(request, parts)
        if request.content_type != XML_CONTENT_TYPE:
            raise PeerRefused(PeerErrorCode.UNSUPPORTED_MEDIA_TYPE)
        declared = request.content_length
        if declared is not None and declared > limits.max_message_bytes:
            raise PeerRefused(PeerErrorCode.MESSAGE_TOO_LARGE)  # before a byte is read
        # A chunked body may grow to the limit: reserve the limit.
        reserved = declared if declared is not None else limits.max_message_bytes
        try:
            async with request.app[BODY_BUDGET].hold(reserved, limits.room_wait):
                try:
                    payload = await _read_limited(request, reserved)
                    status, body, content_type = await pipeline(request[PEER_BODY_ID], payload)
                finally:
                    if reserved >= TRIM_AFTER_BYTES:
                        # Off the loop: a collection and a trim take tens of milliseconds.
                        asyncio.get_running_loop().run_in_executor(None, give_back_freed_memory)
        except NoRoom:
            peer = request[PEER_BODY_ID]
            logger.warning("no room for a body of %s bytes: peer=%s", reserved, peer)
            raise PeerRefused(PeerErrorCode.BUSY, retry_after=str(RETRY_AFTER_NO_ROOM)) from None
        # As a header, so that a content type with parameters (charset) passes as it is.
        return web.Response(status=status, body=body, headers={hdrs.CONTENT_TYPE: content_type})

    async def receive_delivery(request: web.Request, sink: PartSink) -> web.StreamResponse:
        declared = request.content_length
        if declared is not None and declared > limits.max_delivery_bytes + DELIVERY_FRAMING_BYTES:
            raise PeerRefused(PeerErrorCode.MESSAGE_TOO_LARGE)  # before a byte is read
        budget = request.app[BODY_BUDGET]
        try:
            reader = await request.multipart()
        except (ValueError, AssertionError):  # no boundary, or not multipart after all
            raise PeerRefused(PeerErrorCode.BAD_REQUEST) from None
        reserved = min(declared or limits.max_message_bytes, limits.max_message_bytes)
        try:
            async with budget.hold(reserved, limits.room_wait):
                payload = await _read_xml_part(reader, limits.max_message_bytes)
        except NoRoom:
            raise PeerRefused(PeerErrorCode.BUSY, retry_after=str(RETRY_AFTER_NO_ROOM)) from None
        staged: list[StagedPart] = []
        held: list[str] = []  # this delivery's parts that declared their length and digest
        broken = False
        peer = request[PEER_BODY_ID]
        # A confidential document comes encrypted to us (CMS), and its parts as the sender's
        # sealed segments: stored as they come, and opened and hashed as they come with the
        # keys the document claims (checked against its signed header once verified).
        sealed = is_encrypted(payload)
        try:
            openers: Sequence[SegmentOpener | None] = ()
            if sealed:  # decrypted and parsed: its own size of the budget again
                async with budget.hold(min(len(payload), budget.capacity), limits.room_wait):
                    openers = await sink.openers(payload)
            room = limits.max_delivery_bytes - len(payload)
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader) or len(staged) >= MAX_PARTS:
                    raise PeerRefused(PeerErrorCode.BAD_REQUEST)
                limit = min(limits.max_attachment_bytes, room)
                opener = openers[len(staged)] if len(staged) < len(openers) else None
                resumable = _part_claim(part, peer, opener if sealed else None, sealed=sealed)
                try:
                    if resumable is None:
                        staged.append(
                            await sink.stage(_chunks_of(part), limit, sealed=sealed, opener=opener)
                        )
                    else:
                        claim, offset = resumable
                        if claim.length > (sealed_size(limit) if sealed else limit):
                            raise PartTooLarge(limit)  # before a byte of it is read
                        staged.append(
                            await sink.stage_held(
                                claim, offset, _chunks_of(part), held.append, opener
                            )
                        )
                except PartTooLarge:
                    raise PeerRefused(PeerErrorCode.MESSAGE_TOO_LARGE) from None
                except HeldPartMissing:
                    raise PeerRefused(PeerErrorCode.PART_OFFSET_MISMATCH) from None
                except PartShort:
                    raise PeerRefused(PeerErrorCode.BAD_REQUEST) from None
                room -= staged[-1].size
            # Verification holds the XML (only) in memory again: its own size of the budget.
            async with budget.hold(min(len(payload), budget.capacity), limits.room_wait):
                status, body, content_type = await sink.receive(
                    request[PEER_BODY_ID], payload, staged
                )
        except NoRoom:
            raise PeerRefused(PeerErrorCode.BUSY, retry_after=str(RETRY_AFTER_NO_ROOM)) from None
        except BREAKS:
            broken = bool(held)  # the connection went, or the time limit came
            raise
        finally:
            if broken:  # held for the retry, which asks GET /exchange/v1/parts/{sha256}
                await sink.discard([p.attachment_id for p in staged if p.attachment_id not in held])
                await sink.keep(peer, held, limits.max_delivery_bytes)
            else:  # refused, replayed or failed: nothing of the delivery stays (linked parts do)
                await sink.discard(list({*held, *(p.attachment_id for p in staged)}))
        return web.Response(status=status, body=body, headers={hdrs.CONTENT_TYPE: content_type})

    async def held_part(request: web.Request) -> web.StreamResponse:
        if parts is None:
            raise PeerRefused(PeerErrorCode.NOT_FOUND)
        length = request.query.get("length", "")
        if not _DECIMAL.fullmatch(length):
            raise PeerRefused(PeerErrorCode.BAD_REQUEST)
        peer = request[PEER_BODY_ID]
        if "sealed_as" in request.match_info:  # a sealed part: named by its sender's id
            sealed_as = request.match_info["sealed_as"]
            if not _UUID.fullmatch(sealed_as):
                raise PeerRefused(PeerErrorCode.BAD_REQUEST)
            claim = sealed_claim(peer, sealed_as, int(length))
        else:
            digest = request.match_info["sha256"]
            if not _SHA256_HEX.fullmatch(digest):
                raise PeerRefused(PeerErrorCode.BAD_REQUEST)
            claim = HeldClaim(peer, int(length), bytes.fromhex(digest))
        offset = await parts.held(claim)
        if offset is None:
            raise PeerRefused(PeerErrorCode.NOT_FOUND)
        return web.json_response({"length": claim.length, "offset": offset})

    app = web.Application(
        client_max_size=limits.max_message_bytes,
        middlewares=[_errors, _time_limit, _identify, _rate_limit],
    )
    app[PEER_RATE_LIMITER] = PerPeerRateLimiter(limits.rate)
    app[BODY_BUDGET] = ByteBudget(limits.bytes_in_flight)

    async def expect_continue(request: web.Request) -> web.StreamResponse | None:
        # Runs before the middlewares (aiohttp calls it first): check who asks and how much
        # before inviting the body with "100 Continue".
        if request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
            return refusal(PeerErrorCode.BAD_REQUEST)
        cert_der = peer_certificate(request)
        try:
            known = cert_der is not None and identify_peer(cert_der) is not None
        except Exception:
            logger.exception("identify_peer failed")
            return refusal(PeerErrorCode.INTERNAL_ERROR)
        if not known:
            return await audited(request, PeerErrorCode.PEER_UNKNOWN)
        declared = request.content_length
        most = limits.max_message_bytes
        if request.content_type == DELIVERY_CONTENT_TYPE and parts is not None:
            most = limits.max_delivery_bytes + DELIVERY_FRAMING_BYTES
        if declared is not None and declared > most:
            assert cert_der is not None
            request[PEER_BODY_ID] = identify_peer(cert_der) or ""
            return await audited(request, PeerErrorCode.MESSAGE_TOO_LARGE)
        if request.version == HttpVersion11:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the interim answer is not part of the response
        return None

    app.router.add_post(MESSAGES_PATH, receive_message, expect_handler=expect_continue)
    app.router.add_get(PARTS_PATH + "/{sha256}", held_part, allow_head=False)
    app.router.add_get(PARTS_PATH + "/sealed/{sealed_as}", held_part, allow_head=False)
    app.on_response_prepare.append(_secure_headers)
    return app


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


MAX_PARTS = 50
"""As many as the header's list takes (envelope.xsd)."""

BREAKS = (ConnectionError, TimeoutError, asyncio.CancelledError)
"""What ends a part's stream without a refusal: the peer's connection lost (aiohttp raises
ConnectionResetError on a read), or the request's time limit (a cancellation inside it)."""

UPLOAD_LENGTH = "Upload-Length"
UPLOAD_OFFSET = "Upload-Offset"
REPR_DIGEST = "Repr-Digest"
"""A part's headers that make it resumable (docs/attachments.md, "Resumable deliveries"): its
whole length, where this part's bytes start, and the whole part's SHA-256 (RFC 9530)."""

_DECIMAL = re.compile(r"[0-9]{1,19}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SHA256_MEMBER = re.compile(r"sha-256=:([A-Za-z0-9+/]{43}=):")


def _part_claim(
    part: BodyPartReader, peer: str, opener: SegmentOpener | None, *, sealed: bool
) -> tuple[HeldClaim, int] | None:
    """The part's declared length (and, plain, its digest) and its first byte's offset; None
    for a part that declares none (sent whole, not held on a break), and for a sealed part
    nothing claims how to open (refused once verified). A sealed part is named by the
    sealing's ``sealed_as`` the document claims. Malformed: 400."""
    length = part.headers.get(UPLOAD_LENGTH)
    if length is None or (sealed and opener is None):
        return None
    offset = part.headers.get(UPLOAD_OFFSET, "0")
    if not _DECIMAL.fullmatch(length) or not _DECIMAL.fullmatch(offset):
        raise PeerRefused(PeerErrorCode.BAD_REQUEST)
    if int(offset) > int(length):
        raise PeerRefused(PeerErrorCode.BAD_REQUEST)
    if opener is not None:
        return sealed_claim(peer, opener.sealed_as, int(length)), int(offset)
    members = [m.strip() for m in part.headers.get(REPR_DIGEST, "").split(",")]
    digests = [found.group(1) for m in members if (found := _SHA256_MEMBER.fullmatch(m))]
    if len(digests) != 1:
        raise PeerRefused(PeerErrorCode.BAD_REQUEST)
    return HeldClaim(peer, int(length), base64.b64decode(digests[0])), int(offset)


async def _read_xml_part(reader: MultipartReader, max_bytes: int) -> bytes:
    """The delivery's first part, the signed XML, refused over ``max_bytes``."""
    part = await reader.next()
    if not isinstance(part, BodyPartReader) or part.headers.get(hdrs.CONTENT_TYPE) != (
        XML_CONTENT_TYPE
    ):
        raise PeerRefused(PeerErrorCode.BAD_REQUEST)
    chunks: list[bytes] = []
    total = 0
    while chunk := await part.read_chunk(PART_READ_BYTES):
        total += len(chunk)
        if total > max_bytes:
            raise PeerRefused(PeerErrorCode.MESSAGE_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


async def _chunks_of(part: BodyPartReader) -> AsyncIterator[bytes]:
    if part.headers.get(hdrs.CONTENT_ENCODING, "identity").lower() != "identity":
        raise PeerRefused(PeerErrorCode.UNSUPPORTED_MEDIA_TYPE)
    while chunk := await part.read_chunk(PART_READ_BYTES):
        yield chunk


async def _read_limited(request: web.Request, max_bytes: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``max_bytes``."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(READ_CHUNK_BYTES):
        total += len(chunk)
        if total > max_bytes:
            raise PeerRefused(PeerErrorCode.MESSAGE_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


def _low_level_refusal(error: LowLevelError) -> web.Response:
    """A refusal of what aiohttp's parser or the header timer stopped before the app: the
    peer's plain code (a head never completed: TIMEOUT, retry later), closing the connection."""
    if error.status == 408:
        code = PeerErrorCode.TIMEOUT
    elif error.status >= 500:
        code = PeerErrorCode.INTERNAL_ERROR
    else:
        code = PeerErrorCode.BAD_REQUEST
    response = refusal(code)
    _add_security_headers(response)  # on_response_prepare does not run below the app
    response.force_close()
    return response


def _add_security_headers(response: web.StreamResponse) -> None:
    response.headers[hdrs.SERVER] = SERVER_HEADER
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"


async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    _add_security_headers(response)


# --- running it ---------------------------------------------------------------------------------


class PeerAccessLogger(AbstractAccessLogger):
    """Access log lines (:func:`gateway.logs.access`) with the route, status, time and the
    peer's body id (from its verified certificate): never its address's request line."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = "-"
        peer = None
        if isinstance(request, web.Request):
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "-"
            peer = request.get(PEER_BODY_ID)
        access("peer", request.method, route, response.status, time, peer=peer or "-")


class _PeerSite(web.TCPSite):
    """A TCPSite whose TLS handshakes time out after ``TLS_HANDSHAKE_TIMEOUT`` (asyncio: 60 s)."""

    def __init__(
        self,
        *args: object,
        handshake_timeout: float,
        sock: socket.socket | None = None,
        reuse_port: bool = False,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._handshake_timeout = handshake_timeout
        self._listening = sock
        self._share_port = reuse_port

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        # A socket bound by the parent of several worker processes (gateway serve --workers):
        # the kernel hands each connection to one of them.
        where: dict[str, Any] = (
            {"sock": self._listening}
            if self._listening is not None
            else {"host": self._host, "port": self._port, "reuse_port": self._share_port}
        )
        self._server = await asyncio.get_running_loop().create_server(
            server,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=self._handshake_timeout,
            **where,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]


@dataclass(frozen=True, slots=True)
class RunningPeerServer:
    """A started peer endpoint; :meth:`stop` it when done."""

    runner: web.AppRunner
    host: str
    port: int
    """The bound port (the free one picked when 0 was asked)."""

    @property
    def url(self) -> str:
        """Base URL, e.g. ``https://127.0.0.1:8443``."""
        return f"https://{self.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        """Client connections open on this server now."""
        server = self.runner.server
        return len(server.connections) if server is not None else 0

    async def stop(self) -> None:
        """Stop listening, let requests in flight finish briefly, close all connections."""
        await self.runner.cleanup()


SHUTDOWN_TIMEOUT = 5.0
"""On stop, requests in flight get this long to finish; peers retry whatever was cut."""


async def run_peer_server(
    app: web.Application,
    ssl_context: ssl.SSLContext,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT,
    keepalive_timeout: float = SERVER_KEEPALIVE_TIMEOUT,
    header_timeout: float = PEER_HEADER_TIMEOUT,
    sock: socket.socket | None = None,
    reuse_port: bool = False,
) -> RunningPeerServer:
    """Serve ``app`` over TLS with ``ssl_context`` (a server context, usually a
    :class:`~gateway.app.tls.ReloadableContext`) on ``host:port``; port 0 picks a free one.
    ``reuse_port``: bind with SO_REUSEPORT (gateway.config.PeerSection.reuse_port)."""
    if ssl_context.protocol != ssl.PROTOCOL_TLS_SERVER:
        raise ValueError("the peer endpoint needs a server-side context (tls.server_context)")
    if ssl_context.verify_mode != ssl.CERT_REQUIRED:
        raise ValueError("the peer endpoint needs a context that requires client certificates")
    # A connection that never finishes its request head (a slow client, or one whose
    # certificate is from a directory CA but names no body) is closed after header_timeout,
    # and errors of aiohttp's own parser get the peer protocol's plain codes.
    runner = GuardedAppRunner(
        app,
        settings=ServerSettings(header_timeout=header_timeout, keepalive_timeout=keepalive_timeout),
        error_response=_low_level_refusal,
        # Compressed bodies are refused (zip bombs); never inflate them.
        auto_decompress=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        access_log_class=PeerAccessLogger,
    )
    await runner.setup()
    site = _PeerSite(
        runner,
        host,
        port,
        ssl_context=ssl_context,
        handshake_timeout=handshake_timeout,
        sock=sock,
        reuse_port=reuse_port,
    )
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return RunningPeerServer(runner, host, site.port)

"""Limits of the peer transport: its timeouts, a token bucket per peer and the limits one
endpoint enforces. The sizes and rates a node accepts are in :mod:`gateway.model.limits` (the
node's configuration takes its defaults from there).

The token bucket is pure: it holds no clock and does no I/O. Callers pass ``now`` (seconds from
a monotonic clock); tests pin it. One bucket is kept per body id of the directory, so the number
of buckets is bounded by the directory's size (unknown peers are refused before they get one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gateway.model.limits import (
    BODY_BYTES_IN_FLIGHT,
    BODY_ROOM_WAIT,
    DEFAULT_MAX_ATTACHMENT_BYTES,
    DEFAULT_MAX_DELIVERY_BYTES,
    MAX_MESSAGE_BYTES,
    PEER_BURST,
    PEER_CONCURRENT_REQUESTS,
    PEER_RATE_PER_SECOND,
)

# --- times (seconds) ---------------------------------------------------------------------------

MIN_TRANSFER_BYTES_PER_SECOND = 1024 * 1024
"""Slowest transfer a delivery with attachments is allowed: its time limit (and the sender's
timeout) grows by its Content-Length at this rate above REQUEST_TIME_LIMIT, so 1 GiB may take
17 minutes more, while a small document keeps the plain limit."""


def time_limit_for(base: float, content_length: int | None) -> float:
    """The time a request of ``content_length`` bytes may take."""
    return base + (content_length or 0) / MIN_TRANSFER_BYTES_PER_SECOND


REQUEST_TIME_LIMIT = 60.0
"""Time from the request's headers to our answer: reading the body and the receive pipeline.
16 MiB over a slow inter-state link at ~0.5 MB/s takes ~30 s; signature checks take milliseconds.
Past it the peer gets a stable code and retries (receivers deduplicate by message id)."""

RETRY_AFTER_TIMEOUT = 60
"""Seconds a peer is told to wait after its request ran over REQUEST_TIME_LIMIT: the node is
slow right now; an immediate retry would add to the load."""

RETRY_AFTER_BUSY = 1
"""Seconds a peer is told to wait when it already has PEER_CONCURRENT_REQUESTS in flight: one of
them will be done by then."""

RETRY_AFTER_NO_ROOM = 5
"""Seconds a peer is told to wait when its request found no room in BODY_BYTES_IN_FLIGHT within
BODY_ROOM_WAIT: the node is busy with large bodies, and an immediate retry would join the line
again."""

PEER_HEADER_TIMEOUT = 10.0
"""Seconds a peer has, after its TLS handshake or between kept-alive requests once it starts
one, to send a complete request head; a head is a few hundred bytes, so 10 s covers the slowest
link, and a client that trickles bytes (or never sends any) cannot hold a connection for the
120 s of the keep-alive."""

TLS_HANDSHAKE_TIMEOUT = 10.0
"""A TLS handshake on loopback or a WAN takes well under a second; asyncio's default (60 s) would
let a client that never finishes its handshake hold a socket for a minute."""

SERVER_KEEPALIVE_TIMEOUT = 120.0
"""Idle time after which the server closes a peer's keep-alive connection. Keep-alive saves a
handshake (~1.3 ms server CPU, FACTS.md) per request; two minutes covers an outbox's polling gap."""

CLIENT_KEEPALIVE_TIMEOUT = 60.0
"""Idle time after which our client drops a pooled connection: shorter than the server's, so we
close first and never send on a connection the peer is closing at that moment."""

CLIENT_CONNECT_TIMEOUT = 10.0
"""TCP connect plus TLS handshake to a peer; a peer that needs longer is treated as down."""

CLIENT_TOTAL_TIMEOUT = 90.0
"""Whole POST from our side: longer than the peer's REQUEST_TIME_LIMIT, so a slow but working
peer answers with its own code before we give up."""

CLIENT_CONNECTIONS_PER_PEER = 16
"""Open connections to one peer at most: enough for parallel deliveries (requests are answered
in milliseconds, so 16 connections carry well over 1,000 requests/s), few enough that we never
look like a flood to the peer's own limits (PEER_CONCURRENT_REQUESTS)."""


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The answer of a token bucket to one request."""

    allowed: bool
    retry_after: float
    """Seconds until a request would be allowed; 0.0 when :attr:`allowed`."""

    @property
    def retry_after_header(self) -> str:
        """Whole seconds for the HTTP ``Retry-After`` header (at least 1 when refused)."""
        return "0" if self.allowed else str(max(1, math.ceil(self.retry_after)))


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """A token bucket's policy: ``rate`` tokens a second, at most ``capacity`` stored."""

    rate: float = PEER_RATE_PER_SECOND
    capacity: float = PEER_BURST

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.capacity < 1:
            raise ValueError("a token bucket needs rate > 0 and capacity >= 1")

    def full(self, now: float) -> BucketState:
        """A bucket that starts full at ``now``."""
        return BucketState(tokens=float(self.capacity), at=now)

    def take(self, state: BucketState, now: float) -> tuple[BucketState, RateDecision]:
        """Try to take one token at ``now``; return the new state and the decision.

        A clock that goes backwards adds no tokens (``now`` before ``state.at`` counts as no time).
        """
        elapsed = max(0.0, now - state.at)
        tokens = min(float(self.capacity), state.tokens + elapsed * self.rate)
        at = max(now, state.at)
        if tokens >= 1.0:
            return BucketState(tokens - 1.0, at), RateDecision(True, 0.0)
        return BucketState(tokens, at), RateDecision(False, (1.0 - tokens) / self.rate)


@dataclass(frozen=True, slots=True)
class BucketState:
    """Tokens left in one bucket and when they were counted."""

    tokens: float
    at: float
    """The ``now`` of the last update (monotonic seconds)."""


@dataclass(slots=True)
class PerPeerRateLimiter:
    """One :class:`TokenBucket` state per key (a peer's body id). One event loop only."""

    policy: TokenBucket = field(default_factory=TokenBucket)
    _states: dict[str, BucketState] = field(default_factory=dict)

    def check(self, key: str, now: float) -> RateDecision:
        """Take a token for ``key`` at ``now``."""
        state = self._states.get(key) or self.policy.full(now)
        self._states[key], decision = self.policy.take(state, now)
        return decision


@dataclass(frozen=True, slots=True)
class PeerLimits:
    """The limits one peer endpoint enforces; defaults are the named constants above."""

    max_message_bytes: int = MAX_MESSAGE_BYTES
    """The signed XML (the whole body of a delivery without attachments)."""
    max_delivery_bytes: int = DEFAULT_MAX_DELIVERY_BYTES
    """A delivery with attachments: XML and parts ([limits] max_message_bytes, published)."""
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    """One attachment part ([limits] max_attachment_bytes, published)."""
    rate: TokenBucket = field(default_factory=TokenBucket)
    max_concurrent_per_peer: int = PEER_CONCURRENT_REQUESTS
    request_time_limit: float = REQUEST_TIME_LIMIT
    bytes_in_flight: int = BODY_BYTES_IN_FLIGHT
    """Bytes of bodies held at once, all peers together (see BODY_BYTES_IN_FLIGHT)."""
    room_wait: float = BODY_ROOM_WAIT

    def __post_init__(self) -> None:
        if self.bytes_in_flight < self.max_message_bytes:
            raise ValueError(
                f"bytes_in_flight ({self.bytes_in_flight}) is below max_message_bytes "
                f"({self.max_message_bytes}): a full-size message could never be received"
            )

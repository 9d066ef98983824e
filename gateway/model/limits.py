"""The sizes and rates a node accepts from its peers: named constants.

They are the defaults of the node's ``[limits]`` configuration (:mod:`gateway.config`) and what
the peer transport enforces (:mod:`gateway.web.limits`); they live here, below both, so that the
configuration need not import the transport.
"""

from __future__ import annotations

# --- sizes -------------------------------------------------------------------------------------

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest envelope a peer may POST (16 MiB). A request with its documents is tens of kilobytes;
the rest of the room is for attachments (scans of enforcement documents, base64 inside the XML,
+33 %). The whole body is held in memory while its signatures are checked, so this bounds the
memory one request can take; BODY_BYTES_IN_FLIGHT bounds all of them together."""

BODY_BYTES_IN_FLIGHT = 24 * 1024 * 1024
"""Bytes of request bodies the peer endpoint holds at once, all peers together, from the moment a
body is read until its answer is ready ([limits] peer_bytes_in_flight in the node's
configuration). What a body costs while processed was measured on a 16 MiB signed envelope
that passes the parser (tests/integration/test_exchange_hostile_xml.py): ~1.3 times its size to
parse, ~10 times through signature verification (signxml's copies and re-parses). One
full-size message and 8 MiB of smaller ones, ~250 MB, beside a node's 140-230 MB at rest keep it
under 512 MB however many peers send at once; requests beyond it wait in line (BODY_ROOM_WAIT).
Must be at least MAX_MESSAGE_BYTES. Raise it with the memory the node may use."""

BODY_ROOM_WAIT = 20.0
"""Seconds a request waits in line for room in BODY_BYTES_IN_FLIGHT before it is refused with
503 BUSY: a full-size message takes ~2 s to verify on a loaded 2-core machine, so a line of
several is served within it; well inside REQUEST_TIME_LIMIT, so that the refusal comes while the
peer still listens."""

MAX_RESPONSE_BYTES = 1024 * 1024
"""Largest answer body a peer may return to our POST (1 MiB): the synchronous answer is a signed
receipt or rejection, a few kilobytes; answers with documents travel as messages of their own."""

# --- rates -------------------------------------------------------------------------------------

PEER_RATE_PER_SECOND = 2000.0
"""Sustained requests per second one peer body may make. A body in the directory must be able
to send at least 1,000 requests/s (a large body's case system flushing a day's backlog); 2,000/s
is twice that and still a fraction of what one core serves (~11,000 keep-alive requests/s,
FACTS.md), so no single peer can take the node. The receive work itself is bounded by
PEER_CONCURRENT_REQUESTS."""

PEER_BURST = 4000
"""Requests one peer may make at once above the sustained rate (the bucket's capacity): an outbox
flushing after a reconnect sends in bursts."""

PEER_CONCURRENT_REQUESTS = 32
"""Requests one peer body may have in flight at once: enough for the sender's delivery pipeline
(DELIVERIES_IN_FLIGHT over CLIENT_CONNECTIONS_PER_PEER kept-alive connections) to keep both
sides busy. Memory is bounded separately, by the bytes in flight across all peers."""

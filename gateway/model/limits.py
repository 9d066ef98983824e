"""The sizes and rates a node accepts: named constants, one home for all of them.

They are the defaults of the node's ``[limits]`` configuration (:mod:`gateway.config`), what the
peer transport enforces (:mod:`gateway.web.limits`), what the local API, the console and the
command line accept from the case system and the administrator, and the byte bound of the
hardened XML parser (:mod:`gateway.xml.parsing`, whose structural limits — depth, elements,
attributes — stay beside it). They live here, below every layer, so that each reads the same
number (docs/protocol.md, docs/transport.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.model.problems import Problem

# --- sizes -------------------------------------------------------------------------------------

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest signed XML envelope a peer may POST (16 MiB), and so the largest document a node
signs, encrypts to a recipient, stores and renders. Files travel beside the XML
(docs/attachments.md), bounded by DEFAULT_MAX_DELIVERY_BYTES / the published limits instead: a
request with its documents is tens of kilobytes (the largest example 7.5 KB). The value was
published to peers when attachments still travelled inline and is kept: a peer's node may send
up to it, and lowering it is a protocol change. The whole XML is held in memory while its
signatures are checked, so this bounds the memory one request can take; BODY_BYTES_IN_FLIGHT
bounds all of them together."""

MAX_DIRECTORY_BYTES = 8 * 1024 * 1024
"""Largest directory of bodies a node reads (8 MiB), from the depositary by any way in (the
command line, the console, the API). The CIS has a dozen states; with central and territorial
bodies (Russia alone has ~85 regional directorates of the FSSP) a few hundred bodies with four
certificates each (~2.7 KB of base64 apiece for RSA, ~0.9 KB for ECDSA) come to ~5 MB. The file
arrives from outside: it is bounded before parsing."""

MAX_XML_BYTES = max(MAX_MESSAGE_BYTES, MAX_DIRECTORY_BYTES)
"""Largest XML the hardened parser reads at all (16 MiB): the larger of a message and the
directory, the two largest XML documents a node takes in; refused before a byte is parsed."""

MAX_JSON_BYTES = MAX_MESSAGE_BYTES
"""Largest JSON document the case system may submit (16 MiB: the local API's body, a file given
to ``gateway documents convert``). The XML form of a document is larger than its JSON form
(closing tags, namespaces, signatures), so a bigger JSON could never be delivered. The whole
body is held in memory while it is converted, which bounds one request's memory."""

DEFAULT_MAX_DELIVERY_BYTES = 2 * 1024**3
"""Largest delivery a body accepts by default (2 GiB): the signed XML and every attachment part
together. Each body publishes its own in the directory (``<Limits><MaxMessageBytes>``);
senders refuse at submission what the recipient would refuse (docs/attachments.md)."""

DEFAULT_MAX_ATTACHMENT_BYTES = 2 * 1024**3
"""Largest single attachment a body accepts by default (2 GiB, ``<MaxAttachmentBytes>``).
Attachments stream through bounded memory, so these bound disk and time, not memory."""

BODY_BYTES_IN_FLIGHT = 24 * 1024 * 1024
"""Bytes of request bodies the peer endpoint holds at once, all peers together, from the moment a
body is read until its answer is ready ([limits] peer_bytes_in_flight in the node's
configuration). What a body costs while processed is measured by benchmarks/receive_memory.py on
a 16 MiB signed envelope padded with text, which passes the parser and is verified: the
receive's peak grows by ~4.1 times its size (66 MiB for 16 MiB, 2026-12-06; ~10 times while
signxml verified, which this budget was sized by). So 24 MiB of bodies, ~100 MB at most, beside
a node's 140-230 MB at rest keep it under 512 MB however many peers send at once
(tests/integration/test_exchange_hostile_xml.py); requests beyond it wait in line
(BODY_ROOM_WAIT). Must be at least MAX_MESSAGE_BYTES. Raise it with the memory the node may
use."""

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

# --- one delivery ------------------------------------------------------------------------------

DELIVERY_FRAMING_BYTES = 64 * 1024
"""Room a receiver allows above the published MaxMessageBytes for the multipart framing of a
delivery (boundaries and part headers: under 200 bytes a part, at most 51 parts)."""


def delivery_problems(
    recipient: str,
    xml_bytes: int,
    part_sizes: Sequence[int],
    *,
    max_xml_bytes: int,
    max_message_bytes: int,
    max_attachment_bytes: int,
    wire_sizes: Sequence[int] | None = None,
) -> list[Problem]:
    """What the recipient would refuse about a delivery's sizes: the one check the sender runs
    at submission and the receiver at its door (with its own limits), so both agree.
    ``part_sizes``: each file's own size, judged against MaxAttachmentBytes (the receiver
    allows a sealed part its tags); ``wire_sizes``: what each takes on the wire (a sealed
    part's records), judged in the total against MaxMessageBytes as the door counts bytes;
    default the files' sizes."""
    problems = []
    if xml_bytes > max_xml_bytes:
        problems.append(
            Problem(
                code="MESSAGE_TOO_LARGE",
                path="/Envelope",
                message_ru=f"Подписанный документ занимает {xml_bytes} байт, а узлы принимают "
                f"не больше {max_xml_bytes} байт: получатель его не примет.",
                message_en=f"the signed document is {xml_bytes} bytes; peers accept at most "
                f"{max_xml_bytes}",
                remedy_ru="Передайте большие файлы вложениями рядом с документом "
                "(POST /api/v1/attachments, docs/attachments.md), а не внутри XML.",
            )
        )
    for number, size in enumerate(part_sizes, start=1):
        if size > max_attachment_bytes:
            problems.append(
                Problem(
                    code="ATTACHMENT_TOO_LARGE",
                    path=f"/Envelope/Header/Attachments/Attachment[{number}]/Size",
                    message_ru=f"Вложение № {number} занимает {size} байт, а {recipient} "
                    f"принимает вложения не больше {max_attachment_bytes} байт "
                    "(справочник органов, Limits/MaxAttachmentBytes).",
                    message_en=f"attachment {number} is {size} bytes; {recipient} publishes "
                    f"MaxAttachmentBytes = {max_attachment_bytes}",
                    remedy_ru="Разделите файл или отправьте его несколькими документами.",
                )
            )
    total = xml_bytes + sum(part_sizes if wire_sizes is None else wire_sizes)
    if total > max_message_bytes:
        problems.append(
            Problem(
                code="MESSAGE_TOO_LARGE",
                path="/Envelope/Header/Attachments",
                message_ru=f"Документ с вложениями занимает {total} байт, а {recipient} "
                f"принимает не больше {max_message_bytes} байт "
                "(справочник органов, Limits/MaxMessageBytes).",
                message_en=f"the delivery is {total} bytes; {recipient} publishes "
                f"MaxMessageBytes = {max_message_bytes}",
                remedy_ru="Разделите вложения между несколькими документами переписки.",
            )
        )
    return problems

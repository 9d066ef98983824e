"""Comments, processing instructions and memory-hungry XML at a running node's peer endpoint.

1. A comment or processing instruction anywhere in a signed document — in the header, in the
   body, inside signed text, after the root — is refused with its code (``XML_COMMENT``,
   ``XML_PROCESSING_INSTRUCTION``) before any verification, and nothing is stored. Canonical XML
   without comments ignores a comment, so a document signed and then given a comment inside a
   text node still has a valid signature: the parser is what refuses it. KZ-MJ runs in the
   test (a :class:`~gateway.web.runtime.NodeRuntime`), on SQLite and on PostgreSQL; RU-FSSP's
   real keys sign and its TLS identity posts over mutual TLS.

2. Eight hostile 16 MiB requests in flight at once against a ``gateway serve`` process keep its
   peak resident memory (``VmHWM`` of ``/proc/<pid>/status``: the kernel's high-water mark of the
   server process itself, libxml2's trees included) under 512 MiB, and the node then accepts a
   normal document.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from lxml import etree

from gateway.demo.setup import DemoWorld
from gateway.model.limits import MAX_MESSAGE_BYTES
from gateway.web.peer_client import PeerClient, PeerResponse, messages_url
from tests.integration.exchange_world import (
    Receiver,
    Signer,
    audit_rows,
    body_fields,
    header_field,
    node_config,
    post,
    receiving,
    row_counts,
    serving,
    tls_client,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

RECEIVER = "KZ-MJ"
SENDER = "RU-FSSP"
REQUEST = "cis-enforcement.Request"
SIGNED_TEXT = b"184512/26/77039"
"""The proceeding's number in the example request: text the official and the seal sign."""

MEMORY_CEILING = 512 * 1024 * 1024
"""What eight hostile full-size requests at once may take the node to, in all."""


def now() -> datetime:
    return datetime.now(UTC)


def refusal_code(answer: PeerResponse) -> str:
    """The code of a refusal: a plain-text code (400) or a signed Rejection's (422)."""
    if answer.status == 422:
        return body_fields(answer.body)["Code"]
    assert answer.status == 400, (answer.status, answer.body[:200])
    return answer.body.decode().strip()


# --- 1. comments and processing instructions ---


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def receiver(request: pytest.FixtureRequest, world: DemoWorld) -> AsyncIterator[Receiver]:
    async with receiving(request, world, "hostile", console=False) as running:
        yield running


Placing = Callable[[bytes], bytes]


def _after(marker: bytes, insert: bytes) -> Placing:
    def place(document: bytes) -> bytes:
        assert document.count(marker) == 1, marker
        return document.replace(marker, marker + insert)

    return place


def _inside_signed_text(insert: bytes) -> Placing:
    def place(document: bytes) -> bytes:
        assert document.count(SIGNED_TEXT) == 1
        return document.replace(SIGNED_TEXT, SIGNED_TEXT[:10] + insert + SIGNED_TEXT[10:])

    return place


def _after_root(insert: bytes) -> Placing:
    return lambda document: document + b"\n" + insert


PLACES: dict[str, Callable[[bytes], Placing]] = {
    "header": lambda insert: _after(b'<env:Header Id="header">', insert),
    "body": lambda insert: _after(b'<env:Body Id="body">', insert),
    "signed-text": _inside_signed_text,
    "after-root": _after_root,
}
MARKUP = {
    "XML_COMMENT": b"<!-- a note the signature does not cover -->",
    "XML_PROCESSING_INSTRUCTION": b'<?xml-stylesheet href="https://attacker.example/x.xsl"?>',
}


@pytest.mark.parametrize("code", MARKUP)
@pytest.mark.parametrize("place", PLACES)
async def test_comment_or_instruction_in_a_signed_document_is_refused_and_nothing_stored(
    receiver: Receiver, sender: Signer, sender_client: PeerClient, place: str, code: str
) -> None:
    signed = sender.document(REQUEST, now(), Recipient=RECEIVER)
    hostile = PLACES[place](MARKUP[code])(signed)
    if code == "XML_COMMENT":
        # What makes it dangerous: canonical XML without comments (what every signature here
        # covers) does not see the comment, so the signatures would still verify.
        assert _exclusive_c14n(hostile) == _exclusive_c14n(signed)
    before = row_counts(receiver.node.store)
    audited = len(audit_rows(receiver.node.store, "message.rejected"))

    answer = await post(sender_client, receiver.url, hostile)

    assert refusal_code(answer) == code
    assert row_counts(receiver.node.store) == before
    rejected = audit_rows(receiver.node.store, "message.rejected")[audited:]
    assert [r["details"]["code"] for r in rejected] == [code]
    # The same document without the insertion is accepted: the refusal was for that alone.
    assert (await post(sender_client, receiver.url, signed)).status == 200


def _exclusive_c14n(document: bytes) -> bytes:
    """The canonical form a signature covers, from a plain (trusting) parse: test-side only."""
    root = etree.fromstring(document, etree.XMLParser(resolve_entities=False))
    return etree.tostring(root, method="c14n", exclusive=True, with_comments=False)


# --- 2. eight hostile 16 MiB requests at once against a node process ---

SIZE = MAX_MESSAGE_BYTES - 1024
"""Just under the largest body the peer endpoint reads: each request is read and parsed."""


def _comments() -> bytes:
    return b"<a>" + b"<!---->" * ((SIZE - 8) // 7) + b"</a>"


def _crowded_tag() -> bytes:
    return b"<a" + b"".join(b" a%x=''" % i for i in range(SIZE // 12)) + b"/>"


def _attributes_everywhere() -> bytes:
    element = b"<b" + b"".join(b" a%x=''" % i for i in range(32)) + b"/>"
    return b"<a>" + element * (SIZE // len(element) - 1) + b"</a>"


def _huge_attribute() -> bytes:
    return b"<a x='" + b"y" * 9_900_000 + b"'/>"


def _text_in_a_signed_envelope(signed: bytes) -> bytes:
    """A real signed request whose body text was padded to 16 MiB (in many elements, each under
    libxml2's 10 MB text cap): it passes the parser, so the node verifies it."""
    marker = b'<env:Body Id="body">'
    filler = b"<pad>" + b"x" * 1600 + b"</pad>"  # 10,000 elements: under MAX_ELEMENTS
    count = (SIZE - len(signed)) // len(filler)
    return signed.replace(marker, marker + filler * count)


def _one_huge_text() -> bytes:
    return b"<a>" + b"x" * (SIZE - 8) + b"</a>"


def _vm(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {
        key: int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) * 1024
        for key in ("VmRSS", "VmHWM")
    }


async def test_eight_hostile_16_mib_requests_at_once_keep_the_node_under_512_mib(
    world: DemoWorld, sender: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = node_config(world, RECEIVER, "hostile-memory", peer_port=0)
    signed = sender.document(REQUEST, now(), Recipient=RECEIVER)
    hostile = [
        (_comments(), "XML_COMMENT"),
        (_comments(), "XML_COMMENT"),
        (_crowded_tag(), "XML_TOO_MANY_ATTRIBUTES_ON_ELEMENT"),
        (_attributes_everywhere(), "XML_TOO_MANY_ATTRIBUTES"),
        (_huge_attribute(), "XML_ATTRIBUTES_TOO_LARGE"),
        (_text_in_a_signed_envelope(signed), "SIGNATURE_HASH_FAILURE"),
        (_text_in_a_signed_envelope(signed), "SIGNATURE_HASH_FAILURE"),
        (_one_huge_text(), "XML_TOO_LARGE"),
    ]
    payloads = [payload for payload, _ in hostile]
    assert all(len(p) <= MAX_MESSAGE_BYTES for p in payloads)
    with serving(config) as serve:
        port = re.search(r"peer https://[\d.]+:(\d+)", serve.output())
        assert port is not None, serve.output()
        url = messages_url(f"https://127.0.0.1:{port.group(1)}")
        pid = serve.process.pid
        at_rest = _vm(pid)
        client_tls = tls_client(world.nodes[SENDER].config_path.parent / "keys", world)
        async with PeerClient(client_tls) as client:
            answers = await asyncio.gather(*(post(client, url, p) for p in payloads))
            peak = _vm(pid)["VmHWM"]
            normal = await post(client, url, signed)
        assert serve.process.poll() is None, serve.output()
    with capsys.disabled():
        print(
            f"\nnode at rest {at_rest['VmRSS'] / 2**20:.0f} MiB, peak with eight hostile 16 MiB "
            f"requests {peak / 2**20:.0f} MiB; answers {[a.status for a in answers]}"
        )
    # Each refused (400 code / 422 signed Rejection), or told to come back (503 BUSY): never
    # accepted, never our fault.
    statuses = [a.status for a in answers]
    assert set(statuses) <= {400, 422, 503}, [(a.status, a.body[:100]) for a in answers]
    got = [refusal_code(a) if a.status != 503 else a.body.decode().strip() for a in answers]
    expected = [code for _, code in hostile]
    assert all(g in (e, "BUSY") for g, e in zip(got, expected, strict=True)), got
    assert peak < MEMORY_CEILING, f"peak {peak / 2**20:.0f} MiB"
    assert normal.status == 200, normal.body[:300]
    assert header_field(normal.body, "Kind") == "Receipt"

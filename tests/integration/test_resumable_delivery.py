"""A delivery with attachments that breaks off goes on from what the peer holds
(docs/attachments.md, "Resumable deliveries"), on real nodes over mutual TLS, on SQLite and on
PostgreSQL.

KZ-MJ receives in this process on a port of its own; a TCP relay listens on the port the
directory lists for it and forwards to it, cutting the first connection after a set number of
bytes — the link dropping mid-file, as seen by both ends:

* RU-FSSP's node (a second :class:`NodeRuntime`) delivers a document with a 6 MB file; the
  relay cuts it after 2.5 MB; KZ-MJ holds the whole segments that came; the retry asks how much
  is held and sends only the rest; the file is stored byte for byte and nothing stays held;
* a resumed part whose bytes are not the signed file is refused (ATTACHMENT_MISMATCH) and what
  was held goes with it;
* what is held for one peer is no other's: another body's question gets 404 and its resumed
  part 416; the case system's API neither shows it nor lets a submission name it;
* a part resuming where nothing is held gets 416 PART_OFFSET_MISMATCH, a malformed claim 400;
* a peer whose deliveries keep breaking off holds at most one delivery's worth of bytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa

from gateway.config import NodeConfig
from gateway.crypto import segments
from gateway.demo.setup import DemoWorld
from gateway.exchange.attachments import HeldClaim, held_offset, sealed_claim, stage_stream
from gateway.exchange.node import Node
from gateway.store import attachments as attachment_store
from gateway.store.attachments import AttachmentMeta
from gateway.store.tables import attachment_segments, attachments, outbox
from gateway.web.peer_client import PartPayload, PeerClient, PeerTransportError
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import (
    Sealing,
    Signer,
    attachment_list,
    body_fields,
    create_token,
    hand_sealed,
    header_field,
    limit_attachments,
    node_config,
    padded_request,
    tls_client,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

RECEIVER = "KZ-MJ"
SENDER = "RU-FSSP"
LIMIT = 8_000_000
"""The receiver's [limits] max_message_bytes and max_attachment_bytes here."""
FILE = secrets.token_bytes(6_000_000)
CUT_AFTER = 2_500_000
"""Bytes of the first connection the relay lets through before it drops the link."""


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Relay:
    """A TCP relay from the directory's port for KZ-MJ to where it really listens."""

    target: int
    cut_after: int | None = None
    """Cut the next connection after this many bytes towards the receiver (once)."""
    upstream: list[int] = field(default_factory=list)
    """Bytes sent towards the receiver, per connection."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cut, self.cut_after = self.cut_after, None
        index = len(self.upstream)
        self.upstream.append(0)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, count: bool) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    if count:
                        if cut is not None and self.upstream[index] + len(data) > cut:
                            data = data[: cut - self.upstream[index]]
                            dst.write(data)
                            await dst.drain()  # the bytes before the cut all go through
                            self.upstream[index] += len(data)
                            break
                        self.upstream[index] += len(data)
                    dst.write(data)
                    await dst.drain()
            # Either way ends both connections: a cut link is gone for both ends.
            for end in (writer, up_writer):
                end.transport.abort() if cut is not None else end.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))


@dataclass
class Pair:
    receiver: NodeRuntime
    sender: NodeRuntime
    relay: Relay
    url: str
    """KZ-MJ's message endpoint as the directory lists it (through the relay)."""

    @property
    def node(self) -> Node:
        return self.receiver.node


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def pair(request: pytest.FixtureRequest, world: DemoWorld) -> AsyncIterator[Pair]:
    urls = {"sqlite": "", "postgresql": ""}
    if request.param == "postgresql":
        urls = {
            body: request.getfixturevalue("pg_schema")(f"resume{body.lower()}") for body in "RK"
        }
    tag = f"resume-{request.param}"
    receiver_config = node_config(world, RECEIVER, tag, database_url=urls.get("K", ""), peer_port=0)
    limit_attachments(receiver_config, LIMIT)
    sender_config = node_config(world, SENDER, tag, database_url=urls.get("R", ""))
    receiver = NodeRuntime(Node.from_config(NodeConfig.from_toml(receiver_config)))
    await receiver.start(deliver=False, console=False)
    relay = Relay(receiver.peer_port)
    listed = world.nodes[RECEIVER].peer_port
    server = await asyncio.start_server(relay.handle, "127.0.0.1", listed, reuse_port=True)
    sender = NodeRuntime(Node.from_config(NodeConfig.from_toml(sender_config)))
    await sender.start(deliver=False, console=False)
    try:
        yield Pair(receiver, sender, relay, f"https://127.0.0.1:{listed}/exchange/v1/messages")
    finally:
        await sender.stop()
        server.close()
        await server.wait_closed()
        await receiver.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stranger_client(world: DemoWorld) -> AsyncIterator[PeerClient]:
    """RU-VS's TLS identity: a body of the directory, not the sender of the deliveries."""
    keys = world.nodes["RU-VS"].config_path.parent / "keys"
    async with PeerClient(tls_client(keys, world)) as client:
        yield client


def _claim(content: bytes, peer: str = SENDER) -> HeldClaim:
    return HeldClaim(peer, len(content), hashlib.sha256(content).digest())


def _held_rows(node: Node, claim: HeldClaim | None = None) -> list[Any]:
    """The attachments held for a peer (``claim``: those it names only)."""
    held = sa.select(attachments).where(attachments.c.held_for.is_not(None))
    if claim is not None:
        held = held.where(attachments.c.claimed_sha256 == claim.sha256)
    with node.store.read() as conn:
        return conn.execute(held).all()


def _resumed_bytes(runtime: NodeRuntime) -> float:
    """``gateway_delivery_bytes_resumed_total{peer="KZ-MJ"}`` of the sender's /metrics."""
    for line in runtime.metrics.exposition().decode().splitlines():
        if line.startswith(f'gateway_delivery_bytes_resumed_total{{peer="{RECEIVER}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _until_held(node: Node, claim: HeldClaim) -> int:
    """What the receiver holds of ``claim`` once it has noticed the broken connection and
    stored the last of what came (the same for three looks in a row)."""
    seen: list[int | None] = []
    for _ in range(100):
        seen.append(held_offset(node.store, claim))
        if seen[-1] and seen[-3:] == [seen[-1]] * 3:
            return seen[-1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"the part held never settled: {seen}")


def _request(sender: Signer, content: bytes) -> bytes:
    """A request from ``sender`` listing ``content`` as its one attachment, signed."""
    listed = attachment_list(content, "скан дела.pdf")
    return sender.document("cis-enforcement.Request", now(), Attachments=listed)


async def _chunks(content: bytes, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for at in range(0, len(content), 100_000):
        if fail_after is not None and at >= fail_after:
            raise ConnectionAbortedError("the link went (test)")
        yield content[at : at + 100_000]


def _part(content: bytes, offset: int = 0, *, whole: bytes | None = None) -> PartPayload:
    """``content[offset:]`` as a part declaring ``whole`` (default: ``content``) entire."""
    declared = content if whole is None else whole
    return PartPayload(
        _chunks(content[offset:]),
        len(content) - offset,
        whole=(len(declared), hashlib.sha256(declared).digest()),
        offset=offset,
    )


async def _post(client: PeerClient, url: str, envelope: bytes, part: PartPayload) -> Any:
    try:
        return await client.post_message(url, envelope, [part])
    except PeerTransportError as error:
        assert error.response is not None, error
        return error.response


async def _break_off(client: PeerClient, url: str, envelope: bytes, content: bytes) -> None:
    """A delivery of ``content`` whose connection goes after 2 MB of the part."""
    part = PartPayload(
        _chunks(content, fail_after=2_000_000),
        len(content),
        whole=(len(content), hashlib.sha256(content).digest()),
    )
    with pytest.raises(PeerTransportError):
        await client.post_message(url, envelope, [part])


def _stored(node: Node, message_id: str) -> bytes:
    with node.store.read() as conn:
        (info,) = attachment_store.for_message(conn, message_id, node.kek_ring)
        reader = attachment_store.reader(conn, info.attachment_id, node.kek_ring)
    return b"".join(attachment_store.stream(node.store.read, reader))


@pytest.mark.parametrize("confidential", [False, True], ids=["plain", "sealed"])
async def test_a_delivery_broken_off_goes_on_from_what_the_peer_holds(
    pair: Pair, confidential: bool
) -> None:
    """``sealed``: a confidential conversation's file travels as the sender's sealed records;
    they are held as they came and named by the sealing, and the retry's document must open
    them (the receiver feeds every held record to its opener again)."""
    node = pair.sender.node
    staged = await stage_stream(
        node.store,
        node.kek_ring,
        AttachmentMeta("скан дела.pdf", "application/pdf"),
        _chunks(FILE),
        limit=LIMIT,
        now=now(),
    )
    document = padded_request() | {"attachments": [staged.attachment_id]}
    document["header"] = {**document["header"], "Confidential": confidential}
    header, _ = node.submit(document, actor="operator-test")
    length = segments.sealed_size(len(FILE)) if confidential else len(FILE)
    claim = sealed_claim(SENDER, staged.attachment_id, length) if confidential else _claim(FILE)
    assert pair.sender.client is not None
    await pair.sender.client.drop_connections()  # the delivery opens the connection cut
    connections = len(pair.relay.upstream)
    resumed_before = _resumed_bytes(pair.sender)
    pair.relay.cut_after = CUT_AFTER
    assert await pair.sender.deliver_once() == 1
    with node.store.read() as conn:
        row = conn.execute(sa.select(outbox).where(outbox.c.message_id == header.message_id)).one()
    assert (row.state, row.attempts) == ("pending", 1), row  # the link went: to be retried

    held = await _until_held(pair.node, claim)
    assert held % claim.unit == 0 and 0 < held < CUT_AFTER
    with node.store.transaction() as conn:  # due now rather than after its back-off
        conn.execute(
            outbox.update()
            .where(outbox.c.message_id == header.message_id)
            .values(next_attempt_at=now())
        )
    assert await pair.sender.deliver_once() == 1
    with node.store.read() as conn:
        row = conn.execute(sa.select(outbox).where(outbox.c.message_id == header.message_id)).one()
    assert row.state == "delivered", row
    assert _stored(pair.node, header.message_id) == FILE
    assert _resumed_bytes(pair.sender) == resumed_before + held  # counted for the operator
    # The retry asked, then sent only what was missing (and the XML, the framing, TLS).
    resumed = sum(pair.relay.upstream[connections + 1 :])
    assert length - held < resumed < length - held + 200_000, (held, pair.relay.upstream)
    assert _held_rows(pair.node, claim) == []


async def _broken_delivery(
    pair: Pair, sender: Signer, client: PeerClient, content: bytes
) -> tuple[bytes, int]:
    envelope = _request(sender, content)
    await _break_off(client, pair.url, envelope, content)
    return envelope, await _until_held(pair.node, _claim(content))


async def test_a_resumed_part_is_checked_whole_against_the_signed_list(
    pair: Pair, sender: Signer, sender_client: PeerClient
) -> None:
    content = secrets.token_bytes(3_000_000)
    envelope, held = await _broken_delivery(pair, sender, sender_client, content)
    altered = content[:held] + bytes(b ^ 0x5A for b in content[held:])
    answer = await _post(sender_client, pair.url, envelope, _part(altered, held, whole=content))
    assert answer.status == 422 and body_fields(answer.body)["Code"] == "ATTACHMENT_MISMATCH"
    assert _held_rows(pair.node, _claim(content)) == []  # gone with the refused delivery
    # Sent again whole (the retry finds nothing held), it is accepted.
    assert held_offset(pair.node.store, _claim(content)) is None
    answer = await _post(sender_client, pair.url, envelope, _part(content))
    assert answer.status == 200, answer.body[:300]
    assert _stored(pair.node, header_field(envelope, "MessageId")) == content


async def test_what_is_held_for_one_peer_is_no_one_elses(
    pair: Pair, sender: Signer, sender_client: PeerClient, stranger_client: PeerClient
) -> None:
    content = secrets.token_bytes(3_000_000)
    envelope, held = await _broken_delivery(pair, sender, sender_client, content)
    sha = hashlib.sha256(content).digest()
    assert await sender_client.held_offset(pair.url, sha, len(content)) == held
    assert await stranger_client.held_offset(pair.url, sha, len(content)) == 0
    async with aiohttp.ClientSession() as http:
        url = pair.url.replace("messages", f"parts/{sha.hex()}") + f"?length={len(content)}"
        with pytest.raises(aiohttp.ClientError):  # no client certificate: no TLS at all
            await http.get(url, ssl=False)
    # RU-VS resuming RU-FSSP's part: it holds nothing there (refused before any verification).
    answer = await _post(stranger_client, pair.url, envelope, _part(content, held))
    assert answer.status == 416 and answer.body == b"PART_OFFSET_MISMATCH\n"
    # The case system's API sees no held part and cannot send it as its own.
    (row,) = _held_rows(pair.node, _claim(content))
    token = create_token(pair.node.store, now())
    api = f"http://127.0.0.1:{pair.receiver.api_port}/api/v1"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{api}/attachments/{row.attachment_id}") as response:
            assert response.status == 404
        patch = {"Upload-Offset": str(held)}
        async with http.patch(
            f"{api}/attachments/{row.attachment_id}", data=b"x", headers=patch
        ) as response:
            assert response.status == 404
    with pair.node.store.read() as conn, pytest.raises(attachment_store.AttachmentNotFound):
        attachment_store.staged(conn, [row.attachment_id], pair.node.kek_ring)
    answer = await _post(sender_client, pair.url, envelope, _part(content, held))
    assert answer.status == 200, answer.body[:300]
    assert _stored(pair.node, header_field(envelope, "MessageId")) == content


async def test_a_part_resuming_where_nothing_is_held_is_refused_by_name(
    pair: Pair, sender: Signer, sender_client: PeerClient
) -> None:
    content = secrets.token_bytes(1_000_000)
    envelope = _request(sender, content)
    before = _held_rows(pair.node)
    answer = await _post(sender_client, pair.url, envelope, _part(content, 65536))
    assert answer.status == 416 and answer.body == b"PART_OFFSET_MISMATCH\n"
    sha = base64.b64encode(hashlib.sha256(content).digest()).decode()
    malformed = [
        {"Upload-Length": str(len(content))},  # no digest
        {"Upload-Length": "-1", "Repr-Digest": f"sha-256=:{sha}:"},
        {"Upload-Length": "10", "Upload-Offset": "11", "Repr-Digest": f"sha-256=:{sha}:"},
        {"Upload-Length": str(len(content)), "Repr-Digest": "sha-256=:AAAA:"},
    ]
    for headers in malformed:
        part = PartPayload(_chunks(content), len(content))
        part.headers.update(headers)
        answer = await _post(sender_client, pair.url, envelope, part)
        assert answer.status == 400, (headers, answer.body)
    # A declared length over the limit: 413 before a byte of the part is read.
    part = PartPayload(_chunks(content), len(content))
    part.headers.update({"Upload-Length": str(LIMIT + 1), "Repr-Digest": f"sha-256=:{sha}:"})
    assert (await _post(sender_client, pair.url, envelope, part)).status == 413
    assert _held_rows(pair.node) == before


async def test_a_peer_holds_at_most_one_deliverys_worth(
    pair: Pair, sender: Signer, sender_client: PeerClient
) -> None:
    files = [secrets.token_bytes(3_000_000) for _ in range(5)]
    for content in files:
        await _broken_delivery(pair, sender, sender_client, content)
    rows = _held_rows(pair.node)
    held = {content: held_offset(pair.node.store, _claim(content)) or 0 for content in files}
    assert sum(held.values()) <= LIMIT, held
    assert held[files[-1]] > 0  # the latest is kept, the oldest went first
    assert held[files[0]] == 0 and len(rows) < len(files)


def _sealed_part(sealed: bytes, offset: int = 0, fail_after: int | None = None) -> PartPayload:
    return PartPayload(
        _chunks(sealed[offset:], fail_after),
        len(sealed) - offset,
        whole=(len(sealed), None),
        offset=offset,
    )


async def test_a_sealed_part_resumed_under_another_key_is_refused(
    pair: Pair, sender: Signer, sender_client: PeerClient
) -> None:
    """The held records were sealed under the first document's part key; a document claiming
    the same sealing's id with another key cannot take them on: the records it brings open,
    the held ones do not, and the part is refused as any sealed part that does not open.
    What was held goes with it; the first document, sent again whole, is accepted."""
    content = secrets.token_bytes(3_000_000)
    first = Sealing.new()
    envelope, _, signed = hand_sealed(pair.node, sender, first, content)
    sealed = first.seal(content)
    with pytest.raises(PeerTransportError):
        await sender_client.post_message(
            pair.url, envelope, [_sealed_part(sealed, fail_after=2_000_000)]
        )
    claim = sealed_claim(SENDER, first.sealed_as, len(sealed))
    held = await _until_held(pair.node, claim)
    assert held % segments.RECORD_BYTES == 0
    other = Sealing(segments.new_part_key(), first.prefix, first.sealed_as)
    forged, _, _ = hand_sealed(pair.node, sender, other, content)
    answer = await _post(sender_client, pair.url, forged, _sealed_part(other.seal(content), held))
    assert answer.status == 422, answer.body[:300]
    assert body_fields(answer.body)["Code"] == "ATTACHMENT_MISMATCH"
    assert held_offset(pair.node.store, claim) is None  # what was held went with it
    answer = await _post(sender_client, pair.url, envelope, _sealed_part(sealed))
    assert answer.status == 200, answer.body[:300]
    assert _stored(pair.node, header_field(signed, "MessageId")) == content


async def test_a_held_part_that_no_longer_reads_back_is_dropped_and_sent_whole(
    pair: Pair, sender: Signer, sender_client: PeerClient
) -> None:
    """One held segment altered in the store: reading it back for the retry fails its tag, so
    the retry is refused as holding nothing there (416) and the held bytes go; the part sent
    whole is accepted."""
    content = secrets.token_bytes(3_000_000)
    envelope, held = await _broken_delivery(pair, sender, sender_client, content)
    (row,) = _held_rows(pair.node, _claim(content))
    third = sa.and_(
        attachment_segments.c.attachment_id == row.attachment_id,
        attachment_segments.c.segment_no == 3,
    )
    with pair.node.store.transaction() as conn:
        stored = conn.execute(sa.select(attachment_segments.c.ciphertext).where(third)).scalar_one()
        altered = bytes([stored[0] ^ 0x01]) + stored[1:]
        conn.execute(attachment_segments.update().where(third).values(ciphertext=altered))
    answer = await _post(sender_client, pair.url, envelope, _part(content, held))
    assert answer.status == 416 and answer.body == b"PART_OFFSET_MISMATCH\n"
    assert _held_rows(pair.node, _claim(content)) == []
    answer = await _post(sender_client, pair.url, envelope, _part(content))
    assert answer.status == 200, answer.body[:300]
    assert _stored(pair.node, header_field(envelope, "MessageId")) == content

"""A delivery too large for its recipient is refused at submission, not retried until the dead
letter.

Issue finding (#17): a 20 MB document was accepted with 202, then refused by the peer with 413 on
every delivery attempt until it was dead-lettered, and the case system learnt nothing. Now the
submission itself is refused, naming the size and the recipient's published limit, and nothing
is stored or queued. Files travel beside the XML (none inside it), so what can grow past a
limit is the files: each within MaxAttachmentBytes, together over MaxMessageBytes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from gateway.exchange.attachments import stage_stream
from gateway.exchange.directory import DirectoryIndex
from gateway.exchange.sending import MAX_SUBMITTED_BYTES
from gateway.model.limits import MAX_MESSAGE_BYTES
from gateway.model.problems import DocumentRejected
from gateway.store.attachments import AttachmentMeta
from tests.integration.exchange_world import node_on_store, padded_request, row_counts

SCAN_BYTES = 3_000_000
LIMIT = 5_000_000
"""KZ-MJ's published MaxMessageBytes here: two scans (6 MB) overflow it, one does not."""


async def _chunks(content: bytes) -> AsyncIterator[bytes]:
    yield content


@pytest.fixture(params=["sqlite", "postgresql"])
def node(request: pytest.FixtureRequest, world):
    with node_on_store(request, world, "RU-FSSP", "oversized") as node:
        directory = node.index.directory
        bodies = tuple(
            dataclasses.replace(b, max_message_bytes=LIMIT) if b.id == "KZ-MJ" else b
            for b in directory.bodies
        )
        node.index = DirectoryIndex.of(dataclasses.replace(directory, bodies=bodies))
        yield node


async def test_a_delivery_over_the_recipients_limit_is_refused_at_submission(node) -> None:
    scans = []
    for number in (1, 2):
        staged = await stage_stream(
            node.store,
            node.kek_ring,
            AttachmentMeta(f"scan-{number}.pdf", "application/pdf"),
            _chunks(os.urandom(SCAN_BYTES)),
            limit=SCAN_BYTES,
            now=datetime.now(UTC),
        )
        scans.append(staged.attachment_id)
    before = row_counts(node.store)
    with pytest.raises(DocumentRejected) as refused:
        node.submit(padded_request() | {"attachments": scans}, actor="test")
    (problem,) = refused.value.problems
    assert problem.code == "MESSAGE_TOO_LARGE"
    assert "KZ-MJ" in problem.message_en and f"MaxMessageBytes = {LIMIT}" in problem.message_en
    assert problem.path == "/Envelope/Header/Attachments"
    assert row_counts(node.store) == before  # nothing stored, nothing queued
    # One of them goes: the uploads stayed unsent, to be named again.
    accepted, _ = node.submit(padded_request() | {"attachments": scans[:1]}, actor="test")
    assert [a.size for a in accepted.attachments] == [SCAN_BYTES]


def test_the_submission_limit_leaves_room_for_encryption_under_the_peer_limit() -> None:
    assert 0 < MAX_MESSAGE_BYTES - MAX_SUBMITTED_BYTES <= 64 * 1024

"""A document too large for any peer is refused at submission, not retried until the dead letter.

Issue finding (#17): a 20 MB document was accepted with 202, then refused by the peer with 413 on
every delivery attempt until it was dead-lettered, and the case system learnt nothing. Now the
submission itself is refused, naming the size and the limit, and nothing is stored or queued.
"""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from gateway.config import NodeConfig
from gateway.exchange.node import Node
from gateway.exchange.sending import MAX_SUBMITTED_BYTES
from gateway.model.limits import MAX_MESSAGE_BYTES
from gateway.model.problems import DocumentRejected
from tests.integration.exchange_world import node_config, padded_request, row_counts

ATTACHMENT_BYTES = 4_500_000
"""Each under the schema's 7,000,000; four of them (24 MB of base64) overflow the 16 MiB."""


def _attachment(index: int) -> dict[str, object]:
    content = os.urandom(ATTACHMENT_BYTES)
    return {
        "Title": f"Скан {index}",
        "MediaType": "application/pdf",
        "FileName": f"scan-{index}.pdf",
        "Size": len(content),
        "Sha256": hashlib.sha256(content).hexdigest(),
        "Content": base64.b64encode(content).decode(),
    }


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_document_over_the_message_limit_is_refused_at_submission(
    world, pg_schema, store: str
) -> None:
    url = pg_schema("oversized") if store == "postgresql" else ""
    node = Node.from_config(
        NodeConfig.from_toml(node_config(world, "RU-FSSP", f"oversized-{store}", database_url=url))
    )
    try:
        small = padded_request()
        accepted, _ = node.submit(small, actor="test")  # the same request without scans: queued
        assert accepted.kind == "Request"
        before = row_counts(node.store)

        large = padded_request()
        large["body"]["Request"]["Attachments"] = {"Attachment": [_attachment(i) for i in range(4)]}
        with pytest.raises(DocumentRejected) as refused:
            node.submit(large, actor="test")

        (problem,) = refused.value.problems
        assert problem.code == "MESSAGE_TOO_LARGE"
        assert str(MAX_SUBMITTED_BYTES) in problem.message_en
        assert "вложениями рядом с документом" in problem.remedy_ru
        assert row_counts(node.store) == before  # nothing stored, nothing queued
    finally:
        node.close()


def test_the_submission_limit_leaves_room_for_encryption_under_the_peer_limit() -> None:
    assert 0 < MAX_MESSAGE_BYTES - MAX_SUBMITTED_BYTES <= 64 * 1024

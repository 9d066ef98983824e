"""The demo scenario end to end: four real nodes on loopback, mutual TLS, signed documents and
receipts, every step through a node's local API (gateway.demo.play).

After each step the conversation's state is read from both nodes' stores: both run the same
state machine over the same documents, so they must agree, and with what docs/protocol.md says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.crypto.algorithms import suite_name
from gateway.crypto.xades import verify_document
from gateway.demo import play as demo_play
from gateway.demo.setup import GOST_DEMO_BODIES, DemoWorld
from gateway.exchange.node import Node
from gateway.store import attachments as attachment_store
from gateway.store import messages as msg_store
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import (
    conversation_state,
    counts_and_scan,
    header_field,
    node_config,
    stored_file_bytes,
)

# (sender, recipient, kind, state on both sides once the step's receipt came back)
EXPECTED_STEPS = [
    ("RU-FSSP", "KZ-MJ", "Request", "in-progress"),
    ("KZ-MJ", "RU-FSSP", "AdditionalInfoRequest", "awaiting-additional-info"),
    ("RU-FSSP", "KZ-MJ", "AdditionalInfoAnswer", "in-progress"),
    ("KZ-MJ", "RU-FSSP", "Response", "answered"),
    ("RU-FSSP", "KZ-MJ", "Request", "in-progress"),
    ("KZ-MJ", "RU-FSSP", "Refusal", "refused"),
    ("RU-VS", "KZ-VS", "Request", "in-progress"),
    ("KZ-VS", "RU-VS", "Response", "answered"),
]


def _files(node: Node, message_id: str) -> list[tuple[str, bytes]]:
    """The files stored with a message on ``node``: name and bytes, read back and decrypted."""
    with node.store.read() as conn:
        return [
            (info.meta.name, stored_file_bytes(conn, info.attachment_id, node.kek_ring))
            for info in attachment_store.for_message(conn, message_id, node.kek_ring)
        ]


@pytest.mark.slow
async def test_demo_scenario_runs_end_to_end(
    world: DemoWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = {body: node_config(world, body, "demo") for body in world.nodes}
    steps: list[dict[str, Any]] = []
    original_send = demo_play.Demo.send

    async def observed_send(
        self: demo_play.Demo,
        sender: str,
        document: dict[str, Any],
        title: str,
        attachments: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        result = await original_send(self, sender, document, title, attachments)
        recipient = document["header"]["Recipient"]
        sending, receiving = self.runtimes[sender].node, self.runtimes[recipient].node
        conversation = result["conversation_id"]
        with sending.store.read() as conn:
            sent = msg_store.read_document(conn, result["message_id"], sending.kek_ring)
        with receiving.store.read() as conn:
            received = msg_store.read_document(conn, result["message_id"], receiving.kek_ring)
        steps.append(
            {
                "sender": sender,
                "recipient": recipient,
                "kind": header_field(sent, "Kind"),
                "message_id": result["message_id"],
                "states": (
                    conversation_state(sending.store, conversation),
                    conversation_state(receiving.store, conversation),
                ),
                "same_bytes": sent == received,
                "counts": (counts_and_scan(sending.store), counts_and_scan(receiving.store)),
                "trust": receiving.trust,
                "files_at_ru_fssp": _files(self.runtimes["RU-FSSP"].node, result["message_id"]),
            }
        )
        return result

    monkeypatch.setattr(demo_play.Demo, "send", observed_send)
    lines: list[str] = []
    status = await demo_play.play(tmp_path, configs, NodeRuntime, lines.append)

    assert status == 0, "\n".join(lines)
    assert [(s["sender"], s["recipient"], s["kind"]) for s in steps] == [
        step[:3] for step in EXPECTED_STEPS
    ]
    for step, (*_, state) in zip(steps, EXPECTED_STEPS, strict=True):
        assert step["states"] == (state, state), step
        assert step["same_bytes"], "the receiver stores the bytes the sender signed"
        for counted, scanned in step["counts"]:  # kept at each commit on SQLite, as a scan
            assert counted == scanned, step

    exchanged = sorted((tmp_path / "exchanged").glob("*.xml"))
    assert len(exchanged) == len(EXPECTED_STEPS)
    now = datetime.now(UTC)
    for path, step in zip(exchanged, steps, strict=True):
        assert step["message_id"] in path.name
        verified = verify_document(
            path.read_bytes(),
            step["trust"],
            at=now,
            expected_sender=step["sender"],
            require_official=True,
        )
        assert verified.report.passed, (path.name, verified.report.summary())
        roles = {s.role for s in verified.report.signatures}
        assert roles == {"seal", "official"}
        # The supreme courts exchange with GOST 2012-256 (their directory suites); the others
        # keep ECDSA.
        expected_suite = "gost2012-256" if step["sender"] in GOST_DEMO_BODIES else "ecdsa"
        assert {suite_name(s.signature_algorithm) for s in verified.report.signatures} == {
            expected_suite
        }, path.name
    assert "seal: TOTAL_PASSED, gost2012-256" in "\n".join(lines)
    # CIS Art. 13 para. 2: the refusal returned the request's file, the very bytes sent.
    request, refusal = (s["files_at_ru_fssp"] for s in steps[4:6])
    assert [name for name, _ in request] == [demo_play.WRIT_FILE]
    assert refusal == request
    # PAdES cannot sign with GOST (pyHanko): renditions are made for the ECDSA bodies only.
    renditions = sorted((tmp_path / "renditions").glob("*.pdf"))
    assert len(renditions) == sum(1 for s in EXPECTED_STEPS if s[0] not in GOST_DEMO_BODIES)
    assert all(p.read_bytes().startswith(b"%PDF") for p in renditions)

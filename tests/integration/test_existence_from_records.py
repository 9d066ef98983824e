"""Proof of existence from the node's own records (issue #19, "Old documents stop verifying").

On 9f5ab4f, after ``keys revoke official:chief`` a document signed and acknowledged before the
revocation re-verified as INDETERMINATE / REVOKED_NO_POE on both nodes and in ``gateway verify``.
The signed receipt of the exchange, or a signed audit checkpoint covering the event that stored the
document, proves the document existed before the revocation: with it the signatures stay
TOTAL_PASSED (no TSA), and the report names the evidence. A document with neither stays
INDETERMINATE.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.app.audit_checkpoints import create_checkpoint
from gateway.config import NodeConfig
from gateway.crypto.statements import sign_statement
from gateway.demo.setup import DemoWorld, build_world
from gateway.exchange import local_service
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from gateway.exchange.sending import Answer, DeliveryResult
from gateway.main import main as gateway
from gateway.store import audit, messages
from gateway.store.tables import audit_checkpoints, audit_events
from tests.integration.exchange_world import (
    OPERATOR,
    READ_PURPOSE,
    padded_request,
    pair_configs,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _cli(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = gateway(list(args))
    return code, out.getvalue() + err.getvalue()


def _deliver(ru: Node, kz: Node) -> str:
    """One request from RU-FSSP, received by KZ-MJ, its receipt recorded by both: its id."""
    header, _ = ru.submit(padded_request(), actor="test")
    (claim,) = [c for c in ru.claim_due("w") if c.message_id == header.message_id]
    outgoing = ru.outgoing(claim)
    answer = kz.receive(ru.body_id, outgoing.wire)
    assert answer.disposition is Disposition.ACCEPTED
    result = ru.record_answer(claim, outgoing.signed, answer.body, Answer.RECEIPT)
    assert result.outcome is DeliveryResult.DELIVERED
    return header.message_id


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def revoked(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Two nodes (on SQLite, then on PostgreSQL); one delivered document, one covered by an
    audit checkpoint, one with neither; then RU-FSSP's official key (generation 1) revoked and
    the new CRL taken by both nodes."""
    root = tmp_path_factory.mktemp("existence")
    world: DemoWorld = build_world(root, now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))
    configs = pair_configs(world, request)
    ru, kz = (Node.from_config(NodeConfig.from_toml(configs[b])) for b in ("RU-FSSP", "KZ-MJ"))
    try:
        delivered = _deliver(ru, kz)
        # Not delivered, but covered by a signed audit checkpoint (the scheduled job's).
        checkpointed, _ = ru.submit(padded_request(), actor="test")
        create_checkpoint(ru.store, ru.seal, actor="job:audit-checkpoint", now=datetime.now(UTC))
        unsent, _ = ru.submit(padded_request(), actor="test")  # signed, stored, nothing else
        # A CRL states revocation times to the second: the revocation must come in a later
        # second than the receipt for "revoked after the proof" to be decidable.
        time.sleep(1.1)
        ca = world.root / "pki" / "RU" / "ca"
        revoke = (
            *("keys", "revoke", "official:chief", "--generation", "1"),
            *("--config", str(configs["RU-FSSP"]), "--demo-ca", str(ca)),
        )
        # "superseded" strands nothing: refused while a document it signed waits unsent.
        code, out = _cli(*revoke, "--reason", "superseded")
        assert code == 1 and "KEY_STILL_IN_USE" in out and "2 document(s)" in out, out
        # The official lost the authority to sign: revoked at once, the stranded one named.
        code, out = _cli(*revoke, "--reason", "privilegeWithdrawn")
        assert code == 0, out
        assert "WARNING: 2 document(s) signed by it still wait in the outbox" in out
        shutil.copy(ca / "crl.pem", world.root / "trust" / "RU-crl.pem")
        for node in (ru, kz):
            node.reload_crls()
        yield {
            "world": world,
            "ru": ru,
            "kz": kz,
            "configs": configs,
            "delivered": delivered,
            "unsent": unsent.message_id,
            "checkpointed": checkpointed.message_id,
        }
    finally:
        ru.close()
        kz.close()


async def _reverify(node: Node, message_id: str) -> dict[str, Any]:
    with ThreadPoolExecutor(1) as executor:
        service = local_service.LocalNodeService(node, executor)
        return await service.reverify(message_id, actor=OPERATOR, purpose=READ_PURPOSE)


def _official(report: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in report["signatures"] if s["role"] == "official")


async def test_reverify_after_revocation_is_valid_on_both_nodes_with_the_receipt_named(
    revoked: dict[str, Any],
) -> None:
    for node in (revoked["kz"], revoked["ru"]):
        report = await _reverify(node, revoked["delivered"])
        official = _official(report)
        assert report["indication"] == "TOTAL_PASSED", report
        assert report["recorded_for"] == "reverify"
        assert official["revocation"] == "revoked"  # the CRL was read: the key is revoked
        assert "receipt" in official["existence_evidence"], official
        assert official["existence_time"] is not None
        assert "before the revocation" in official["message"]
        assert official["timestamp_time"] is None  # no TSA: the records alone decided


async def test_a_document_without_receipt_stays_indeterminate(revoked: dict[str, Any]) -> None:
    report = await _reverify(revoked["ru"], revoked["unsent"])
    official = _official(report)
    assert report["indication"] == "INDETERMINATE"
    assert official["sub_indication"] == "REVOKED_NO_POE"
    assert official["existence_evidence"] == ""


async def test_a_signed_audit_checkpoint_proves_existence_too(revoked: dict[str, Any]) -> None:
    report = await _reverify(revoked["ru"], revoked["checkpointed"])
    official = _official(report)
    assert report["indication"] == "TOTAL_PASSED", report
    assert "audit checkpoint" in official["existence_evidence"], official
    assert "message.submitted" in official["existence_evidence"]


@contextlib.contextmanager
def _altered(node: Node, table: Any, where: Any, **values: Any) -> Iterator[None]:
    """Rows of ``table`` changed behind the node's back for the block, then put back."""
    with node.store.transaction() as conn:
        before = [dict(r._mapping) for r in conn.execute(sa.select(table).where(where))]
        assert before, "nothing to alter"
        conn.execute(sa.update(table).where(where).values(**values))
    try:
        yield
    finally:
        with node.store.transaction() as conn:
            for row in before:
                conn.execute(sa.update(table).where(where).values(**row))


async def test_a_checkpoint_not_signed_by_this_bodys_seal_proves_nothing(
    revoked: dict[str, Any],
) -> None:
    ru, kz = revoked["ru"], revoked["kz"]
    with ru.store.read() as conn:
        (checkpoint,) = audit.checkpoints(conn)
    # The same statement, signed by another body's seal and stored beside it.
    forged = sign_statement(kz.seal, json.loads(checkpoint.statement))
    with _altered(
        ru,
        audit_checkpoints,
        audit_checkpoints.c.id == checkpoint.checkpoint_id,
        signature=forged.signature,
        certificate=forged.certificate,
    ):
        report = await _reverify(ru, revoked["checkpointed"])
    assert report["indication"] == "INDETERMINATE", report
    assert _official(report)["existence_evidence"] == ""


async def test_a_checkpoint_proves_only_the_chain_it_signed(revoked: dict[str, Any]) -> None:
    """An event between the storing one and the checkpoint's head rewritten: the signed hash
    no longer covers what is stored, so the checkpoint is no proof (the time columns of the
    row were never trusted either: only the signed statement)."""
    ru: Node = revoked["ru"]
    with ru.store.read() as conn:
        (checkpoint,) = audit.checkpoints(conn)
    with _altered(ru, audit_events, audit_events.c.seq == checkpoint.seq, actor="someone-else"):
        report = await _reverify(ru, revoked["checkpointed"])
    assert report["indication"] == "INDETERMINATE", report
    # The row's own time edited to an hour earlier: the proof keeps the signed time.
    earlier = checkpoint.at - timedelta(hours=1)
    with _altered(
        ru,
        audit_checkpoints,
        audit_checkpoints.c.id == checkpoint.checkpoint_id,
        at=earlier,
    ):
        report = await _reverify(ru, revoked["checkpointed"])
    official = _official(report)
    assert report["indication"] == "TOTAL_PASSED", report
    signed_at = json.loads(checkpoint.statement)["at"]
    assert datetime.fromisoformat(official["existence_time"]) == datetime.fromisoformat(signed_at)


async def test_gateway_verify_uses_the_nodes_records(
    revoked: dict[str, Any], tmp_path: Path
) -> None:
    kz_config = str(revoked["configs"]["KZ-MJ"])
    code, out = _cli("verify", "--config", kz_config, "--message", revoked["delivered"], "--json")
    assert code == 0, out
    official = _official(json.loads(out))
    assert official["indication"] == "TOTAL_PASSED"
    assert "receipt" in official["existence_evidence"]

    # The same document as a file: the node recognises it (MessageId and SHA-256).
    kz: Node = revoked["kz"]
    with kz.store.read() as conn:
        document = messages.read_document(conn, revoked["delivered"], kz.kek_ring)
    path = tmp_path / "doc.xml"
    path.write_bytes(document)
    code, out = _cli("verify", "--config", kz_config, str(path))
    assert code == 0, out
    assert out.startswith("TOTAL_PASSED")

    # One byte changed: not the document the receipt names (and not valid at all).
    path.write_bytes(document.replace(b"<", b" <", 1))
    code, out = _cli("verify", "--config", kz_config, str(path), "--json")
    assert code == 1
    assert "receipt" not in out

    # A node that holds no record of it: INDETERMINATE, as before.
    code, out = _cli(
        "verify", "--config", str(revoked["configs"]["RU-FSSP"]), "--message", revoked["unsent"]
    )
    assert code == 1 and out.startswith("INDETERMINATE"), out

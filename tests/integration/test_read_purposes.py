"""A stated purpose for every read of a document's content (CIS Art. 9.1), kept readable to
auditors under the audit trail's protection: refused without one (nothing audited as a read),
recorded sealed under the KEK ring inside the chained event, opened by ``gateway audit show
--purposes`` and ``audit export --purposes``, and a changed ciphertext breaks ``gateway audit
verify``. A real node (gateway.exchange.local_service), on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.app.audit import verify_export_lines
from gateway.config import NodeConfig
from gateway.demo.setup import DemoWorld
from gateway.exchange.local_service import LocalNodeService
from gateway.exchange.node import Node
from gateway.exchange.service import PurposeRequired
from gateway.main import main as gateway
from gateway.store import audit
from gateway.store.read_purposes import SEALED_KEY
from gateway.store.tables import audit_events
from tests.integration.exchange_world import OPERATOR, node_config, padded_request

PURPOSE = "Исполнительное производство № 4711/26/77001-ИП: проверка сведений о счетах должника"


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = gateway(list(args))
    return code, out.getvalue(), err.getvalue()


def _events(node: Node, kind: str) -> list[audit.AuditEvent]:
    with node.store.read() as conn:
        found = list(audit.events(conn, after_seq=0, limit=audit.VERIFY_BATCH))
    return [e for e in found if e.kind == kind]


@pytest.fixture(params=["sqlite", "postgresql"])
def config_path(request: pytest.FixtureRequest, world: DemoWorld) -> Iterator[tuple[Path, Node]]:
    url = ""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_schema")("purposes")
    path = node_config(world, "RU-FSSP", f"purposes-{request.param}", database_url=url, peer_port=0)
    node = Node.from_config(NodeConfig.from_toml(path))
    try:
        yield path, node
    finally:
        node.close()


async def test_every_read_states_a_purpose_sealed_in_the_audit_trail(
    config_path: tuple[Path, Node],
) -> None:
    path, node = config_path
    with ThreadPoolExecutor(2) as executor:
        service = LocalNodeService(node, executor)
        submitted = await service.submit(padded_request(), actor=OPERATOR)
        message_id = submitted.message_id

        # Metadata needs no purpose and records no read; the content needs one.
        view = await service.conversation(submitted.conversation_id, actor=OPERATOR, purpose=None)
        assert [m.message_id for m in view.messages] == [message_id]
        for read in (service.message, service.message_xml, service.message_pdf):
            with pytest.raises(PurposeRequired, match=r"9\.1"):
                await read(message_id, actor=OPERATOR, purpose=None)
            with pytest.raises(PurposeRequired):
                await read(message_id, actor=OPERATOR, purpose="   ")
        assert _events(node, "document.read") == []
        assert _events(node, "conversation.read") == []

        xml = await service.message_xml(message_id, actor=OPERATOR, purpose=PURPOSE)
        assert xml.startswith(b"<?xml")

    [read] = _events(node, "document.read")
    assert read.actor == OPERATOR.name and dict(read.subjects) == {"message": message_id}
    assert read.details["confidential"] is False
    assert read.details["purpose_sha256"] == hashlib.sha256(PURPOSE.encode()).hexdigest()
    sealed = read.details[SEALED_KEY]
    assert isinstance(sealed, str) and sealed.startswith("v1.")
    # Not in clear anywhere in the event, nor in its stored row.
    assert PURPOSE not in json.dumps(dict(read.details), ensure_ascii=False)
    with node.store.read() as conn:
        row = conn.execute(sa.select(audit_events).where(audit_events.c.seq == read.seq)).one()
    assert PURPOSE not in row.details and sealed in row.details

    # The auditor's CLI opens it and says so; the opening is itself recorded.
    code, out, err = _cli(
        "audit", "show", "--config", str(path), "--kind", "document.read", "--purposes"
    )
    assert code == 0, err
    assert f"цель ознакомления (расшифрована): {PURPOSE}" in out
    assert "расшифрованы для аудитора: 1" in err
    [opened] = _events(node, "audit.purposes.read")
    assert dict(opened.details) == {"command": "show", "opened": 1, "unreadable": 0}
    code, out, _ = _cli("audit", "show", "--config", str(path), "--kind", "document.read")
    assert code == 0 and PURPOSE not in out and "(sealed)" in out
    # A mistyped kind is named with the nearest codes, not answered with an empty trail.
    code, out, err = _cli("audit", "show", "--config", str(path), "--kind", "document.raed")
    assert code == 2 and out == ""
    assert "не вид события журнала" in err and "document.read" in err and "INVALID_ARGUMENT" in err

    export = path.parent / f"{path.stem}-reads.jsonl"
    code, _, err = _cli(
        "audit", "export", "--config", str(path), "--purposes", "--out", str(export)
    )
    assert code == 0, err
    lines = export.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["purposes_decrypted"] is True
    exported = [json.loads(line) for line in lines[1:]]
    assert [e["purpose"] for e in exported if e["kind"] == "document.read"] == [PURPOSE]
    assert verify_export_lines(lines)[1] is None  # the clear text sits beside the hashed details

    assert _cli("audit", "verify", "--config", str(path))[0] == 0

    # One byte of the stored ciphertext changed: the chain breaks at that event, and the
    # purpose no longer opens.
    details = json.loads(row.details)
    head, ciphertext = details[SEALED_KEY].rsplit(".", 1)
    flipped = "A" if ciphertext[4] != "A" else "B"
    details[SEALED_KEY] = f"{head}.{ciphertext[:4]}{flipped}{ciphertext[5:]}"
    with node.store.engine.begin() as conn:
        conn.execute(
            audit_events.update()
            .where(audit_events.c.seq == read.seq)
            .values(details=json.dumps(details, sort_keys=True, separators=(",", ":")))
        )
    code, out, _ = _cli("audit", "verify", "--config", str(path))
    assert code == 1
    assert f"event {read.seq}" in out
    code, out, _ = _cli(
        "audit", "show", "--config", str(path), "--kind", "document.read", "--purposes"
    )
    assert "не читается" in out and PURPOSE not in out

"""docs/key-rotation.md end to end on two running nodes with traffic throughout (issue #19):
the seal, the official's key and (scheduled) the TLS key rotated (publish first, switch
after), the store's KEK rotated with every data key re-wrapped, then the old generations
revoked as superseded — or, in the emergency, switched to a standby and revoked. 0 requests
lost, every one delivered with a signed receipt;
documents exchanged before the revocation still verify as TOTAL_PASSED on both nodes — without
a TSA, with the receipt named as the evidence; a new signature with a revoked key is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.config import NodeConfig
from gateway.crypto.keys.generations import directory_with_publication, published_from_json
from gateway.crypto.report import Indication, SubIndication
from gateway.crypto.xades import sign_document, verify_document
from gateway.demo.play import publish_bound_endpoints
from gateway.demo.setup import DemoWorld, build_world
from gateway.exchange import local_service
from gateway.exchange.directory import build_directory_xml
from gateway.exchange.directory_signing import sign_directory
from gateway.exchange.node import Node
from gateway.main import main as gateway
from gateway.store import messages, outbox
from gateway.store import receipts as receipt_store
from gateway.store.keys import kek_usage
from gateway.store.tables import outbox as outbox_table
from gateway.web.runtime import NodeRuntime
from tests.crypto.helpers import envelope
from tests.integration.exchange_world import OPERATOR, READ_PURPOSE, padded_request
from tests.integration.test_directory_reload import _depositary

SEND_INTERVAL = 0.15
"""Seconds between two submissions: a steady stream through every step."""


def _cli(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = gateway(list(args))
    assert code == 0, (args, out.getvalue())
    return out.getvalue()


def _undelivered(node: Node) -> list[Any]:
    """Outbox rows not delivered yet, with their last error: what a timeout reports."""
    columns = (outbox_table.c.message_id, outbox_table.c.state, outbox_table.c.last_error)
    with node.store.read() as conn:
        query = sa.select(*columns).where(outbox_table.c.state != "delivered")
        return [tuple(row) for row in conn.execute(query)]


async def _reverify(node: Node, message_id: str) -> dict[str, Any]:
    with ThreadPoolExecutor(1) as executor:
        service = local_service.LocalNodeService(node, executor)
        return await service.reverify(message_id, actor=OPERATOR, purpose=READ_PURPOSE)


@pytest.mark.parametrize("reason", ["superseded", "keyCompromise"])
async def test_rotate_seal_and_official_then_revoke_the_old_generations(
    tmp_path: Path, reason: str
) -> None:
    """``superseded``: the scheduled rotation, made and published while traffic flows.
    ``keyCompromise``: the emergency order with a standby made and published in advance —
    switch to it at once, then revoke the compromised generation (docs/key-rotation.md)."""
    world: DemoWorld = build_world(tmp_path, now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))
    ru_config = world.nodes["RU-FSSP"].config_path
    kz_config = world.nodes["KZ-MJ"].config_path
    ca = world.root / "pki" / "RU" / "ca"
    ru = Node.from_config(NodeConfig.from_toml(ru_config))
    kz = Node.from_config(NodeConfig.from_toml(kz_config))
    runtimes = [NodeRuntime(n, directory_poll_seconds=0.1) for n in (ru, kz)]
    for runtime in runtimes:
        await runtime.start(console=False)
    await publish_bound_endpoints({"RU-FSSP": runtimes[0], "KZ-MJ": runtimes[1]})
    loop = asyncio.get_running_loop()
    sent: list[str] = []
    stop = asyncio.Event()

    async def stream() -> None:
        while not stop.is_set():
            header, _ = await loop.run_in_executor(
                runtimes[0].executor, lambda: ru.submit(padded_request(), actor="test")
            )
            sent.append(header.message_id)
            runtimes[0]._wake.set()
            await asyncio.sleep(SEND_INTERVAL)

    async def wait_for(predicate: Any, seconds: float = 30.0) -> None:
        deadline = loop.time() + seconds
        while not predicate():
            assert loop.time() < deadline, "timed out"
            await asyncio.sleep(0.05)

    def delivered() -> int:
        with ru.store.read() as conn:
            return outbox.count_by_state(conn).get("delivered", 0)

    def all_delivered(message_ids: list[str]) -> bool:
        with ru.store.read() as conn:
            states = outbox.states_of(conn, message_ids)
        return all(states.get(m) == "delivered" for m in message_ids)

    def publish() -> int:
        """Step 2 of the doc: keys publish → the depositary's next version → every node."""
        published = published_from_json(
            json.loads(_cli("keys", "publish", "--json", "--config", str(ru_config)))
        )
        version = kz.directory.version + 1
        new = directory_with_publication(
            kz.directory, "RU-FSSP", published, version, datetime.now(UTC)
        )
        next_file = world.root / f"directory-{version}.xml"
        next_file.write_bytes(sign_directory(build_directory_xml(new), _depositary(world).seal()))
        _cli("directory", "import", "--config", str(ru_config), str(next_file))
        return version

    emergency = reason == "keyCompromise"
    rotated = ("seal", "official:chief") if emergency else ("seal", "official:chief", "tls")

    def make_and_publish() -> None:
        """Doc steps 1 and 2: new generations, published, taken by every node."""
        for key in rotated:
            _cli("keys", "rotate", key, "--config", str(ru_config), "--demo-ca", str(ca))
        version = publish()
        deadline = loop.time() + 30
        while not ru.directory.version == version == kz.directory.version:
            assert loop.time() < deadline, "the nodes did not take the new directory"
            time.sleep(0.05)

    if emergency:
        await loop.run_in_executor(None, make_and_publish)  # the standby, before any trouble
    sender = asyncio.create_task(stream())
    try:
        await asyncio.sleep(1.0)
        old_seal = ru.seal  # generation 1, kept to forge with after its revocation
        if not emergency:
            await loop.run_in_executor(None, make_and_publish)
        activate = ("--generation", "2", "--at", "now", "--config", str(ru_config))
        signed_by_old = list(sent)  # submitted, hence signed, before the switch
        for key in rotated:
            _cli("keys", "activate", key, *activate)
        if not emergency:
            # The store's KEK too (docs/key-rotation.md, "KEK rotation"), traffic flowing.
            old_kek = ru.kek_ring.active.key_id
            _cli("keys", "rotate", "kek", "--config", str(ru_config))
            await wait_for(lambda: ru.kek_ring.active.key_id != old_kek, 10.0)
            _cli("keys", "rewrap", "--config", str(ru_config))
            await wait_for(lambda: runtimes[0]._tls_generation == 2)
        await asyncio.sleep(1.0)
        # Everything signed by generation 1 has left the outbox (doc step 4 waits 30 days):
        # those very documents, not a count that later ones could make up.
        signed_before_switch = list(sent)
        await wait_for(lambda: all_delivered(signed_before_switch))
        await asyncio.sleep(1.1)  # CRLs state revocation times to the second
        for key in ("seal", "official:chief"):
            _cli(
                "keys",
                "revoke",
                key,
                "--generation",
                "1",
                "--reason",
                reason,
                "--config",
                str(ru_config),
                "--demo-ca",
                str(ca),
            )
        # Doc emergency step 3 (demo): the CRL the nodes read; they reload it by themselves.
        shutil.copy(ca / "crl.pem", world.root / "trust" / "RU-crl.pem")
        await asyncio.sleep(1.5)
    finally:
        stop.set()
        await sender

    try:
        try:
            await wait_for(lambda: delivered() == len(sent), 60.0)
        except AssertionError:
            raise AssertionError(f"not delivered in time: {_undelivered(ru)}") from None
        with ru.store.read() as conn:
            assert outbox.count_by_state(conn).get("failed", 0) == 0
            for message_id in sent:
                receipt = receipt_store.get(conn, message_id)
                assert receipt is not None
                assert receipt.outcome is receipt_store.ReceiptOutcome.ACCEPTED
        with kz.store.read() as conn:
            assert all(messages.get(conn, m) is not None for m in sent)
        assert len(sent) > len(signed_by_old) >= 3
        if not emergency:
            # Every stored data key under the new KEK, every document readable through it.
            with ru.store.read() as conn:
                assert set(kek_usage(conn)) == {ru.kek_ring.active.key_id}
                for message_id in sent:
                    assert messages.read_document(conn, message_id, ru.kek_ring)

        for node in (ru, kz):
            node.reload_crls()  # the runtimes did too; here for the direct calls below
        # Documents signed by the revoked generations: valid on both sides, the receipt named.
        for node in (ru, kz):
            for message_id in (signed_by_old[0], signed_by_old[-1]):
                report = await _reverify(node, message_id)
                assert report["indication"] == "TOTAL_PASSED", (node.body_id, report)
                for signature in report["signatures"]:
                    assert signature["revocation"] == "revoked"
                    assert "receipt" in signature["existence_evidence"]
                    assert signature["timestamp_time"] is None
        out = _cli("verify", "--config", str(kz_config), "--message", signed_by_old[0])
        assert out.startswith("TOTAL_PASSED"), out

        # A new signature with the revoked seal is refused by the peer.
        assert old_seal.generation == 1 and ru.seal.generation == 2
        forged = sign_document(envelope("RU-FSSP", "KZ-MJ"), None, old_seal, datetime.now(UTC))
        seal = verify_document(forged, kz.trust, datetime.now(UTC), require_official=False)
        first = seal.report.signatures[0]
        assert (first.indication, first.sub_indication) == (
            Indication.TOTAL_FAILED,
            SubIndication.REVOKED,
        )
    finally:
        for runtime in runtimes:
            await runtime.stop()

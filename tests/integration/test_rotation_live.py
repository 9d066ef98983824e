"""Rotating one node's seal and TLS keys while two nodes exchange without pause (issue "Key
rotation", Done when): no message fails or is lost, documents signed before still verify, and
documents signed after carry the new seal.

The administrator's steps are the documented ones (docs/key-rotation.md), run through the CLI:
``keys rotate`` (demo CA) → ``keys publish`` → the depositary signs the next directory version
listing both certificates → both nodes take it live → ``keys activate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from gateway.config import NodeConfig
from gateway.crypto.keys.generations import directory_with_publication, published_from_json
from gateway.crypto.xades import verify_document
from gateway.demo.play import publish_bound_endpoints
from gateway.demo.setup import DemoWorld, build_world
from gateway.exchange.directory import build_directory_xml
from gateway.exchange.directory_signing import sign_directory
from gateway.exchange.node import Node
from gateway.main import main as gateway
from gateway.schemas import VALID_EXAMPLES_DIR
from gateway.store import messages, outbox
from gateway.store.tables import messages as messages_table
from gateway.web.runtime import NodeRuntime
from tests.integration.test_directory_reload import _depositary

EXAMPLES = VALID_EXAMPLES_DIR
SEND_INTERVAL = 0.15
"""Seconds between two submissions: a steady stream through every step of the rotation."""


def _request() -> dict[str, Any]:
    document = json.loads((EXAMPLES / "cis-enforcement.Request.json").read_text("utf-8"))
    for key in ("MessageId", "ConversationId", "Created", "RequestedDeadline"):
        document["header"].pop(key, None)
    return document


def _cli(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = gateway(list(args))
    assert code == 0, (args, out.getvalue())
    return out.getvalue()


def _seal_sha256(document: bytes, trust: Any) -> str:
    report = verify_document(document, trust, at=datetime.now(UTC), require_official=False).report
    seal = next(s for s in report.signatures if s.role == "seal")
    return seal.chain[0].sha256


async def test_seal_and_tls_rotation_while_exchanging(tmp_path: Path) -> None:
    world: DemoWorld = build_world(tmp_path, now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))
    ru_config = world.nodes["RU-FSSP"].config_path
    ru = Node.from_config(NodeConfig.from_toml(ru_config))
    kz = Node.from_config(NodeConfig.from_toml(world.nodes["KZ-MJ"].config_path))
    runtimes = [NodeRuntime(n, directory_poll_seconds=0.1) for n in (ru, kz)]
    for runtime in runtimes:
        await runtime.start(console=False)
    # The nodes bound free ports: directory v2 lists them; the rotations publish v3 and v4.
    await publish_bound_endpoints({"RU-FSSP": runtimes[0], "KZ-MJ": runtimes[1]})
    loop = asyncio.get_running_loop()
    sent: list[str] = []
    stop = asyncio.Event()

    async def stream() -> None:
        document = _request()
        while not stop.is_set():
            header, _ = await loop.run_in_executor(
                runtimes[0].executor, lambda: ru.submit(document, actor="test")
            )
            sent.append(header.message_id)
            runtimes[0]._wake.set()
            await asyncio.sleep(SEND_INTERVAL)

    def rotate_and_publish(role: str, version: int) -> None:
        ca = str(world.root / "pki" / "RU" / "ca")
        _cli("keys", "rotate", role, "--config", str(ru_config), "--demo-ca", ca)
        published = published_from_json(
            json.loads(_cli("keys", "publish", "--json", "--config", str(ru_config)))
        )
        new = directory_with_publication(
            kz.directory, "RU-FSSP", published, version, datetime.now(UTC)
        )
        signed = sign_directory(build_directory_xml(new), _depositary(world).seal())
        temporary = world.directory_file.with_suffix(".new")
        temporary.write_bytes(signed)
        temporary.replace(world.directory_file)

    async def wait_for(predicate: Any, seconds: float = 20.0) -> None:
        deadline = loop.time() + seconds
        while not predicate():
            assert loop.time() < deadline, "timed out"
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(stream())
    try:
        await asyncio.sleep(1.5)
        before = list(sent)
        old_seal = ru.seal.certificate

        # 1. Seal: rotate, publish (directory v3 with both seals), activate.
        await loop.run_in_executor(None, rotate_and_publish, "seal", 3)
        await wait_for(lambda: ru.directory.version == 3 and kz.directory.version == 3)
        await asyncio.sleep(0.5)
        _cli(
            "keys",
            "activate",
            "seal",
            "--generation",
            "2",
            "--at",
            "now",
            "--config",
            str(ru_config),
        )
        await wait_for(lambda: ru.seal.certificate != old_seal)
        await asyncio.sleep(1.0)

        # 2. TLS: rotate, publish (directory v4 with both TLS certificates), activate.
        await loop.run_in_executor(None, rotate_and_publish, "tls", 4)
        await wait_for(lambda: ru.directory.version == 4 and kz.directory.version == 4)
        await asyncio.sleep(0.5)
        _cli(
            "keys",
            "activate",
            "tls",
            "--generation",
            "2",
            "--at",
            "now",
            "--config",
            str(ru_config),
        )
        await wait_for(lambda: runtimes[0]._tls_generation == 2)
        await asyncio.sleep(1.5)
    finally:
        stop.set()
        await sender

    try:

        def all_delivered() -> bool:
            with ru.store.read() as conn:
                states = outbox.count_by_state(conn)
            return states.get("delivered", 0) == len(sent)

        await wait_for(all_delivered, 60.0)
        with ru.store.read() as conn:
            assert outbox.count_by_state(conn).get("failed", 0) == 0
        with kz.store.read() as conn:
            for message_id in sent:
                rows = conn.execute(
                    messages_table.select().where(messages_table.c.message_id == message_id)
                ).all()
                assert len(rows) == 1  # each message stored exactly once
            first = messages.read_document(conn, before[0], kz.kek_ring)
            last = messages.read_document(conn, sent[-1], kz.kek_ring)
            stored_first = messages.get(conn, before[0])
        # A document from before the rotation still verifies, judged at its time.
        report = verify_document(
            first,
            kz.trust,
            at=stored_first.stored_at,
            expected_sender="RU-FSSP",
            require_official=False,
        ).report
        assert report.passed, report.summary()
        # Before: the old seal; after: the new one.
        assert (
            _seal_sha256(first, kz.trust)
            == hashlib.sha256(old_seal.public_bytes(Encoding.DER)).hexdigest()
        )
        assert _seal_sha256(last, kz.trust) != _seal_sha256(first, kz.trust)
        assert len(sent) > 20
    finally:
        for runtime in runtimes:
            await runtime.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)

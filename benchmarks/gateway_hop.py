"""The gateway's full hop, measured: sent → received → verified → stored → receipt verified.

Two nodes on loopback: the receiver (KZ-MJ) runs as its own ``gateway serve`` process, the
sender (RU-FSSP) in this process. N requests of about 10 KB are submitted (signed: that is
before "sent") and then delivered by the sender's delivery worker, 16 at a time over kept-alive
mutual-TLS connections. A hop's latency is from the POST to the receipt verified and recorded;
throughput is hops over the wall time of the whole delivery.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.schemas import VALID_EXAMPLES_DIR

EXAMPLE = VALID_EXAMPLES_DIR / "cis-enforcement.Request.json"
DOCUMENT_BYTES = 10_000
"""The issue's document size: the request as the case system's JSON makes it, before the two
XAdES signatures (with their certificate chains) add about 7 KB on the wire."""
PG_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def request_document() -> dict[str, Any]:
    document = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    for key in ("MessageId", "ConversationId", "Created", "RequestedDeadline"):
        document["header"].pop(key, None)
    request = document["body"]["Request"]
    # Pad the free-text field to the 10 KB.
    filler = " Дополнительные обстоятельства дела изложены в приложенных материалах."
    while _unsigned_size(document) < DOCUMENT_BYTES:
        request["OtherInformation"] += filler
    return document


def _unsigned_size(document: dict[str, Any]) -> int:
    from gateway.exchange.documents import complete_header
    from gateway.xml.convert import json_to_xml, to_bytes

    draft = dict(document)
    draft["header"] = complete_header(
        document["header"], sender="RU-FSSP", now=datetime.now(UTC), opens_conversation=True
    )
    return len(to_bytes(json_to_xml(draft)))


def _bound_peer_port(process: subprocess.Popen[str], seconds: float = 60.0) -> int:
    """The peer port from ``gateway serve``'s first line (``узел X: peer https://host:PORT, …``)."""
    assert process.stdout is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break  # the process ended
        found = re.search(r"peer https://[^:]+:(\d+)", line)
        if found:
            return int(found.group(1))
    raise RuntimeError(f"gateway serve did not start (exit code {process.poll()})")


def _publish_peer_port(world: Any, body_id: str, port: int) -> None:
    from gateway.config import NodeConfig
    from gateway.demo.setup import NodePorts, publish_endpoints
    from gateway.exchange.node import load_directory

    now = datetime.now(UTC)
    config = NodeConfig.from_toml(world.nodes[body_id].config_path)
    publish_endpoints(
        world.root, load_directory(config, at=now), {body_id: NodePorts(port)}, now=now
    )


def _with_database(config_path: Path, url: str) -> None:
    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(text + f'\n[database]\nurl = "{url}"\n', encoding="utf-8")


def _pg_schema(label: str) -> tuple[str, Any]:
    import secrets

    import sqlalchemy as sa

    schema = f"gw_bench_{label}_{secrets.token_hex(4)}"
    engine = sa.create_engine(PG_URL, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()

    return f"{PG_URL}?options=-csearch_path%3D{schema}", drop


def measure_gateway_hop(store: str, hops: int) -> dict[str, float]:
    """Run one measurement; ``store`` is ``sqlite`` or ``postgresql``."""
    from gateway.demo.setup import build_world

    cleanups = []
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
        world = build_world(Path(tmp), now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))
        if store == "postgresql":
            for body in ("RU-FSSP", "KZ-MJ"):
                url, drop = _pg_schema(body.lower().replace("-", "_"))
                cleanups.append(drop)
                _with_database(world.nodes[body].config_path, url)
        receiver = world.nodes["KZ-MJ"]
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(receiver.config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            # The receiver binds a free port (port 0) and says which; the depositary then
            # lists it in the directory the sender loads.
            _publish_peer_port(world, "KZ-MJ", _bound_peer_port(process))
            return asyncio.run(_deliver_all(world.nodes["RU-FSSP"].config_path, hops))
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
            for cleanup in cleanups:
                cleanup()


async def _deliver_all(config_path: Path, hops: int) -> dict[str, float]:
    from gateway.config import NodeConfig
    from gateway.exchange.node import Node
    from gateway.web.runtime import NodeRuntime

    tomllib.loads(config_path.read_text(encoding="utf-8"))  # fail early on a broken file
    node = Node.from_config(NodeConfig.from_toml(config_path))
    document = request_document()
    loop = asyncio.get_running_loop()
    runtime = NodeRuntime(node)
    await runtime.start(deliver=False)
    try:
        # Submitting signs and queues: before the hop starts.
        await asyncio.gather(
            *(
                loop.run_in_executor(runtime.executor, lambda: node.submit(document, actor="b"))
                for _ in range(hops)
            )
        )
        latencies: list[float] = []
        original = runtime.metrics.hop_latency

        def record(seconds: float, peer: str | None = None) -> None:
            latencies.append(seconds)
            original(seconds, peer=peer)

        runtime.metrics.hop_latency = record  # type: ignore[method-assign]
        started = time.perf_counter()
        while len(latencies) < hops:
            handled = await runtime.deliver_once()
            if handled == 0:
                await asyncio.sleep(0.05)
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"only {len(latencies)} of {hops} hops in 10 minutes")
        wall = time.perf_counter() - started
    finally:
        await runtime.stop()
    latencies.sort()
    return {
        "hops_per_s": round(hops / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
    }


if __name__ == "__main__":
    store = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    print(json.dumps(measure_gateway_hop(store, count)))

"""The gateway's full hop, as the case system sees it: its POST of JSON to the local API →
converted → checked → signed → queued → delivered over mutual TLS → received, verified,
validated, judged, stored → the signed Receipt verified and recorded by the sender.

Two nodes on loopback: the receiver (KZ-MJ) runs as ``gateway serve --workers N`` (its own
processes), the sender (RU-FSSP) runs in this process with its local API on a port of its own;
the case system is an aiohttp client here too, posting the ~10 KB request's JSON. The clock of a
hop starts before the POST and stops when the sender has recorded the Receipt. Closed-loop runs
keep CLOSED_LOOP_WINDOW requests outstanding; a fixed-rate run offers hops at a set rate.
CPU ms per hop is reported for each side (this process; the receiver's processes).
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
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.schemas import VALID_EXAMPLES_DIR

EXAMPLE = VALID_EXAMPLES_DIR / "cis-enforcement.Request.json"


@dataclass(frozen=True, slots=True)
class Pair:
    """Who exchanges in a hop measurement, and what."""

    sender: str
    receiver: str
    example: Path


PAIRS = {
    # The CIS enforcement pair signs with ECDSA P-256 (the demo's default).
    "ecdsa": Pair("RU-FSSP", "KZ-MJ", EXAMPLE),
    # The supreme courts sign with GOST R 34.10-2012 / Streebog-256 (gateway/demo/setup.py).
    "gost2012-256": Pair(
        "RU-VS", "KZ-VS", VALID_EXAMPLES_DIR / "ru-kz-supreme-courts.Request.json"
    ),
}
"""Hop measurements per signature suite (issue 18: the GOST row beside the ECDSA one)."""
DOCUMENT_BYTES = 10_000
"""The issue's document size: the request as the case system's JSON makes it, before the two
XAdES signatures (with their certificate chains) add about 7 KB on the wire."""
PG_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def request_document(pair: Pair = PAIRS["ecdsa"]) -> dict[str, Any]:
    document = json.loads(pair.example.read_text(encoding="utf-8"))
    for key in ("MessageId", "ConversationId", "Created", "RequestedDeadline"):
        document["header"].pop(key, None)
    request = document["body"]["Request"]
    # Pad the free-text field to the 10 KB.
    filler = " Дополнительные обстоятельства дела изложены в приложенных материалах."
    while _unsigned_size(document, pair.sender) < DOCUMENT_BYTES:
        request["OtherInformation"] += filler
    return document


def _unsigned_size(document: dict[str, Any], sender: str) -> int:
    from gateway.exchange.documents import complete_header
    from gateway.xml.convert import json_to_xml, to_bytes

    draft = dict(document)
    draft["header"] = complete_header(
        document["header"], sender=sender, now=datetime.now(UTC), opens_conversation=True
    )
    return len(to_bytes(json_to_xml(draft)))


def _bound_port(process: subprocess.Popen[str], what: str, seconds: float = 60.0) -> int:
    """A bound port from ``gateway serve``'s first line (``узел X: peer https://host:PORT, API
    http://host:PORT/api/v1``); ``what`` is ``peer https`` or ``API http``."""
    assert process.stdout is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break  # the process ended
        found = re.search(rf"{what}://[^:]+:(\d+)", line)
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


def measure_gateway_hop(
    store: str,
    hops: int,
    *,
    processes: int = 1,
    rate: float | None = None,
    suite: str = "ecdsa",
) -> dict[str, float]:
    """Run one measurement; ``store`` is ``sqlite`` or ``postgresql``; ``processes`` the worker
    processes of each node (``gateway serve --workers``); ``rate`` an offered load in hops/s
    (None: closed loop, CLOSED_LOOP_WINDOW requests outstanding); ``suite`` a key of
    :data:`PAIRS` (which pair of demo bodies exchanges, hence which signatures)."""
    pair = PAIRS[suite]
    from gateway.demo.setup import build_world

    cleanups = []
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
        bodies = (pair.sender, pair.receiver)
        world = build_world(Path(tmp), now=datetime.now(UTC), bodies=bodies)
        if store == "postgresql":
            for body in bodies:
                url, drop = _pg_schema(body.lower().replace("-", "_"))
                cleanups.append(drop)
                _with_database(world.nodes[body].config_path, url)
        sender_config = world.nodes[pair.sender].config_path
        receiver = _serve(world.nodes[pair.receiver].config_path, processes)
        sender = None
        try:
            # The receiver binds a free port (port 0) and says which; the depositary then
            # lists it in the directory the sender loads.
            _publish_peer_port(world, pair.receiver, _bound_port(receiver, "peer https"))
            token, database_url = _operator_token(sender_config)
            sender = _serve(sender_config, processes)
            api = f"http://127.0.0.1:{_bound_port(sender, 'API http')}/api/v1"
            return asyncio.run(
                _hops(api, token, database_url, hops, rate, sender.pid, receiver.pid, pair)
            )
        finally:
            for process in (sender, receiver):
                if process is not None:
                    _stop(process)
            for cleanup in cleanups:
                cleanup()


def _serve(config: Path, processes: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(config),
            "--workers",
            str(processes),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


CLOSED_LOOP_WINDOW = 64
"""Requests the case system keeps outstanding in the closed-loop runs: more than the sender's
DELIVERIES_IN_FLIGHT, so the pipeline is never starved by the client."""

WARM_UP_HOPS = 100
"""Hops before the clock starts: imports, first-use caches, connection set-up."""

POLL_SECONDS = 0.002
"""How often the case system looks for recorded receipts in the sender's store: the hop's end
is seen at most this late (it is part of the latency reported, never of the CPU per hop)."""


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (None: the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the workers of `gateway serve --workers`)."""
    found = []
    for entry in Path("/proc").iterdir():
        fields = _stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children still alive (the serve workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for one in [pid, *children_of(pid)]:
        fields = _stat_fields(one)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


class _ReceiptWatch:
    """Sees, from outside the node, when the sender has recorded each message's receipt: a
    thread asks the sender's store for the pending ids every POLL_SECONDS."""

    def __init__(self, database_url: str, loop: asyncio.AbstractEventLoop) -> None:
        import sqlalchemy as sa

        from gateway.store.tables import receipts

        self._engine = sa.create_engine(database_url)
        self._query = sa.select(receipts.c.message_id).where(
            receipts.c.direction == "in",
            receipts.c.message_id.in_(sa.bindparam("ids", expanding=True)),
        )
        self._loop = loop
        self._pending: dict[str, asyncio.Future[float]] = {}
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._poll, name="receipt-watch", daemon=True)
        self._thread.start()

    def expect(self, message_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = self._loop.create_future()
        with self._lock:
            self._pending[message_id] = future
        return future

    def _poll(self) -> None:
        while self._running:
            with self._lock:
                ids = list(self._pending)
            if ids:
                with self._engine.connect() as conn:
                    found = conn.execute(self._query, {"ids": ids}).scalars().all()
                seen = time.perf_counter()
                with self._lock:
                    for message_id in found:
                        future = self._pending.pop(message_id)
                        self._loop.call_soon_threadsafe(_resolve, future, seen)
            time.sleep(POLL_SECONDS)

    def close(self) -> None:
        self._running = False
        self._thread.join()
        self._engine.dispose()


async def _hops(
    api: str,
    token: str,
    database_url: str,
    hops: int,
    rate: float | None,
    sender_pid: int,
    receiver_pid: int,
    pair: Pair,
) -> dict[str, float]:
    """Post the case system's JSON to the sender's local API and time each hop until the
    sender has verified and recorded the receiver's signed Receipt."""
    import aiohttp

    document = request_document(pair)
    watch = _ReceiptWatch(database_url, asyncio.get_running_loop())
    try:
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            connector=aiohttp.TCPConnector(limit=CLOSED_LOOP_WINDOW),
        ) as http:

            async def hop() -> float:
                started = time.perf_counter()
                async with http.post(f"{api}/messages", json=document) as response:
                    body = await response.json()
                    if response.status != 202:
                        raise RuntimeError(f"submission refused: {response.status} {body}")
                finished = await asyncio.wait_for(watch.expect(body["message_id"]), 120)
                return finished - started

            await closed_loop(hop, min(WARM_UP_HOPS, max(5, hops // 10)), CLOSED_LOOP_WINDOW, [])
            return await timed_hops(hop, hops, rate, sender_pid, receiver_pid)
    finally:
        watch.close()


async def timed_hops(
    hop: Any, hops: int, rate: float | None, sender_pid: int, receiver_pid: int
) -> dict[str, float]:
    """Run ``hops`` hops (a closed loop of CLOSED_LOOP_WINDOW outstanding, or ``rate`` offered
    per second) and return throughput, p50/p99 (nearest rank) and the CPU milliseconds per hop
    of the sender's and the receiver's process and of this one (the case system)."""
    latencies: list[float] = []
    before = (
        time.process_time(),
        process_cpu_seconds(sender_pid),
        process_cpu_seconds(receiver_pid),
    )
    started = time.perf_counter()
    if rate is None:
        await closed_loop(hop, hops, CLOSED_LOOP_WINDOW, latencies)
    else:
        await open_loop(hop, hops, rate, latencies)
    wall = time.perf_counter() - started
    client_cpu = time.process_time() - before[0]
    sender_cpu = process_cpu_seconds(sender_pid) - before[1]
    receiver_cpu = process_cpu_seconds(receiver_pid) - before[2]
    latencies.sort()
    return {
        "hops_per_s": round(hops / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[min(hops - 1, int(hops * 0.99))] * 1000, 1),
        "sender_cpu_ms_per_hop": round(sender_cpu / hops * 1000, 2),
        "receiver_cpu_ms_per_hop": round(receiver_cpu / hops * 1000, 2),
        "client_cpu_ms_per_hop": round(client_cpu / hops * 1000, 2),
    }


def _operator_token(config_path: Path, scopes: tuple[str, ...] = ("operator",)) -> tuple[str, str]:
    """A case-system token with the operator role (as `gateway tokens add` makes one; or
    ``scopes``) in the node's store, and that store's URL."""
    import secrets

    from gateway.config import NodeConfig
    from gateway.store import migrate, open_store, tokens

    config = NodeConfig.from_toml(config_path)
    store = open_store(config.database_url)
    migrate(store.engine)
    token = secrets.token_urlsafe(32)
    with store.transaction() as conn:
        tokens.create(conn, token, label="benchmark", scopes=scopes, now=datetime.now(UTC))
    store.dispose()
    return token, config.database_url


def _resolve(waiter: asyncio.Future[float], at: float) -> None:
    if not waiter.done():
        waiter.set_result(at)


async def closed_loop(hop: Any, count: int, window: int, latencies: list[float]) -> None:
    remaining = count

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            latencies.append(await hop())

    await asyncio.gather(*(client() for _ in range(min(window, count))))


async def open_loop(hop: Any, count: int, rate: float, latencies: list[float]) -> None:
    """Offered load: a hop starts every 1/rate seconds whatever the previous ones do."""
    start = time.perf_counter()
    tasks = []
    for number in range(count):
        delay = start + number / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(hop()))
    latencies.extend(await asyncio.gather(*tasks))


if __name__ == "__main__":
    store = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    processes = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    rate = float(sys.argv[4]) if len(sys.argv) > 4 else None
    print(json.dumps(measure_gateway_hop(store, count, processes=processes, rate=rate)))

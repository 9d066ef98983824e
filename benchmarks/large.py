"""A large attachment end to end between two nodes on loopback (docs/attachments.md).

The case system uploads the file to the sender's local API (streamed), submits a request that
lists it, the sender signs and delivers the XML with the file as a streamed part, the receiver
checks the part's size and SHA-256 against the signed list while storing it encrypted, answers
with its signed Receipt; then the file is downloaded from the receiver's API (streamed) and
compared. Each node is its own ``gateway serve`` process; their resident memory (VmRSS) is
sampled from /proc every 20 ms during the exchange (``max_rss_mb_*``), beside what it was just
before (``rss_mb_*_before``) and the process's peak over its whole life, start-up included (VmHWM,
``lifetime_peak_rss_mb_*``).

The same run's floor for those bytes is measured too: generating them, SHA-256 and AES-GCM in
64 KiB segments in this process, once (what any node must at least do per pass).

    python -m benchmarks.large                  # 1 GB
    python -m benchmarks.large --bytes 100000000 --store postgresql

The last line is JSON: bytes, seconds, max_rss_mb_sender, max_rss_mb_receiver, floor_seconds,
floor_mb_s, mb_s; per phase (upload, delivery, download) its seconds and each node's CPU
seconds; loadavg.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from benchmarks.gateway_hop import (
    _operator_token,
    _pg_schema,
    _publish_peer_port,
    _stop,
    _with_database,
    request_document,
)

DEFAULT_BYTES = 1_000_000_000
PIECE = 1024 * 1024
SEGMENT = 64 * 1024
PURPOSE = "Исполнительное производство № 12345/26/77001-ИП: проверка вложения"
DELIVERY_WAIT_SECONDS = 3600.0
POLL_SECONDS = 0.02
"""The first wait before the receiver's API is asked again whether the file arrived."""
POLL_SHARE = 0.02
"""Later waits are this share of the time waited so far (20 ms at first, 100 ms after 5 s):
the delivery's figure is at most 2 % late, and the poll does not compete with the delivery for
the receiver's CPU (every request checks a token and reads the store: at every 20 ms that was
~15 % of the receiver's CPU during a delivery)."""


def _block() -> bytes:
    # One random mebibyte, varied per piece by its number: incompressible, cheap to make.
    return secrets.token_bytes(PIECE)


def _piece(block: bytes, number: int, size: int) -> bytes:
    head = number.to_bytes(8, "big")
    return (head + block[8:])[: min(PIECE, size - number * PIECE)]


def floor_seconds(size: int) -> float:
    """Generate, SHA-256 and AES-GCM (64 KiB segments) ``size`` bytes once, in this process."""
    block, aead, digest = _block(), AESGCM(AESGCM.generate_key(256)), hashlib.sha256()
    nonce = bytes(12)
    started = time.perf_counter()
    for number in range((size + PIECE - 1) // PIECE):
        piece = _piece(block, number, size)
        digest.update(piece)
        for at in range(0, len(piece), SEGMENT):
            aead.encrypt(nonce, piece[at : at + SEGMENT], None)
    return time.perf_counter() - started


def peak_rss_mb(pid: int, field: str = "VmHWM") -> float:
    """A live process's peak resident memory (``VmHWM``; ``VmRSS``: the current), in MB
    (1e6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no {field} for process {pid}")


class RssSampler:
    """The highest resident memory (VmRSS) of some processes, sampled every 20 ms while the
    exchange runs: what the file costs, apart from the start-up (imports, migrations, the
    directory's verification) that VmHWM, reported beside it, also holds."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peaks = {name: peak_rss_mb(pid, "VmRSS") for name, pid in pids.items()}
        self.at_start = dict(self.peaks)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            for name, pid in self.pids.items():
                self.peaks[name] = max(self.peaks[name], peak_rss_mb(pid, "VmRSS"))


async def _upload(http: Any, api: str, token: str, size: int) -> tuple[str, str]:
    block, digest = _block(), hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        for number in range((size + PIECE - 1) // PIECE):
            piece = _piece(block, number, size)
            digest.update(piece)
            yield piece

    async with http.post(
        f"{api}/attachments",
        params={"name": "scan.bin", "media_type": "application/octet-stream"},
        data=body(),
        headers={"Authorization": f"Bearer {token}", "Content-Length": str(size)},
    ) as response:
        answer = await response.json()
        assert response.status == 201, answer
    assert answer["size"] == size and answer["sha256"] == digest.hexdigest(), answer
    return str(answer["attachment_id"]), digest.hexdigest()


async def _submit(
    http: Any, api: str, token: str, attachment_id: str, document: dict[str, Any]
) -> str:
    document = document | {"attachments": [attachment_id]}
    async with http.post(
        f"{api}/messages", json=document, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        answer = await response.json()
        assert response.status == 202, answer
    return str(answer["message_id"])


async def _download(
    http: Any, api: str, token: str, message_id: str, delivered: Callable[[], None]
) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}", "X-Purpose": PURPOSE}
    started = time.monotonic()
    deadline = started + DELIVERY_WAIT_SECONDS
    url = f"{api}/messages/{message_id}/attachments/1"
    while True:
        async with http.get(url, headers=headers) as response:
            if response.status == 200:
                delivered()
                digest, size = hashlib.sha256(), 0
                async for chunk in response.content.iter_chunked(PIECE):
                    digest.update(chunk)
                    size += len(chunk)
                return size, digest.hexdigest()
            assert response.status == 404, await response.text()
        assert time.monotonic() < deadline, "the delivery did not arrive in time"
        await asyncio.sleep(max(POLL_SECONDS, POLL_SHARE * (time.monotonic() - started)))


def cpu_seconds(pid: int) -> float:
    """A live process's CPU time so far (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _exchange(
    sender_api: str,
    receiver_api: str,
    tokens: tuple[str, str],
    size: int,
    pids: dict[str, int],
    confidential: bool = False,
) -> dict[str, Any]:
    """The exchange, timed by phase: upload (to the sender's API), delivery (submission,
    signing, the streamed delivery, the receiver's checks, until the receiver's API serves the
    file), download (from the receiver's API); and each node's CPU seconds per phase."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    document = request_document()  # made before the clock starts: the case system's part
    if confidential:  # the parts then travel sealed to the recipient (docs/attachments.md)
        document["header"] = {**document["header"], "Confidential": True}
    marks: list[tuple[float, dict[str, float]]] = []

    def mark() -> None:
        marks.append((time.perf_counter(), {n: cpu_seconds(p) for n, p in pids.items()}))

    async with aiohttp.ClientSession(timeout=timeout) as http:
        mark()
        attachment_id, sha256 = await _upload(http, sender_api, tokens[0], size)
        mark()
        message_id = await _submit(http, sender_api, tokens[0], attachment_id, document)
        got_size, got_sha256 = await _download(http, receiver_api, tokens[1], message_id, mark)
        mark()
    assert (got_size, got_sha256) == (size, sha256), "the downloaded file differs"
    result: dict[str, Any] = {"seconds": round(marks[-1][0] - marks[0][0], 2)}
    for phase, (before, after) in zip(
        ("upload", "delivery", "download"), itertools.pairwise(marks), strict=True
    ):
        result[f"{phase}_seconds"] = round(after[0] - before[0], 2)
        for name in pids:
            result[f"{phase}_cpu_s_{name}"] = round(after[1][name] - before[1][name], 2)
    return result | {"message_id": message_id}


def _serve(config: Path, log: Path) -> subprocess.Popen[str]:
    # The node's log goes to a file (GATEWAY_LARGE_LOGS keeps it): a pipe nobody reads would
    # stop the node once full.
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
        )


def _ports(process: subprocess.Popen[str], seconds: float = 120.0) -> tuple[int, int]:
    """Peer and API ports from ``gateway serve``'s first line."""
    assert process.stdout is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        peer = re.search(r"peer https://[^:]+:(\d+)", line)
        api = re.search(r"API http://[^:]+:(\d+)", line)
        if peer and api:
            return int(peer.group(1)), int(api.group(1))
    raise RuntimeError(f"gateway serve did not start (exit code {process.poll()})")


def run(
    size: int,
    *,
    store: str = "sqlite",
    on_ready: Callable[[int, int], None] | None = None,
    confidential: bool = False,
    route: Callable[[int], int] | None = None,
) -> dict[str, Any]:
    """One measurement; ``store`` is ``sqlite`` or ``postgresql``; ``confidential``: in a
    confidential conversation (the file sealed end to end, read by a confidential reader).
    ``route``: given the receiver's peer port, the port the directory lists for it instead
    (a relay in between, ``benchmarks/resume.py``)."""
    from gateway.demo.setup import build_world

    cleanups = []
    with tempfile.TemporaryDirectory(prefix="gw-large-") as tmp:
        world = build_world(Path(tmp), now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))
        if store == "postgresql":
            for body in ("RU-FSSP", "KZ-MJ"):
                url, drop = _pg_schema(f"large_{body.lower().replace('-', '_')}")
                cleanups.append(drop)
                _with_database(world.nodes[body].config_path, url)
        sender_config = world.nodes["RU-FSSP"].config_path
        receiver_config = world.nodes["KZ-MJ"].config_path
        readers = ("operator", "confidential-reader") if confidential else ("operator",)
        receiver_token, _ = _operator_token(receiver_config, readers)
        logs = Path(os.environ.get("GATEWAY_LARGE_LOGS", tmp))
        receiver = _serve(receiver_config, logs / "receiver.log")
        sender = None
        try:
            peer_port, api_port = _ports(receiver)
            _publish_peer_port(world, "KZ-MJ", route(peer_port) if route else peer_port)
            receiver_api = f"http://127.0.0.1:{api_port}/api/v1"
            sender_token, _ = _operator_token(sender_config)
            sender = _serve(sender_config, logs / "sender.log")
            sender_api = f"http://127.0.0.1:{_ports(sender)[1]}/api/v1"
            if on_ready is not None:
                on_ready(sender.pid, receiver.pid)
            with RssSampler({"sender": sender.pid, "receiver": receiver.pid}) as rss:
                result = asyncio.run(
                    _exchange(
                        sender_api,
                        receiver_api,
                        (sender_token, receiver_token),
                        size,
                        {"sender": sender.pid, "receiver": receiver.pid},
                        confidential,
                    )
                )
            for side, pid in (("sender", sender.pid), ("receiver", receiver.pid)):
                result[f"max_rss_mb_{side}"] = round(rss.peaks[side], 1)
                result[f"rss_mb_{side}_before"] = round(rss.at_start[side], 1)
                result[f"lifetime_peak_rss_mb_{side}"] = round(peak_rss_mb(pid), 1)
        finally:
            for process in (sender, receiver):
                if process is not None:
                    _stop(process)
            for cleanup in cleanups:
                cleanup()
    return {"bytes": size, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bytes", type=int, default=DEFAULT_BYTES)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--confidential", action="store_true", help="in a confidential conversation (sealed)"
    )
    args = parser.parse_args()
    result = run(args.bytes, store=args.store, confidential=args.confidential)
    floor = floor_seconds(args.bytes)
    mb = args.bytes / 1e6
    result |= {
        "floor_seconds": round(floor, 2),
        "floor_mb_s": round(mb / floor, 1),
        "mb_s": round(mb / result["seconds"], 1),
        "store": args.store,
        "confidential": args.confidential,
        "cpus": os.cpu_count(),
        "loadavg": Path("/proc/loadavg").read_text().split()[0],
    }
    print(
        f"{mb:.0f} MB end to end in {result['seconds']} s ({result['mb_s']} MB/s); floor "
        f"(generate + SHA-256 + AES-GCM, one pass) {floor:.2f} s ({result['floor_mb_s']} MB/s); "
        f"peak RSS sender {result['max_rss_mb_sender']} MB, receiver "
        f"{result['max_rss_mb_receiver']} MB"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""A large delivery cut off mid-file, resumed (docs/attachments.md, "Resumable deliveries").

Two exchanges of ``benchmarks/large.py`` in one run, each through a TCP relay on loopback
between the two ``gateway serve`` processes (the directory lists the relay's port for the
receiver): the baseline, relayed whole; then the same size with the relay cutting the first
connection after ``--cut-at`` of the file's bytes. The sender's outbox retries after its
back-off (10 s at first), asks the receiver how much it holds, and sends the rest. Per relayed
connection: the bytes towards the receiver and its seconds; the retry's against the baseline's
delivery connection is what resuming saves.

    python -m benchmarks.resume                          # 1 GB, cut at 90 %
    python -m benchmarks.resume --bytes 200000000 --cut-at 0.5 --store postgresql
    python -m benchmarks.resume --confidential           # the file as sealed records

The last line is JSON: bytes, cut_at, baseline_connection_s, baseline_connection_bytes,
first_attempt_s, first_attempt_bytes, retry_connection_s, retry_bytes, delivery_seconds
(baseline, cut), store, confidential.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.large import run

DEFAULT_BYTES = 1_000_000_000


@dataclass
class Connection:
    started: float
    upstream: int = 0
    last_byte: float = 0.0
    """When the last byte passed either way: a kept-alive connection's idle end is not counted."""

    @property
    def seconds(self) -> float:
        return round(self.last_byte - self.started, 2)


@dataclass
class Relay:
    """A TCP relay in a thread of its own (the benchmark's event loop is busy with the
    exchange); cuts its first connection after ``cut_after`` bytes towards the receiver.
    ``on_retry`` is called when the second connection (the retry) opens."""

    cut_after: int | None
    connections: list[Connection] = field(default_factory=list)
    on_retry: Callable[[], None] | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def start(self, target: int) -> int:
        ready: list[int] = []
        started = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def open_() -> None:
                server = await asyncio.start_server(
                    lambda r, w: self._handle(r, w, target), "127.0.0.1", 0
                )
                ready.append(server.sockets[0].getsockname()[1])
                started.set()

            loop.run_until_complete(open_())
            loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        started.wait(10)
        return ready[0]

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: int
    ) -> None:
        cut = self.cut_after if not self.connections else None
        connection = Connection(time.perf_counter())
        self.connections.append(connection)
        if len(self.connections) == 2 and self.on_retry is not None:
            self.on_retry()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(256 * 1024):
                    connection.last_byte = time.perf_counter()
                    if up:
                        if cut is not None and connection.upstream + len(data) > cut:
                            dst.write(data[: cut - connection.upstream])
                            await dst.drain()  # the bytes before the cut all go through
                            connection.upstream = cut
                            break
                        connection.upstream += len(data)
                    dst.write(data)
                    await dst.drain()
            for end in (writer, up_writer):
                end.transport.abort() if cut is not None else end.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))


class RetryProfile:
    """py-spy sampling the receiver from the moment the retry's connection opens, for
    ``seconds``: where the retry's time goes on the receiver (collapsed stacks)."""

    def __init__(self, seconds: float) -> None:
        found = shutil.which("py-spy") or Path(sys.executable).with_name("py-spy")
        if not Path(found).exists():  # fail now, not in the relay's thread mid-run
            raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
        self.py_spy = str(found)
        self.seconds = seconds
        self.receiver_pid = 0
        self.output = Path(tempfile.mkdtemp(prefix="gw-resume-")) / "retry.txt"
        self.process: subprocess.Popen[bytes] | None = None

    def ready(self, sender_pid: int, receiver_pid: int) -> None:
        self.receiver_pid = receiver_pid

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.py_spy,
                "record",
                "--pid",
                str(self.receiver_pid),
                "--duration",
                str(int(self.seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(self.output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def shares(self) -> dict[str, float]:
        """The receiver's samples of the retry's request, by step (shares of their sum). The
        download that follows in the window (``read_stream``'s batches) is left out."""
        if self.process is not None:
            self.process.wait(timeout=self.seconds + 30)
        steps = {  # first match wins, in this order
            "reading back what is held": ("resumed (", "resume_sealed ("),
            "storing the rest": (
                "write (gateway/exchange/attachments.py",
                "write_sealed (",
                "finish (gateway/exchange/attachments.py",
            ),
            "verifying and storing the document": ("_pipeline (",),
            "reading the request (TLS, multipart, the question)": (
                "receive_delivery (",
                "held_part (",
            ),
        }
        counts = dict.fromkeys(steps, 0)
        lines = self.output.read_text().splitlines() if self.output.exists() else []
        for line in lines:
            stack, _, count = line.rpartition(" ")
            step = next((k for k, names in steps.items() if any(n in stack for n in names)), "")
            if step:
                counts[step] += int(count)
        total = sum(counts.values())
        return {step: round(n / total, 3) if total else 0.0 for step, n in counts.items()}


def measure(
    size: int,
    cut_at: float,
    store: str = "sqlite",
    confidential: bool = False,
    profile: bool = False,
) -> dict[str, Any]:
    """The baseline and the cut exchange of ``size`` bytes, and what each connection carried;
    ``confidential``: the file travels as sealed records (resumed as such); ``profile``: also
    sample the receiver during the retry (py-spy) and say where its time went."""
    whole, cut = Relay(None), Relay(int(size * cut_at))
    sampler = RetryProfile(seconds=15) if profile else None
    if sampler is not None:
        cut.on_retry = sampler.start
    baseline = run(size, store=store, route=whole.start, confidential=confidential)
    resumed = run(
        size,
        store=store,
        route=cut.start,
        confidential=confidential,
        on_ready=sampler.ready if sampler is not None else None,
    )
    delivery = max(whole.connections, key=lambda c: c.upstream)
    first, *retries = cut.connections
    retry = max(retries, key=lambda c: c.upstream)
    return {
        "bytes": size,
        "cut_at": cut_at,
        "baseline_connection_s": delivery.seconds,
        "baseline_connection_bytes": delivery.upstream,
        "first_attempt_s": first.seconds,
        "first_attempt_bytes": first.upstream,
        "retry_connection_s": retry.seconds,
        "retry_bytes": retry.upstream,
        "delivery_seconds": [baseline["delivery_seconds"], resumed["delivery_seconds"]],
        "store": store,
        "confidential": confidential,
        **({"retry_profile": sampler.shares()} if sampler is not None else {}),
        "cpus": os.cpu_count(),
        "loadavg": Path("/proc/loadavg").read_text().split()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bytes", type=int, default=DEFAULT_BYTES)
    parser.add_argument("--cut-at", type=float, default=0.9)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--confidential", action="store_true", help="in a confidential conversation (sealed)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="sample the receiver during the retry (py-spy)"
    )
    args = parser.parse_args()
    result = measure(args.bytes, args.cut_at, args.store, args.confidential, args.profile)
    mb = args.bytes / 1e6
    print(f"{mb:.0f} MB, the first connection cut after {args.cut_at:.0%} of the file's bytes")
    print("| run | connection | MB towards the receiver | seconds |")
    print("|---|---|---:|---:|")
    rows = [
        ("baseline", "delivery", "baseline_connection"),
        ("cut", "first attempt", "first_attempt"),
        ("cut", "retry (asks, then the rest)", "retry_connection"),
    ]
    for run_name, connection, key in rows:
        sent = result[f"{key}_bytes" if key != "retry_connection" else "retry_bytes"]
        print(f"| {run_name} | {connection} | {sent / 1e6:.1f} | {result[f'{key}_s']} |")
    shares = result.get("retry_profile", {})
    if shares and not any(shares.values()):
        print("the retry was over before py-spy sampled it: profile a larger file")
    for step, share in shares.items() if any(shares.values()) else ():
        print(f"the retry on the receiver: {share:.0%} {step}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

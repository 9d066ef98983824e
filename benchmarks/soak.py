"""Soak: two nodes on loopback carry 80 % of their measured maximum for N minutes (default 10).

The sender (RU-FSSP) and the receiver (KZ-MJ) each run as ``gateway serve`` (processes of their
own); this process is the case system posting the ~10 KB request of ``gateway_hop`` and watching
the sender's store for each recorded Receipt, so a hop is the whole round trip. First a short
closed-loop run measures the maximum (hops/s) unless ``--max-rate`` gives it; then hops are
offered at ``--load`` × that rate, open loop (a hop starts on time whatever the others do).

Every minute it reports the hops started, the errors (a non-202 answer, a failed POST or a
Receipt not recorded within HOP_TIMEOUT seconds), p50/p99 of the hop and the resident memory of
both nodes (their processes summed, sampled every RSS_SAMPLE_SECONDS). At the end: the errors,
RSS growth (mean of the last minute against the first) and p99 drift (last minute's p99 against
the first's); the last line is JSON.

    .venv/bin/python benchmarks/soak.py --minutes 10
    .venv/bin/python benchmarks/soak.py --minutes 2 --store postgresql --max-rate 40

(``--minute-seconds`` shortens the "minute" for a smoke run: tests/benchmarks/test_soak.py.)

Goal (#14): 0 errors, RSS growth under 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.gateway_hop import (  # noqa: E402
    CLOSED_LOOP_WINDOW,
    _bound_port,
    _operator_token,
    _pg_schema,
    _publish_peer_port,
    _ReceiptWatch,
    _serve,
    _stop,
    _with_database,
    children_of,
    closed_loop,
    request_document,
)

HOP_TIMEOUT = 60.0
"""Seconds a hop may take before it counts as an error: a Receipt later than that means the
node is not keeping up, whatever it does afterwards."""

MEASURE_SECONDS = 20.0
"""Length of the closed-loop run that measures the maximum: long enough for the pipeline to
fill (deliveries in flight, group commits), short beside the soak."""

RSS_SAMPLE_SECONDS = 5.0


@dataclass
class Minute:
    """What one minute of the soak saw (hops counted in the minute they started)."""

    started: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    """Failed hops by kind: ``timeout``, ``HTTP 503 DATABASE_UNAVAILABLE``, an exception's name."""
    latencies: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)

    def figures(self, number: int) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "minute": number,
            "hops": self.started,
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
            "p99_ms": round(_p99(ordered) * 1000, 1) if ordered else None,
            "rss_mb": round(statistics.fmean(self.rss_mb), 1) if self.rss_mb else None,
        }


def _p99(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its live children (the serve workers), in MB."""
    total = 0
    for one in [pid, *children_of(pid)]:
        try:
            status = Path(f"/proc/{one}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def _soak(
    api: str, token: str, database_url: str, args: argparse.Namespace, pids: list[int]
) -> dict[str, Any]:
    import aiohttp

    document = request_document()
    watch = _ReceiptWatch(database_url, asyncio.get_running_loop())
    try:
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=HOP_TIMEOUT),
        ) as http:

            async def hop() -> float:
                started = time.perf_counter()
                async with http.post(f"{api}/messages", json=document) as response:
                    body = await response.json()
                    if response.status != 202:
                        code = (body.get("error") or {}).get("code")
                        raise RuntimeError(f"HTTP {response.status} {code}")
                finished = await asyncio.wait_for(watch.expect(body["message_id"]), HOP_TIMEOUT)
                return finished - started

            max_rate = args.max_rate or await _measure_max(hop)
            rate = max_rate * args.load
            print(f"maximum {max_rate:.1f} hops/s; soaking at {rate:.1f} hops/s", flush=True)
            minutes = await _offer(hop, rate, args.minutes, args.minute_seconds, pids)
    finally:
        watch.close()
    return _summary(minutes, max_rate, rate, args)


async def _measure_max(hop: Any) -> float:
    """Closed loop for MEASURE_SECONDS after a warm-up: hops finished per second."""
    await closed_loop(hop, 50, CLOSED_LOOP_WINDOW, [])
    done: list[float] = []
    deadline = time.perf_counter() + MEASURE_SECONDS
    started = time.perf_counter()

    async def client() -> None:
        while time.perf_counter() < deadline:
            done.append(await hop())

    await asyncio.gather(*(client() for _ in range(CLOSED_LOOP_WINDOW)))
    return len(done) / (time.perf_counter() - started)


async def _offer(
    hop: Any, rate: float, minutes: int, minute: float, pids: list[int]
) -> list[Minute]:
    """Open loop at ``rate`` for ``minutes`` of ``minute`` seconds; each hop's outcome lands in
    the minute it started in."""
    results = [Minute() for _ in range(minutes)]
    start = time.perf_counter()
    end = start + minutes * minute
    tasks: set[asyncio.Task[None]] = set()

    async def one(into: Minute) -> None:
        try:
            into.latencies.append(await hop())
        except Exception as exc:  # every failure is a soak error, counted by kind
            kind = "timeout" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            if not into.errors:
                print(f"  error: {kind}", flush=True)
            into.errors[kind[:80]] += 1

    async def sample() -> None:
        while (now := time.perf_counter()) < end:
            results[min(minutes - 1, int((now - start) // minute))].rss_mb.append(
                sum(rss_mb(pid) for pid in pids)
            )
            await asyncio.sleep(min(RSS_SAMPLE_SECONDS, minute / 4))

    sampler = asyncio.create_task(sample())
    number = shown = 0
    while (due := start + number / rate) < end:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        current = results[int((due - start) // minute)]
        current.started += 1
        task = asyncio.create_task(one(current))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        number += 1
        if (now_minute := int((due - start) // minute)) > shown:
            shown = now_minute  # the minute before is offered in full (its last hops may run)
            print(f"  {json.dumps(results[shown - 1].figures(shown))}", flush=True)
    await sampler
    await asyncio.gather(*tasks)
    return results


def _summary(
    minutes: list[Minute], max_rate: float, rate: float, args: argparse.Namespace
) -> dict[str, Any]:
    per_minute = [m.figures(n + 1) for n, m in enumerate(minutes)]
    first, last = per_minute[0], per_minute[-1]
    growth = (
        round((last["rss_mb"] - first["rss_mb"]) / first["rss_mb"] * 100, 1)
        if first["rss_mb"] and last["rss_mb"]
        else None
    )
    drift = (
        round(last["p99_ms"] - first["p99_ms"], 1)
        if first["p99_ms"] is not None and last["p99_ms"] is not None
        else None
    )
    return {
        "store": args.store,
        "minutes": args.minutes,
        "max_hops_per_s": round(max_rate, 1),
        "offered_hops_per_s": round(rate, 1),
        "hops": sum(m.started for m in minutes),
        "errors": sum(sum(m.errors.values()) for m in minutes),
        "error_kinds": dict(sum((m.errors for m in minutes), Counter())),
        "rss_first_mb": first["rss_mb"],
        "rss_last_mb": last["rss_mb"],
        "rss_growth_pct": growth,
        "p99_first_ms": first["p99_ms"],
        "p99_last_ms": last["p99_ms"],
        "p99_drift_ms": drift,
        "per_minute": per_minute,
        "load_average_end": load_average(),
        "cpus": os.cpu_count(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from gateway.demo.setup import build_world

    cleanups = []
    with tempfile.TemporaryDirectory(prefix="gw-soak-") as tmp:
        world = build_world(Path(tmp), now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))
        if args.store == "postgresql":
            for body in ("RU-FSSP", "KZ-MJ"):
                url, drop = _pg_schema(f"soak_{body.lower().replace('-', '_')}")
                cleanups.append(drop)
                _with_database(world.nodes[body].config_path, url)
        sender_config = world.nodes["RU-FSSP"].config_path
        receiver = _serve(world.nodes["KZ-MJ"].config_path, args.workers)
        sender = None
        try:
            _publish_peer_port(world, "KZ-MJ", _bound_port(receiver, "peer https"))
            token, database_url = _operator_token(sender_config)
            sender = _serve(sender_config, args.workers)
            api = f"http://127.0.0.1:{_bound_port(sender, 'API http')}/api/v1"
            return asyncio.run(_soak(api, token, database_url, args, [sender.pid, receiver.pid]))
        finally:
            for process in (sender, receiver):
                if process is not None:
                    _stop(process)
            for cleanup in cleanups:
                cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--load", type=float, default=0.8, help="share of the maximum offered")
    parser.add_argument("--max-rate", type=float, default=0.0, help="skip the measurement")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="gateway serve --workers")
    parser.add_argument("--minute-seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.minutes < 1 or not 0 < args.load <= 1:
        parser.error("--minutes must be at least 1 and --load in (0, 1]")
    print(f"load average at start: {load_average()} on {os.cpu_count()} CPUs", flush=True)
    summary = run(args)
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if summary["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

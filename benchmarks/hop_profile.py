"""Where a hop's CPU goes: ``.venv/bin/python benchmarks/hop_profile.py [HOPS] [--profile]``.

Two nodes in this one process (no network, no HTTP: the shells called directly, one hop after
another), so each phase's CPU is measured alone: submit (JSON to a signed, queued document),
claim, outgoing, receive (the peer's whole receive: parse, verify, validate, judge, store,
sign the receipt) and record (the receipt verified and recorded). Prints CPU ms per hop and per
phase, SQL statements per phase, and with ``--profile`` the functions that cost most (cProfile,
by own time). With ``--calls`` it also counts the Python function calls of each phase (under
cProfile, so its CPU figures are inflated): unlike CPU time, that count does not move with the
machine's load, so it compares two trees on a busy machine. The last line is JSON. It
complements ``run.py``'s wall-clock figures: this is the profile behind them.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import functools
import io
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.gateway_hop import request_document  # noqa: E402

WARM_UP_HOPS = 20
PHASES = ("submit", "claim_due", "outgoing", "receive", "record_answer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CPU of one hop, per phase, in one process")
    parser.add_argument("hops", nargs="?", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile top list")
    parser.add_argument(
        "--calls", action="store_true", help="also count Python function calls per phase"
    )
    args = parser.parse_args(argv)
    if args.profile and args.calls:
        parser.error("--profile and --calls each run cProfile: choose one")

    from sqlalchemy import event

    from gateway.config import NodeConfig
    from gateway.demo.setup import build_world
    from gateway.exchange.node import Node
    from gateway.exchange.sending import Answer, DeliveryResult

    with tempfile.TemporaryDirectory(prefix="gw-profile-") as tmp:
        world = build_world(Path(tmp), now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))
        sender, receiver = (
            Node.from_config(NodeConfig.from_toml(world.nodes[body].config_path))
            for body in ("RU-FSSP", "KZ-MJ")
        )
        document = request_document()

        def hop() -> None:
            header, _ = sender.submit(document, actor="benchmark")
            claims = sender.claim_due("profile", 64)
            (claim,) = [c for c in claims if c.message_id == header.message_id]
            outgoing = sender.outgoing(claim)
            answer = receiver.receive(sender.body_id, outgoing.wire)
            result = sender.record_answer(claim, outgoing.signed, answer.body, Answer.RECEIPT)
            if result.outcome is not DeliveryResult.DELIVERED:
                raise RuntimeError(f"hop not delivered: {result}")

        for _ in range(WARM_UP_HOPS):
            hop()
        cpu: dict[str, float] = collections.Counter()
        statements: dict[str, int] = collections.Counter()
        current = ["-"]

        def count_statement(*_args: Any, **_kwargs: Any) -> None:
            statements[current[0]] += 1

        for node in (sender, receiver):
            event.listen(node.store.engine, "before_cursor_execute", count_statement)
        callers = {name: cProfile.Profile() for name in PHASES} if args.calls else {}
        for name in PHASES:
            owner = receiver if name == "receive" else sender
            work = getattr(owner, name)
            if args.calls:
                work = _counted(work, callers[name])
            setattr(owner, name, _timed(work, name, cpu, current))

        profiler = cProfile.Profile()
        started = time.process_time()
        if args.profile:
            profiler.enable()
        for _ in range(args.hops):
            hop()
        if args.profile:
            profiler.disable()
        total = time.process_time() - started
        sender.close()
        receiver.close()

    per_hop = {name: round(cpu[name] / args.hops * 1000, 2) for name in PHASES}
    sql = {name: round(statements[name] / args.hops, 1) for name in PHASES}
    calls = {name: round(pstats.Stats(callers[name]).total_calls / args.hops) for name in callers}
    profiled = " (under cProfile)" if args.profile or args.calls else ""
    print(f"# {args.hops} hops in one process{profiled}")
    calls_head = f" {'Python calls':>13}" if calls else ""
    print(f"{'phase':15} {'CPU ms/hop':>10} {'SQL statements':>15}{calls_head}")
    for name in PHASES:
        calls_cell = f" {calls[name]:13d}" if calls else ""
        print(f"{name:15} {per_hop[name]:10.2f} {sql[name]:15.1f}{calls_cell}")
    calls_total = f" {sum(calls.values()):13d}" if calls else ""
    print(f"{'hop':15} {total / args.hops * 1000:10.2f} {sum(sql.values()):15.1f}{calls_total}")
    if args.profile:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        print(out.getvalue())
    print(
        json.dumps(
            {
                "hops": args.hops,
                "cpu_ms_per_hop": round(total / args.hops * 1000, 2),
                "phases_cpu_ms": per_hop,
                "phases_sql_statements": sql,
                **({"phases_python_calls": calls} if calls else {}),
            }
        )
    )
    return 0


def _counted(work: Callable[..., Any], profiler: cProfile.Profile) -> Callable[..., Any]:
    @functools.wraps(work)
    def counted(*args: Any, **kwargs: Any) -> Any:
        profiler.enable()
        try:
            return work(*args, **kwargs)
        finally:
            profiler.disable()

    return counted


def _timed(
    work: Callable[..., Any], name: str, cpu: dict[str, float], current: list[str]
) -> Callable[..., Any]:
    @functools.wraps(work)
    def timed(*args: Any, **kwargs: Any) -> Any:
        current[0] = name
        started = time.process_time()
        try:
            return work(*args, **kwargs)
        finally:
            cpu[name] += time.process_time() - started
            current[0] = "-"

    return timed


if __name__ == "__main__":
    raise SystemExit(main())

"""Run the benchmark: ``.venv/bin/python benchmarks/run.py [--hops N] [--quick] [--profile]``.

Prints a table (measurement, store, hops/s, p50 ms, p99 ms, crypto ops/hop) and, as the very
last line, one JSON object: ``{"baselines": {name: {hops_per_s, p50_ms, p99_ms}}, "stores": {…}}``.
Every registered measurement runs single-process, then in a pool of ``--workers`` processes
(the parallel ceiling of this machine). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path

# Run as a script from the repository root: make ``benchmarks`` and ``gateway`` importable
# here and in the spawned pool workers (they inherit sys.path).
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.baselines import count_ops, make_raw_hop, make_signxml_hop  # noqa: E402
from benchmarks.documents import REQUEST_SIZE  # noqa: E402
from benchmarks.harness import (  # noqa: E402
    REGISTRY,
    Figures,
    Registered,
    RunSettings,
    hop_measurement,
    machine_note,
    register,
    reported_measurement,
    summary_json,
    table,
)

DEFAULT_HOPS = 2000
"""More than any burst: 20 hops above the p99, and long enough that warm-up does not count."""
QUICK_HOPS = 30
"""``--quick``: a few seconds, for a smoke check of the whole harness."""
PROFILE_HOPS = 50
PARALLEL_WORKERS = 2
"""This machine has two cores; the pool shows what both together can do."""


def register_baselines(size: int = REQUEST_SIZE) -> None:
    """Register the two baselines for requests of ``size`` bytes (once per process)."""
    if any(r.name == "signxml" for r in REGISTRY):
        return
    for name, make_hop in (("signxml", make_signxml_hop), ("raw floor", make_raw_hop)):
        factory = partial(make_hop, size=size)
        register(
            name, hop_measurement(name, factory, count=partial(count_ops, factory)), "baseline"
        )


OFFERED_RATE = 300.0
"""Hops per second offered in the fixed-rate run (the exchange-core issue's latency target)."""


STACK_FLOOR = "stack floor"


def register_stack_floor() -> None:
    """The least any gateway on our libraries can do per hop (benchmarks/stack_floor.py): two
    aiohttp nodes over mTLS, the raw floor's cryptography, one durable SQLAlchemy insert per
    document kept, on each store the gateway rows use (SQLite, PostgreSQL), and on SQLite at
    OFFERED_RATE. Between the raw floor and the gateway: what the stack costs, and what the
    gateway's own work costs."""
    from benchmarks.stack_floor import measure_stack_floor

    if any(r.name == STACK_FLOOR for r in REGISTRY):
        return
    offered = f"offered {OFFERED_RATE:.0f}/s"
    for name, store, rate, variant in (
        (STACK_FLOOR, "sqlite", None, ""),
        (f"{STACK_FLOOR} (postgresql)", "postgresql", None, ""),
        (f"{STACK_FLOOR} ({offered})", "sqlite", OFFERED_RATE, offered),
    ):
        register(
            name,
            reported_measurement(
                name,
                store,
                partial(measure_stack_floor, rate=rate, store=store),
                processes=2,
                variant=variant,
            ),
            kind="baseline",
            parallel=False,
        )


def ratios(results: list[tuple[Registered, Figures]]) -> str:
    """One comment line: each closed-loop gateway row and stack floor against the 2-process raw
    floor, and each gateway row against the stack floor on its store (what the gateway's own
    work costs)."""
    by_name = {figures.name: figures for _, figures in results}
    floor = by_name.get(f"raw floor ({PARALLEL_WORKERS} workers)")
    stacks = {
        figures.store: figures
        for _, figures in results
        if figures.name.startswith(STACK_FLOOR) and not figures.variant
    }
    parts = []
    for registered, figures in results:
        is_stack = any(figures is stack for stack in stacks.values())
        if (registered.kind != "store" and not is_stack) or figures.variant.startswith("offered"):
            continue  # an offered load's rate is the offer, not a capacity
        label = figures.name if is_stack else f"{figures.name} {figures.store}"
        against = []
        if floor:
            against.append(f"{figures.hops_per_s / floor.hops_per_s:.3f} × raw floor")
        stack = stacks.get(figures.store)
        if stack and not is_stack:
            against.append(f"{figures.hops_per_s / stack.hops_per_s:.3f} × stack floor")
        if against:
            parts.append(f"{label}: {', '.join(against)}")
    return "# " + "; ".join(parts) if parts else ""


def register_gateway_hops() -> None:
    """The gateway's full hop, from the case system's POST of JSON to the receipt recorded
    (two real `gateway serve` nodes over mTLS; it times itself): each store with 1 and 2
    worker processes per node, and a fixed-rate run at OFFERED_RATE."""
    from benchmarks.gateway_hop import measure_gateway_hop

    if any(r.name.startswith("gateway ") for r in REGISTRY):
        return
    for store in ("sqlite", "postgresql"):
        for processes in (1, 2):
            label = "gateway hop" if processes == 1 else f"gateway hop ({processes} processes)"
            register(
                f"gateway {store} x{processes}",
                reported_measurement(
                    label,
                    store,
                    partial(measure_gateway_hop, store, processes=processes),
                    processes=processes,
                ),
                kind="store",
                parallel=False,
            )
    # The same hop signed with GOST R 34.10-2012 (the supreme courts' pair; issue 18).
    register(
        "gateway sqlite gost",
        reported_measurement(
            "gateway hop (GOST 2012-256)",
            "sqlite",
            partial(measure_gateway_hop, "sqlite", processes=1, suite="gost2012-256"),
            processes=1,
            variant="gost2012-256",
        ),
        kind="store",
        parallel=False,
    )
    offered = f"offered {OFFERED_RATE:.0f}/s"
    register(
        "gateway sqlite offered",
        reported_measurement(
            f"gateway hop ({offered})",
            "sqlite",
            partial(measure_gateway_hop, "sqlite", processes=2, rate=OFFERED_RATE),
            processes=2,
            variant=offered,
        ),
        kind="store",
        parallel=False,
    )


def run(hops: int, workers: int, only: list[str] | None = None) -> list[tuple[Registered, Figures]]:
    """Run every registered measurement single-process, then with ``workers`` processes."""
    selected = [r for r in REGISTRY if not only or r.name in only]
    results = []
    for pool_size in (1, workers) if workers > 1 else (1,):
        for registered in selected:
            if pool_size > 1 and not registered.parallel:
                continue
            figures = registered.measure(RunSettings(hops=hops, workers=pool_size))
            cpu = f", {figures.cpu_ms_per_hop:.2f} CPU ms per hop" if figures.cpu_seconds else ""
            print(
                f"  measured {figures.name}: {figures.hops_per_s:,.1f} hops/s{cpu}",
                file=sys.stderr,
                flush=True,
            )
            results.append((registered, figures))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark the hop and its signature baselines: a table, then one JSON line."
    )
    parser.add_argument(
        "--hops", type=int, default=DEFAULT_HOPS, help="hops per measurement (default %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_HOPS} hops: a smoke run")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(PARALLEL_WORKERS, os.cpu_count() or 1),
        help="pool size of the parallel runs (1: no parallel run)",
    )
    parser.add_argument(
        "--request-kb",
        type=int,
        default=REQUEST_SIZE // 1024,
        help="size of the request in KiB, default %(default)s (the schema example padded; above "
        "~100 KiB its operative part exceeds the schema's 50,000 characters, which the "
        "baselines, validating nothing, do not mind)",
    )
    parser.add_argument(
        "--only", action="append", help="run only this measurement (repeatable), e.g. 'signxml'"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile the signxml and raw-floor hops (cProfile) and print where time goes",
    )
    args = parser.parse_args(argv)
    hops = QUICK_HOPS if args.quick else args.hops
    if hops < 1 or args.workers < 1 or args.request_kb < 1:
        parser.error("--hops, --workers and --request-kb must be at least 1")

    size = args.request_kb * 1024
    register_baselines(size)
    register_stack_floor()
    register_gateway_hops()
    note = machine_note()
    if args.profile:
        from benchmarks.profiling import format_profile, profile_hop

        profile_hops = min(PROFILE_HOPS, hops)
        for title, make_hop in (("signxml", make_signxml_hop), ("raw floor", make_raw_hop)):
            per_hop, buckets = profile_hop(partial(make_hop, size=size), profile_hops)
            print(format_profile(title, per_hop, buckets))
            print()
    results = run(hops, args.workers, args.only)
    print(note)
    print(table([figures for _, figures in results]))
    if line := ratios(results):
        print(line)
    print(summary_json(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

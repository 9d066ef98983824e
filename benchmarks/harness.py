"""Timing, the registry of measurements, the table and the final JSON line.

A *measurement* is a function ``(settings) -> Figures``. Most are built from a *hop factory*: a
picklable, top-level callable that sets a hop up (keys, documents, a store) and returns the hop
to run. :func:`time_hops` runs a factory's hop ``settings.hops`` times, in this process or in a
pool of worker processes (each sets up its own hop once), and returns throughput and latencies.

Register a measurement with :func:`register`. ``kind="baseline"`` lands in the JSON's
``baselines``; ``kind="store"`` (the gateway hop, one per store) lands in ``stores``.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

Hop = Callable[[], None]
"""One hop, set up and ready to run; raises if any verification fails."""

HopFactory = Callable[[], Hop]
"""Top-level (picklable) callable: sets a hop up once per process and returns it."""

WARMUP_HOPS = 3
"""Hops run before timing in every process: imports, caches and lazily built schemas warm up."""

SETUP_TIMEOUT_S = 300
"""Longest a pool worker may take to set up and warm up: generous for a gateway hop that
creates a database, yet a failed worker does not hang the run forever."""

CHUNK_HOPS = 10
"""Most hops per task handed to a pool worker: small enough to balance the workers, large
enough that task hand-off (pickling a list of latencies) stays below 1 % of the work."""


@dataclass(frozen=True)
class RunSettings:
    hops: int
    """Hops to time per measurement (all workers together)."""
    workers: int = 1
    """1: in this process; more: a process pool of that size (the parallel ceiling)."""


@dataclass(frozen=True)
class Figures:
    """What one measurement found."""

    name: str
    store: str
    """``-`` for baselines; ``sqlite``, ``postgresql`` for the gateway hop."""
    workers: int
    hops: int
    seconds: float
    """Wall time of the timed hops (workers started and warmed up before the clock starts)."""
    latencies_ms: tuple[float, ...] = field(repr=False)
    """One per hop, measured inside the process that ran it."""
    crypto_ops: CryptoOps | None = None
    cpu_seconds: float = 0.0
    """CPU time of the timed hops, all processes together: unlike wall time, barely moved by
    other programs competing for the cores."""
    variant: str = ""
    """What sets this run apart beyond store and processes (``offered 300/s``)."""

    @property
    def cpu_ms_per_hop(self) -> float:
        return self.cpu_seconds / self.hops * 1000.0

    @property
    def hops_per_s(self) -> float:
        return self.hops / self.seconds

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 99)

    def as_json(self) -> dict[str, float]:
        return {
            "hops_per_s": round(self.hops_per_s, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
        }


def percentile(values: tuple[float, ...] | list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a latency that happened)."""
    if not values:
        raise ValueError("no latencies to take a percentile of")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


# --- counting ------------------------------------------------------------------------------


@dataclass
class OpCounter:
    """Cryptographic operations done; filled during one untimed hop."""

    ecdsa_sign: int = 0
    ecdsa_verify: int = 0
    reference_digests: int = 0
    """SHA-256 over the C14N of a referenced part (header, body, envelope, SignedProperties,
    KeyInfo), at signing or verifying."""
    certificate_digests: int = 0
    """SHA-256 of the signing certificate (XAdES SigningCertificateV2), made or checked."""

    def freeze(self) -> CryptoOps:
        return CryptoOps(
            self.ecdsa_sign, self.ecdsa_verify, self.reference_digests, self.certificate_digests
        )


@dataclass(frozen=True)
class CryptoOps:
    """Cryptographic operations per hop."""

    ecdsa_sign: int
    ecdsa_verify: int
    reference_digests: int
    certificate_digests: int

    def summary(self) -> str:
        return (
            f"{self.ecdsa_sign} sign + {self.ecdsa_verify} verify + "
            f"{self.reference_digests}+{self.certificate_digests} SHA-256"
        )


# --- running hops ----------------------------------------------------------------------------


def _run_hops(hop: Hop, count: int) -> tuple[float, list[float]]:
    """Run ``count`` hops; return (CPU seconds, latencies in ms)."""
    latencies = []
    clock = time.perf_counter
    cpu_start = time.process_time()
    for _ in range(count):
        start = clock()
        hop()
        latencies.append((clock() - start) * 1000.0)
    return time.process_time() - cpu_start, latencies


_worker_hop: Hop | None = None


def _init_worker(factory: HopFactory, ready: Any) -> None:
    global _worker_hop
    try:
        _worker_hop = factory()
        _run_hops(_worker_hop, WARMUP_HOPS)
    except BaseException:
        ready.abort()  # release the parent at once instead of letting it wait for us
        raise
    ready.wait(SETUP_TIMEOUT_S)


def _worker_chunk(count: int) -> tuple[float, list[float]]:
    if _worker_hop is None:
        raise RuntimeError("worker was not initialised with a hop factory")
    return _run_hops(_worker_hop, count)


@dataclass(frozen=True)
class Timing:
    seconds: float
    """Wall time of all timed hops."""
    cpu_seconds: float
    latencies_ms: list[float]


def time_hops(factory: HopFactory, settings: RunSettings) -> Timing:
    """Run ``settings.hops`` hops of ``factory``'s hop, in one process or a pool."""
    if settings.hops < 1:
        raise ValueError("hops must be at least 1")
    if settings.workers == 1:
        hop = factory()
        _run_hops(hop, WARMUP_HOPS)
        start = time.perf_counter()
        cpu, latencies = _run_hops(hop, settings.hops)
        return Timing(time.perf_counter() - start, cpu, latencies)
    # spawn, not fork: a hop factory may open database engines or threads that must not be
    # inherited half-built; the set-up cost stays outside the clock anyway.
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(settings.workers + 1)
    # At least four chunks per worker, so that a short run still keeps every worker busy.
    size = max(1, min(CHUNK_HOPS, settings.hops // (settings.workers * 4)))
    chunks = [size] * (settings.hops // size)
    if settings.hops % size:
        chunks.append(settings.hops % size)
    with ProcessPoolExecutor(
        settings.workers, mp_context=context, initializer=_init_worker, initargs=(factory, ready)
    ) as pool:
        futures = [pool.submit(_worker_chunk, n) for n in chunks]
        try:
            ready.wait(SETUP_TIMEOUT_S)  # every worker has set up and warmed up: start the clock
        except threading.BrokenBarrierError as exc:
            raise RuntimeError(
                "a pool worker failed to set up its hop (or took longer than "
                f"{SETUP_TIMEOUT_S} s); run with --workers 1 to see the error"
            ) from exc
        start = time.perf_counter()
        chunks_done = [future.result() for future in futures]
        seconds = time.perf_counter() - start
    return Timing(
        seconds,
        sum(cpu for cpu, _ in chunks_done),
        [ms for _, latencies in chunks_done for ms in latencies],
    )


def hop_measurement(
    name: str,
    factory: HopFactory,
    store: str = "-",
    count: Callable[[], CryptoOps] | None = None,
) -> Callable[[RunSettings], Figures]:
    """A measurement timing ``factory``'s hop; ``count`` (optional) counts crypto ops per hop."""

    def measure(settings: RunSettings) -> Figures:
        ops = count() if count else None
        timing = time_hops(factory, settings)
        label = name if settings.workers == 1 else f"{name} ({settings.workers} workers)"
        return Figures(
            name=label,
            store=store,
            workers=settings.workers,
            hops=len(timing.latencies_ms),
            seconds=timing.seconds,
            latencies_ms=tuple(timing.latencies_ms),
            crypto_ops=ops,
            cpu_seconds=timing.cpu_seconds,
        )

    return measure


@dataclass(frozen=True)
class ReportedFigures(Figures):
    """Figures of a measurement that times itself and reports only the summary (for instance
    ``benchmarks/gateway_hop.py``'s ``measure_gateway_hop``, which returns a dict)."""

    reported: dict[str, float] = field(default_factory=dict)
    """``hops_per_s``, ``p50_ms``, ``p99_ms`` as the measurement reported them, and whatever
    else it reported (CPU ms per hop of each side)."""

    @property
    def cpu_ms_per_hop(self) -> float:
        return sum(v for k, v in self.reported.items() if k.endswith("_cpu_ms_per_hop"))

    def as_json(self) -> dict[str, float]:
        return dict(self.reported)

    @property
    def hops_per_s(self) -> float:
        return self.reported["hops_per_s"]

    @property
    def p50_ms(self) -> float:
        return self.reported["p50_ms"]

    @property
    def p99_ms(self) -> float:
        return self.reported["p99_ms"]


def reported_measurement(
    name: str,
    store: str,
    run_hops: Callable[[int], dict[str, float]],
    *,
    processes: int = 1,
    variant: str = "",
) -> Callable[[RunSettings], Figures]:
    """A measurement around ``run_hops(hops) -> {hops_per_s, p50_ms, p99_ms}``, e.g.
    ``partial(measure_gateway_hop, "sqlite")``. Register it with ``parallel=False``: it brings
    its own concurrency."""

    def measure(settings: RunSettings) -> Figures:
        reported = run_hops(settings.hops)
        missing = {"hops_per_s", "p50_ms", "p99_ms"} - set(reported)
        if missing:
            raise ValueError(f"measurement {name!r} did not report {sorted(missing)}")
        return ReportedFigures(
            name=name,
            store=store,
            workers=processes,
            hops=settings.hops,
            seconds=settings.hops / reported["hops_per_s"],
            latencies_ms=(),
            variant=variant,
            reported={k: float(v) for k, v in reported.items()},
        )

    return measure


# --- the registry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    name: str
    kind: Literal["baseline", "store"]
    measure: Callable[[RunSettings], Figures]
    parallel: bool = True
    """False: run once, single settings (the measurement brings its own concurrency)."""


REGISTRY: list[Registered] = []


def register(
    name: str,
    measure: Callable[[RunSettings], Figures],
    kind: Literal["baseline", "store"],
    parallel: bool = True,
) -> None:
    """Add a measurement; names are unique."""
    if any(r.name == name for r in REGISTRY):
        raise ValueError(f"measurement {name!r} is registered twice")
    REGISTRY.append(Registered(name, kind, measure, parallel))


# --- output ----------------------------------------------------------------------------------

BUSY_LOAD = 0.5
"""A one-minute load average above this means other processes compete for the cores."""


def machine_note() -> str:
    """One line on the machine: cores and load, so a reader can judge the figures."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    note = f"# {cores} CPU(s), load average {load:.2f} at start"
    if load > BUSY_LOAD:
        note += ": other processes compete for the cores, figures are lower bounds"
    return note


COLUMNS = ("measurement", "store", "hops/s", "p50 ms", "p99 ms", "CPU ms/hop", "crypto ops/hop")


def table(results: list[Figures]) -> str:
    """The results as a plain-text table, one row per measurement."""
    rows = [
        (
            f.name,
            f.store,
            f"{f.hops_per_s:,.1f}",
            f"{f.p50_ms:.2f}",
            f"{f.p99_ms:.2f}",
            f"{f.cpu_ms_per_hop:.2f}" if f.cpu_ms_per_hop else "-",
            f.crypto_ops.summary() if f.crypto_ops else "-",
        )
        for f in results
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(COLUMNS, *rows, strict=False)]
    numeric = {2, 3, 4, 5}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(COLUMNS), rule, *(line(r) for r in rows)])


def summary_json(results: list[tuple[Registered, Figures]]) -> str:
    """The final line: ``{"baselines": {name: figures}, "stores": {store: figures}}``.

    A store's entry is keyed by the store's name, with `` (N workers)`` added for pool runs.
    """
    baselines: dict[str, dict[str, float]] = {}
    stores: dict[str, dict[str, float]] = {}
    for registered, figures in results:
        if registered.kind == "baseline":
            baselines[figures.name] = figures.as_json()
        else:
            key = figures.store
            if figures.workers > 1:
                key = f"{key} ({figures.workers} workers)"
            if figures.variant:
                key = f"{key} ({figures.variant})"
            stores[key] = figures.as_json()
    return json.dumps({"baselines": baselines, "stores": stores}, ensure_ascii=False)

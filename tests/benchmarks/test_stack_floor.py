"""The stack floor does the transport and storage work it stands for, and run.py compares the
gateway's rows with it."""

from __future__ import annotations

import pytest

from benchmarks.harness import Figures, Registered, RunSettings, reported_measurement
from benchmarks.run import ratios
from benchmarks.stack_floor import measure_stack_floor


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_each_hop_crosses_both_nodes_and_is_kept_by_both(store: str) -> None:
    figures = measure_stack_floor(40, store=store)  # enough CPU for /proc's clock ticks
    # Warm-up hops are kept too: the counts are per hop of the whole run.
    assert figures["sender_documents_per_hop"] == 2.0  # the signed request, then its receipt
    assert figures["receiver_documents_per_hop"] == 1.0  # the verified request
    assert figures["hops_per_s"] > 0
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    # They sign and verify: ticks over forty hops. The case system's few milliseconds may fall
    # under one clock tick of /proc's CPU times, so its figure is not held to a bound.
    for side in ("sender", "receiver"):
        assert figures[f"{side}_cpu_ms_per_hop"] > 0


def _row(name: str, store: str, hops_per_s: float, kind: str, variant: str = "") -> tuple:
    measure = reported_measurement(
        name,
        store,
        lambda hops: {"hops_per_s": hops_per_s, "p50_ms": 1.0, "p99_ms": 2.0},
        variant=variant,
    )
    figures: Figures = measure(RunSettings(hops=1))
    return Registered(name, kind, measure, parallel=False), figures  # type: ignore[arg-type]


def test_the_ratio_line_sets_each_gateway_row_against_both_floors() -> None:
    line = ratios(
        [
            _row("raw floor (2 workers)", "-", 1000.0, "baseline"),
            _row("stack floor", "sqlite", 400.0, "baseline"),
            _row("stack floor (postgresql)", "postgresql", 200.0, "baseline"),
            _row("stack floor (offered 300/s)", "sqlite", 300.0, "baseline", "offered 300/s"),
            _row("gateway hop", "sqlite", 100.0, "store"),
            _row("gateway hop", "postgresql", 40.0, "store"),
            _row("gateway hop (offered 300/s)", "sqlite", 95.0, "store", "offered 300/s"),
        ]
    )
    assert line == (
        "# stack floor: 0.400 × raw floor; stack floor (postgresql): 0.200 × raw floor; "
        "gateway hop sqlite: 0.100 × raw floor, 0.250 × stack floor; "
        "gateway hop postgresql: 0.040 × raw floor, 0.200 × stack floor"
    )
    assert ratios([_row("signxml", "-", 90.0, "baseline")]) == ""

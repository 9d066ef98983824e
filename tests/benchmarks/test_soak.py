"""benchmarks/soak.py runs: two real nodes on loopback, an offered rate, per-"minute" figures and
the JSON summary as its last line (a smoke run: two 6-second minutes at a fixed rate)."""

from __future__ import annotations

import json

import pytest

from benchmarks import soak


@pytest.mark.slow
def test_a_short_soak_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    code = soak.main(["--minutes", "2", "--minute-seconds", "6", "--max-rate", "5"])
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert code == 0 and summary["errors"] == 0 and summary["error_kinds"] == {}, lines
    assert summary["offered_hops_per_s"] == 4.0  # 80 % of the given maximum
    assert summary["hops"] == 48  # 4 hops/s for two minutes of 6 s
    assert [m["minute"] for m in summary["per_minute"]] == [1, 2]
    assert all(m["hops"] == 24 and m["p99_ms"] > 0 for m in summary["per_minute"])
    assert summary["rss_first_mb"] > 50 and summary["rss_last_mb"] > 50  # both nodes' processes
    assert summary["rss_growth_pct"] is not None and summary["p99_drift_ms"] is not None

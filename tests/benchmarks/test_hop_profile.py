"""benchmarks/hop_profile.py runs and reports every phase of a hop (a smoke test, no timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_hop_profile_reports_each_phase() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/hop_profile.py", "3", "--calls"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["hops"] == 3
    phases = {"submit", "claim_due", "outgoing", "receive", "record_answer"}
    assert set(figures["phases_cpu_ms"]) == phases
    assert all(figures["phases_sql_statements"][phase] > 0 for phase in phases)
    # Python calls per phase, load-independent: a hop makes thousands, receive the most.
    calls = figures["phases_python_calls"]
    assert set(calls) == phases and all(calls[phase] > 0 for phase in phases)
    assert max(calls, key=calls.__getitem__) == "receive"
    assert figures["cpu_ms_per_hop"] >= sum(figures["phases_cpu_ms"].values()) * 0.9

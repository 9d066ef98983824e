"""Smoke test of benchmarks/receive_memory.py: a padded signed request passes the parser, is
verified and refused for its digest, and the JSON line reports the peak. A small request; the
figure itself is judged only loosely (a copy-per-step regression would pass 10x).

Run as a user runs it, in a process of its own: inside the test run's process, whose heap
holds the free pages of two thousand tests before it, a 2 MiB request could be received
without the resident set growing at all, and the figure read 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "receive_memory.py"


def test_a_padded_request_is_verified_refused_and_measured() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--mib", "2"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["disposition"], result["code"]) == ("refused", "SIGNATURE_HASH_FAILURE")
    assert 2 * 2**20 - 4096 < result["bytes"] <= 2 * 2**20
    assert 0 < result["growth_factor"] < 10

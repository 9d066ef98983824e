"""Smoke test of benchmarks/receive_memory.py: a padded signed request passes the parser, is
verified and refused for its digest, and the JSON line reports the peak. A small request; the
figure itself is judged only loosely (a copy-per-step regression would pass 10x)."""

from __future__ import annotations

import json

import pytest

from benchmarks import receive_memory


def test_a_padded_request_is_verified_refused_and_measured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert receive_memory.main(["--mib", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["disposition"], result["code"]) == ("refused", "SIGNATURE_HASH_FAILURE")
    assert 2 * 2**20 - 4096 < result["bytes"] <= 2 * 2**20
    assert 0 < result["growth_factor"] < 10

"""Smoke test of the conversion benchmark: it checks fast == reference, prints its table and
ends with its JSON line. One tiny repeat; the figures themselves are not judged."""

from __future__ import annotations

import json

import pytest

from benchmarks import convert_bench


def test_convert_bench_prints_a_table_and_a_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert convert_bench.main(["--repeats", "1", "--seconds", "0.001"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("request   fast") for line in lines)
    figures = json.loads(lines[-1])["convert"]
    assert figures["request"]["bytes"] >= 10_000
    assert set(figures["request"]) >= {"reference", "fast", "xml_to_json", "speedup"}
    assert figures["receipt"]["fast"] > 0

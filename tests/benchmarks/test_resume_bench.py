"""``benchmarks/resume.py`` on 12 MB: two ``gateway serve`` processes, the first delivery cut
after half the file by the relay between them; the retry carries only the rest (and the XML,
the question and TLS), and the file arrives whole (``benchmarks.large.run`` compares it)."""

from __future__ import annotations

import pytest

from benchmarks.resume import measure

pytestmark = pytest.mark.slow

SIZE = 12_000_000


def test_the_cut_delivery_resumes_with_the_rest_only() -> None:
    result = measure(SIZE, 0.5)
    print(f"\n{result}")
    assert result["first_attempt_bytes"] == SIZE // 2
    assert result["baseline_connection_bytes"] > SIZE
    # Held: the whole 64 KiB segments of what came before the cut, less the XML and framing.
    assert SIZE // 2 < result["retry_bytes"] < SIZE // 2 + 400_000, result

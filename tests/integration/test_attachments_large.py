"""A 300 MB attachment end to end, streamed, under a memory cap the test checks.

``benchmarks.large.run`` starts RU-FSSP and KZ-MJ as ``gateway serve`` processes of a fresh
demo world, uploads 300 MB to the sender's API, submits a request listing it, and downloads
it from the receiver's API once delivered, comparing size and SHA-256 (upload → sign →
deliver as a streamed part → verify → store encrypted → download). Each node's peak resident
memory (VmHWM) at the end may exceed its resident memory when it was ready (VmRSS, before
the file) by at most :data:`GROWTH_CAP_MB` — held whole, 300 MB would add 300 MB or more.

The absolute peak is reported beside: a node at rest is ~270 MB on this code base (schemas,
PKI, fonts, libraries), above the issue's 256 MB goal before any document arrives.
"""

from __future__ import annotations

import pytest

from benchmarks.large import peak_rss_mb, run

pytestmark = pytest.mark.slow

SIZE = 300_000_000
GROWTH_CAP_MB = 64.0
"""Two write batches (2 MiB each) and a few read batches per attachment in flight, aiohttp's
buffers and SQLite's page cache fit far below it."""


def test_a_300_mb_attachment_streams_through_both_nodes_in_bounded_memory() -> None:
    at_ready: dict[str, float] = {}

    def ready(sender: int, receiver: int) -> None:
        at_ready["sender"] = peak_rss_mb(sender, "VmRSS")
        at_ready["receiver"] = peak_rss_mb(receiver, "VmRSS")

    result = run(SIZE, on_ready=ready)  # asserts the downloaded file equals the uploaded one
    print(f"\n{result} (resident when ready: {at_ready})")
    assert result["bytes"] == SIZE
    for side in ("sender", "receiver"):
        growth = result[f"max_rss_mb_{side}"] - at_ready[side]
        assert growth <= GROWTH_CAP_MB, f"{side} grew by {growth:.0f} MB for a 300 MB file"

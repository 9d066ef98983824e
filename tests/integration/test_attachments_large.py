"""A 300 MB attachment end to end, streamed, under a memory cap the test checks.

``benchmarks.large.run`` starts RU-FSSP and KZ-MJ as ``gateway serve`` processes of a fresh
demo world, uploads 300 MB to the sender's API, submits a request listing it, and downloads
it from the receiver's API once delivered, comparing size and SHA-256 (upload → sign →
deliver as a streamed part → verify → store encrypted → download). Each node's peak resident
memory, sampled every 20 ms during the exchange, must stay under :data:`MEMORY_CAP_MB` and
within :data:`GROWTH_CAP_MB` of what it was just before — held whole, 300 MB would add 300 MB
or more. The whole life of each process is capped too (VmHWM, read after the exchange): its
start-up, which once peaked at ~270 MB for scrypt's 128 MiB unlocking the KEK (now in a helper
process, ``gateway.crypto.keys.kek``), included. The same in a confidential conversation, its
file sealed end to end.
"""

from __future__ import annotations

import pytest

from benchmarks.large import run

pytestmark = pytest.mark.slow

SIZE = 300_000_000
MEMORY_CAP_MB = 256.0
"""The issue's goal for each node while the file passes."""
GROWTH_CAP_MB = 64.0
"""Two write batches (2 MiB each) and a few read batches per attachment in flight, aiohttp's
buffers and SQLite's page cache fit far below it."""


@pytest.mark.parametrize("confidential", [False, True], ids=["plain", "confidential"])
def test_a_300_mb_attachment_streams_through_both_nodes_in_bounded_memory(
    confidential: bool,
) -> None:
    """``confidential``: sealed end to end (sent as stored, opened and checked by the receiver
    before it is stored as it came)."""
    result = run(SIZE, confidential=confidential)  # asserts the download equals the upload
    print(f"\n{result}")
    assert result["bytes"] == SIZE
    for side in ("sender", "receiver"):
        peak = result[f"max_rss_mb_{side}"]
        growth = peak - result[f"rss_mb_{side}_before"]
        assert peak <= MEMORY_CAP_MB, f"{side} reached {peak:.0f} MB"
        assert growth <= GROWTH_CAP_MB, f"{side} grew by {growth:.0f} MB for a 300 MB file"
        lifetime = result[f"lifetime_peak_rss_mb_{side}"]  # VmHWM: start-up and exchange
        assert lifetime <= MEMORY_CAP_MB, f"{side}'s process peaked at {lifetime:.0f} MB"

"""Ids the node makes: time-ordered UUIDs (version 7, RFC 9562 § 5.7).

A message, conversation or attachment id leads a dozen indexes (the message's own, its keys,
reports, receipts, attachments, tombstones; the conversation's pages). With random (version 4)
ids, the thousands of messages a purge transaction destroys, stored the same weeks, sit on
random pages of every one of those indexes, and each transaction reads and rewrites most of
their leaf pages; time-ordered ids put them side by side (docs/benchmarks.md measures both).
The first 48 bits are the Unix time in milliseconds, which the document's ``Created`` already
tells its reader; the other 74 bits are random, so an id still cannot be guessed.

Ids received from peers are whatever UUIDs they chose (the schema's ``c:Uuid`` takes any
version): nothing may rely on the order of an id, only on its being unique.
"""

from __future__ import annotations

import os
import time
import uuid

_MILLIS_MASK = (1 << 48) - 1
_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_RAND_A_BITS = 0xFFF
_RAND_B_MASK = (1 << 62) - 1


def time_ordered_uuid(unix_ms: int | None = None, random_bits: bytes | None = None) -> str:
    """A version 7 UUID in canonical lower-case form, for now (or for ``unix_ms``, with
    ``random_bits`` — ten bytes — instead of the operating system's randomness: for seeded
    benchmark data, never for a real id)."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = int.from_bytes(os.urandom(10) if random_bits is None else random_bits, "big")
    value = (
        (ms & _MILLIS_MASK) << 80
        | _VERSION_7
        | ((rand >> 62) & _RAND_A_BITS) << 64
        | _VARIANT_RFC
        | rand & _RAND_B_MASK
    )
    return str(uuid.UUID(int=value))

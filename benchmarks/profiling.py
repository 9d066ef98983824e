"""Where a hop's time goes, by cProfile, grouped into a few named buckets.

lxml's functions are compiled (Cython) and invisible to cProfile: their time is charged to the
Python function that called them. signxml funnels its lxml work through a few small methods
(``_fromstring``, ``_tostring``, ``_c14n``), so charging by caller still separates the work a
signature needs (C14N, digests, ECDSA) from signxml's defensive copies (serialise + re-parse).
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.harness import Hop

# (bucket, predicate on (filename, function name)); first match wins.
_BUCKETS: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    (
        "ECDSA sign/verify (cryptography)",
        lambda f, n: f == "~" and ("ECPrivateKey" in n or "ECPublicKey" in n),
    ),
    (
        "SHA-256 digests",
        lambda f, n: (
            n == "_get_digest" or ("Hash" in n and f == "~") or "sha256" in n or "fingerprint" in n
        ),
    ),
    ("C14N of signed parts (lxml)", lambda f, n: n == "_c14n"),
    ("signxml re-parse of copies (lxml)", lambda f, n: n == "_fromstring"),
    ("signxml serialise for copies (lxml)", lambda f, n: n == "_tostring"),
    (
        "hop's own parse + serialise (lxml)",
        lambda f, n: (
            (f.endswith("documents.py") and n == "parse_hardened")
            or (f.endswith("baselines.py") and n in {"hop", "seal"})
        ),
    ),
    ("XAdES schema check of each signature", lambda f, n: n == "validate_schema"),
    ("Id lookup by XPath per reference", lambda f, n: n == "_resolve_reference"),
    ("element lookups (find/findall)", lambda f, n: n in {"_find", "_findall"}),
    (
        "raw floor: signature tree, Id map, lookups (lxml)",
        lambda f, n: f.endswith("baselines.py") and n in {"raw_sign", "raw_verify", "_ids"},
    ),
)
OTHER = "other Python (tree building, tag helpers, certificates, glue)"


@dataclass(frozen=True)
class Bucket:
    name: str
    seconds: float
    share: float
    """Fraction of the profiled time."""
    calls_per_hop: float


def profile_hop(make_hop: Callable[[], Hop], hops: int) -> tuple[float, list[Bucket]]:
    """Profile ``hops`` hops; return (profiled seconds per hop, buckets largest first)."""
    hop = make_hop()
    hop()  # warm-up outside the profile
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(hops):
        hop()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    totals: dict[str, float] = {}
    calls: dict[str, int] = {}
    for (filename, _line, name), (_cc, ncalls, tottime, _ct, _callers) in stats.items():
        bucket = next((b for b, match in _BUCKETS if match(filename, name)), OTHER)
        totals[bucket] = totals.get(bucket, 0.0) + tottime
        calls[bucket] = calls.get(bucket, 0) + ncalls
    total = sum(totals.values())
    buckets = sorted(
        (
            Bucket(name, seconds, seconds / total, calls[name] / hops)
            for name, seconds in totals.items()
        ),
        key=lambda b: b.seconds,
        reverse=True,
    )
    return total / hops, buckets


def format_profile(title: str, per_hop: float, buckets: list[Bucket]) -> str:
    """A small table of the buckets, milliseconds per hop and share."""
    width = max(len(b.name) for b in buckets)
    lines = [f"{title}: {per_hop * 1000:.2f} ms per hop under cProfile; ms, share, calls per hop"]
    lines += [
        f"  {b.name.ljust(width)}  {b.share * per_hop * 1000:7.2f} ms  {b.share * 100:5.1f} %"
        f"  {b.calls_per_hop:6.0f}"
        for b in buckets
    ]
    return "\n".join(lines)

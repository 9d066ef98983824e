"""The outbox retry policy: when to try a delivery again, and when to give up. Pure code.

After a failed delivery the outbox asks :func:`next_attempt` what to do. The answer is either a
:class:`Retry` (the instant of the next attempt) or a :class:`DeadLetter` (stop; move the item to
the dead-letter queue and alert the operator, who may use another channel — CIS Art. 10 allows
fax or post, SC Art. 5.1 any technical means).

The delay is exponential back-off with *full jitter* (a uniform draw between zero and the
exponential ceiling, AWS Architecture Blog, "Exponential Backoff and Jitter", 2015): after an
outage all nodes' outboxes would otherwise retry in lock-step and knock the peer over again.
The random source and the current time are parameters; :func:`system_random` is the thin
production wrapper. Receivers deduplicate by message id, so a retry is always safe.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

BASE_DELAY = timedelta(seconds=10)
"""Ceiling of the first retry's delay. A failed POST to a peer is mostly a restart or a network
blip that heals in seconds; ten seconds keeps the first retry quick without hammering."""

MIN_DELAY = timedelta(seconds=1)
"""Floor of any delay: full jitter may draw zero, and an immediate retry in a tight loop would
spin the outbox on a peer that refuses connections at once."""

MULTIPLIER = 2.0
"""Growth of the ceiling per attempt: doubling reaches the cap in ~9 attempts (~40 minutes of
ceilings), the usual shape of progressive retries (Domibus, X-Road)."""

MAX_DELAY = timedelta(hours=1)
"""Cap on one delay. Longer gaps would make a peer that came back wait for hours for a request
with a 30-day deadline (CIS Art. 12; SC Art. 6.1); shorter ones add load and no value."""

MAX_AGE = timedelta(days=2)
"""Age after which an undelivered item is dead-lettered and the operator alerted. The deadline
is 30 (working) days; a document stuck for two days will not reach the peer by itself (a peer
down that long is an incident), and the operator still has the rest of the term to use another
channel (CIS Art. 10). An item enqueued on a Friday evening alerts by Sunday evening, before
the next working day begins."""

RandomSource = Callable[[], float]
"""Returns a float in [0, 1); inject ``random.Random(seed).random`` in tests."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: timedelta = BASE_DELAY
    multiplier: float = MULTIPLIER
    cap: timedelta = MAX_DELAY
    floor: timedelta = MIN_DELAY
    max_age: timedelta = MAX_AGE
    """Measured from the item's creation (first enqueue), not from the last attempt."""

    def __post_init__(self) -> None:
        if not (timedelta(0) < self.floor <= self.base <= self.cap):
            raise ValueError("RetryPolicy needs 0 < floor <= base <= cap")
        if self.multiplier < 1:
            raise ValueError("RetryPolicy.multiplier must be >= 1")
        if self.max_age <= timedelta(0):
            raise ValueError("RetryPolicy.max_age must be positive")

    def ceiling(self, failures: int) -> timedelta:
        """Upper bound of the delay after ``failures`` failed attempts (1 = the first failure)."""
        if failures < 1:
            raise ValueError("failures counts failed attempts and starts at 1")
        # Compare exponents before multiplying: multiplier ** 1000 overflows a float.
        seconds = self.base.total_seconds()
        cap = self.cap.total_seconds()
        for _ in range(failures - 1):
            seconds *= self.multiplier
            if seconds >= cap:
                return self.cap
        return min(timedelta(seconds=seconds), self.cap)


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True, slots=True)
class Retry:
    at: datetime
    """When to attempt again; never later than the item's dead-letter time."""
    delay: timedelta


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    """``max-age`` (tried for too long) or ``permanent`` (the peer refused it for good)."""
    age: timedelta
    alert_code: str = "OUTBOX_DEAD_LETTER"
    """Code for the operator alert the caller must raise."""


def next_attempt(
    *,
    failures: int,
    created_at: datetime,
    now: datetime,
    random: RandomSource,
    permanent: bool = False,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> Retry | DeadLetter:
    """Decide what follows the ``failures``-th failed delivery of an item created at ``created_at``.

    ``permanent`` marks failures a retry cannot fix (the peer's signed Rejection, an unknown
    recipient): the item is dead-lettered at once.
    """
    age = now - created_at
    if permanent:
        return DeadLetter("permanent", age)
    if age >= policy.max_age:
        return DeadLetter("max-age", age)
    draw = random()
    if not 0.0 <= draw < 1.0:
        raise ValueError(f"random source returned {draw!r}, not a float in [0, 1)")
    delay = max(policy.floor, policy.ceiling(failures) * draw)
    # One last attempt right at the limit rather than none: the next failure then dead-letters.
    at = min(now + delay, created_at + policy.max_age)
    return Retry(at, at - now)


def system_random() -> RandomSource:
    """The production random source (OS entropy; jitter needs no secrecy, but no seed either)."""
    return _random.SystemRandom().random

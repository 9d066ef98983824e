"""The token bucket: pure, time pinned."""

from __future__ import annotations

import pytest

from gateway.model.limits import PEER_BURST, PEER_RATE_PER_SECOND
from gateway.web.limits import (
    PerPeerRateLimiter,
    RateDecision,
    TokenBucket,
)


def test_full_bucket_allows_a_burst_then_refuses_with_the_wait() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3)
    state = bucket.full(now=100.0)
    decisions = []
    for _ in range(4):
        state, decision = bucket.take(state, now=100.0)
        decisions.append(decision)
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after == pytest.approx(0.5)
    assert decisions[-1].retry_after_header == "1"


def test_tokens_come_back_at_the_rate_and_never_above_capacity() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3)
    state = bucket.full(now=0.0)
    for _ in range(3):
        state, _ = bucket.take(state, now=0.0)
    state, decision = bucket.take(state, now=0.5)  # one token back after 0.5 s at 2/s
    assert decision.allowed
    state, decision = bucket.take(state, now=0.5)
    assert not decision.allowed
    state, decision = bucket.take(state, now=1000.0)  # long idle: refilled to capacity only
    assert decision.allowed
    assert state.tokens == pytest.approx(2.0)


def test_clock_going_back_adds_nothing() -> None:
    bucket = TokenBucket(rate=1.0, capacity=1)
    state, first = bucket.take(bucket.full(now=50.0), now=50.0)
    state, second = bucket.take(state, now=10.0)
    assert first.allowed and not second.allowed
    assert state.at == 50.0


def test_each_peer_has_its_own_bucket() -> None:
    limiter = PerPeerRateLimiter(TokenBucket(rate=1.0, capacity=2))
    assert [limiter.check("KZ-MJ", 0.0).allowed for _ in range(3)] == [True, True, False]
    assert limiter.check("RU-FSSP", 0.0).allowed
    assert limiter.check("KZ-MJ", 1.0).allowed


@pytest.mark.parametrize(("rate", "capacity"), [(0.0, 5), (-1.0, 5), (1.0, 0)])
def test_nonsense_policy_is_refused(rate: float, capacity: int) -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(rate=rate, capacity=capacity)


def test_defaults_are_the_named_constants() -> None:
    assert TokenBucket() == TokenBucket(PEER_RATE_PER_SECOND, PEER_BURST)
    assert RateDecision(True, 0.0).retry_after_header == "0"
    assert RateDecision(False, 2.2).retry_after_header == "3"

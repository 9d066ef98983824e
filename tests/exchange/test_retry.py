"""Outbox retry policy: full-jitter back-off with a cap, a floor and a dead-letter age."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.exchange.retry import (
    BASE_DELAY,
    DEFAULT_POLICY,
    MAX_AGE,
    MAX_DELAY,
    MIN_DELAY,
    DeadLetter,
    Retry,
    RetryPolicy,
    next_attempt,
    system_random,
)

CREATED = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def constant(value: float):  # type: ignore[no-untyped-def]
    return lambda: value


@pytest.mark.parametrize(
    ("failures", "ceiling"),
    [
        (1, BASE_DELAY),
        (2, BASE_DELAY * 2),
        (3, BASE_DELAY * 4),
        (30, MAX_DELAY),
        (10_000, MAX_DELAY),
    ],
)
def test_ceiling_doubles_up_to_the_cap(failures: int, ceiling: timedelta) -> None:
    assert DEFAULT_POLICY.ceiling(failures) == ceiling


def test_draw_scales_the_ceiling_and_the_floor_holds() -> None:
    now = CREATED + timedelta(minutes=1)
    almost_one = 0.999999
    top = next_attempt(failures=3, created_at=CREATED, now=now, random=constant(almost_one))
    assert isinstance(top, Retry)
    assert BASE_DELAY * 4 * 0.99 < top.delay <= BASE_DELAY * 4
    assert top.at == now + top.delay
    half = next_attempt(failures=3, created_at=CREATED, now=now, random=constant(0.5))
    assert half == Retry(now + BASE_DELAY * 2, BASE_DELAY * 2)
    zero = next_attempt(failures=3, created_at=CREATED, now=now, random=constant(0.0))
    assert zero == Retry(now + MIN_DELAY, MIN_DELAY)


def test_jitter_spreads_retries_of_items_that_failed_together() -> None:
    rng = random.Random(20261123)
    now = CREATED + timedelta(minutes=5)
    delays = {
        next_attempt(failures=8, created_at=CREATED, now=now, random=rng.random).delay
        for _ in range(200)
    }
    assert len(delays) > 190  # not in lock-step
    assert max(delays) <= DEFAULT_POLICY.ceiling(8)


def test_dead_letter_after_max_age_with_a_last_attempt_at_the_limit() -> None:
    just_before = CREATED + MAX_AGE - timedelta(seconds=30)
    last = next_attempt(failures=50, created_at=CREATED, now=just_before, random=constant(0.9))
    assert last == Retry(CREATED + MAX_AGE, timedelta(seconds=30))
    dead = next_attempt(
        failures=51, created_at=CREATED, now=CREATED + MAX_AGE, random=constant(0.9)
    )
    assert dead == DeadLetter("max-age", MAX_AGE)
    assert dead.alert_code == "OUTBOX_DEAD_LETTER"


def test_permanent_failure_dead_letters_at_once() -> None:
    now = CREATED + timedelta(seconds=2)
    result = next_attempt(
        failures=1, created_at=CREATED, now=now, random=constant(0.5), permanent=True
    )
    assert result == DeadLetter("permanent", timedelta(seconds=2))


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="random source"):
        next_attempt(failures=1, created_at=CREATED, now=CREATED, random=constant(1.0))
    with pytest.raises(ValueError, match="starts at 1"):
        DEFAULT_POLICY.ceiling(0)
    with pytest.raises(ValueError):
        RetryPolicy(base=timedelta(hours=2))  # base above the cap
    with pytest.raises(ValueError):
        RetryPolicy(multiplier=0.5)
    with pytest.raises(ValueError):
        RetryPolicy(max_age=timedelta(0))


def test_system_random_is_in_range() -> None:
    draw = system_random()
    assert all(0.0 <= draw() < 1.0 for _ in range(100))


@settings(max_examples=150, deadline=None)
@given(
    failures=st.integers(min_value=1, max_value=10_000),
    age=st.timedeltas(min_value=timedelta(0), max_value=MAX_AGE * 2),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_every_decision_is_bounded(failures: int, age: timedelta, draw: float) -> None:
    now = CREATED + age
    result = next_attempt(failures=failures, created_at=CREATED, now=now, random=constant(draw))
    if age >= MAX_AGE:
        assert isinstance(result, DeadLetter)
        return
    assert isinstance(result, Retry)
    assert timedelta(0) < result.delay <= MAX_DELAY
    assert result.at <= CREATED + MAX_AGE
    assert result.at == now + result.delay

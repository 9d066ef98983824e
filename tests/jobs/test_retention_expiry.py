"""Evaluating retention: time travel across each kind of boundary, with pinned clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from gateway.app.retention import (
    DEFAULT_POLICIES,
    ConversationEvents,
    Expiry,
    MessageDirection,
    MessageFacts,
    Period,
    PeriodUnit,
    PolicySet,
    RetentionEvent,
    RetentionPolicy,
    expires_at,
    parse_policies,
)
from gateway.model.profiles import PROFILES
from tests.jobs.policy_texts import GOOD

POLICIES = parse_policies(GOOD, Path("retention.toml"))
IN, OUT = MessageDirection.IN, MessageDirection.OUT
STORED = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)
NEVER_LATE = timedelta(days=365 * 99)


def facts(
    agreement: str = "cis-enforcement",
    kind: str = "Request",
    direction: MessageDirection = IN,
    sender: str = "KZ-MJ",
    recipient: str = "RU-FSSP",
    stored_at: datetime = STORED,
) -> MessageFacts:
    return MessageFacts(agreement, kind, direction, sender, recipient, stored_at)


def assert_boundary(expiry: Expiry, boundary: datetime, policy: str) -> None:
    """Not expired a microsecond before the boundary; expired at it and after."""
    assert expiry == Expiry(boundary, policy)
    assert not expiry.expired(boundary - TICK)
    assert expiry.expired(boundary)
    assert expiry.expired(boundary + timedelta(days=1))


def test_received_counts_from_stored_at_in_months_clamped_to_month_end() -> None:
    # 31 August + 18 months has no 31st: it ends on the last day of February.
    stored = datetime(2025, 8, 31, 10, 0, tzinfo=UTC)
    message = facts("ru-kz-supreme-courts", "Request", IN, "KZ-VS", "RU-VS", stored)
    expiry = expires_at(POLICIES, message, ConversationEvents())
    assert_boundary(expiry, datetime(2027, 2, 28, 10, 0, tzinfo=UTC), "courts-all")


def test_received_in_a_local_time_zone_is_counted_in_utc() -> None:
    almaty = timezone(timedelta(hours=5))
    stored = datetime(2026, 1, 1, 3, 0, tzinfo=almaty)  # 2025-12-31 22:00 UTC
    message = MessageFacts("ru-kz-supreme-courts", "Response", OUT, "RU-VS", "KZ-VS", stored)
    expiry = expires_at(POLICIES, message, ConversationEvents())
    assert_boundary(expiry, datetime(2027, 6, 30, 22, 0, tzinfo=UTC), "courts-all")


def test_conversation_closed_waits_for_the_close_then_counts_years_over_a_leap_day() -> None:
    message = facts(kind="Response", direction=OUT, sender="RU-FSSP", recipient="KZ-MJ")
    open_ = expires_at(POLICIES, message, ConversationEvents())
    assert open_ == Expiry(None, "cis-all")
    assert not open_.expired(STORED + NEVER_LATE)
    closed = ConversationEvents(conversation_closed_at=datetime(2028, 2, 29, 12, 0, tzinfo=UTC))
    expiry = expires_at(POLICIES, message, closed)
    assert_boundary(expiry, datetime(2033, 2, 28, 12, 0, tzinfo=UTC), "cis-all")


def test_proceeding_closed_ignores_the_conversation_close() -> None:
    message = facts()  # a request received from Kazakhstan: policy kz-requests
    only_conversation = ConversationEvents(conversation_closed_at=datetime(2026, 4, 1, tzinfo=UTC))
    pending = expires_at(POLICIES, message, only_conversation)
    assert pending == Expiry(None, "kz-requests")
    assert not pending.expired(STORED + NEVER_LATE)
    proceeding = ConversationEvents(
        conversation_closed_at=datetime(2026, 4, 1, tzinfo=UTC),
        proceeding_closed_at=datetime(2029, 12, 31, 23, 59, 59, tzinfo=UTC),
    )
    expiry = expires_at(POLICIES, message, proceeding)
    assert_boundary(expiry, datetime(2032, 12, 31, 23, 59, 59, tzinfo=UTC), "kz-requests")


def test_days_period_crosses_year_end() -> None:
    policies = PolicySet(
        (RetentionPolicy("short", RetentionEvent.RECEIVED, Period(90, PeriodUnit.DAYS)),),
        "test",
    )
    stored = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    expiry = expires_at(policies, facts(stored_at=stored), ConversationEvents())
    assert_boundary(expiry, datetime(2027, 2, 21, 10, 0, tzinfo=UTC), "short")


@pytest.mark.parametrize(
    ("message", "policy"),
    [
        (facts(sender="KZ-MJ"), "kz-requests"),
        (facts(kind="AdditionalInfoAnswer", sender="KZ-MJ"), "kz-requests"),
        (facts(kind="Response", sender="KZ-MJ"), "cis-all"),  # kind not in the exception
        (facts(sender="BY-FSSP"), "cis-all"),  # another state
        (
            facts(direction=OUT, sender="RU-FSSP", recipient="KZ-MJ"),
            "cis-all",
        ),  # sent, not received
    ],
)
def test_first_match_wins_and_party_is_the_other_side(message: MessageFacts, policy: str) -> None:
    assert POLICIES.select(message) is not None
    assert POLICIES.select(message).name == policy  # type: ignore[union-attr]


def test_no_matching_policy_keeps_the_message() -> None:
    only_cis = PolicySet(
        (
            RetentionPolicy(
                "cis",
                RetentionEvent.RECEIVED,
                Period(1, PeriodUnit.DAYS),
                agreements=frozenset({"cis-enforcement"}),
            ),
        ),
        "test",
    )
    message = MessageFacts("ru-kz-supreme-courts", "Request", IN, "KZ-VS", "RU-VS", STORED)
    expiry = expires_at(only_cis, message, ConversationEvents())
    assert expiry == Expiry(None, "")
    assert not expiry.expired(STORED + NEVER_LATE)


def test_naive_event_time_is_refused() -> None:
    message = facts(kind="Response")
    with pytest.raises(ValueError, match="naive"):
        expires_at(
            POLICIES, message, ConversationEvents(conversation_closed_at=datetime(2026, 1, 1))
        )


@pytest.mark.parametrize("agreement", sorted(PROFILES))
@pytest.mark.parametrize("direction", [IN, OUT])
def test_defaults_cover_every_kind_five_years_after_close(
    agreement: str, direction: MessageDirection
) -> None:
    closed = datetime(2026, 5, 17, 8, 30, tzinfo=UTC)
    for kind in PROFILES[agreement].kinds:
        message = MessageFacts(agreement, kind, direction, "KZ-MJ", "RU-FSSP", STORED)
        assert expires_at(DEFAULT_POLICIES, message, ConversationEvents()).at is None
        expiry = expires_at(
            DEFAULT_POLICIES, message, ConversationEvents(conversation_closed_at=closed)
        )
        assert expiry.at == datetime(2031, 5, 17, 8, 30, tzinfo=UTC)
        assert expiry.policy


def test_facts_from_a_store_row_with_plain_strings_match_like_enums() -> None:
    """The store's ``messages.direction`` is the text 'in'/'out'; matching must not care."""
    row = {
        "agreement": "cis-enforcement",
        "kind": "Request",
        "direction": "in",
        "sender": "KZ-MJ",
        "recipient": "RU-FSSP",
        "stored_at": STORED,
    }
    message = MessageFacts(**row)  # type: ignore[arg-type]
    assert message.party == "KZ-MJ"
    assert POLICIES.select(message).name == "kz-requests"  # type: ignore[union-attr]


def test_period_after_is_relativedelta_over_nine_years_of_starts() -> None:
    """``Period.after`` counts by hand what dateutil's relativedelta counted (month ends,
    29 February, the time of day kept): the same instant for every day of 2019-2027 at a
    time that moves through the day, for periods of 0 to 100 units."""
    from dateutil.relativedelta import relativedelta

    first = datetime(2019, 1, 1, tzinfo=UTC)
    for day in range(365 * 9):
        start = first + timedelta(days=day, minutes=37 * day, microseconds=day)
        for unit in PeriodUnit:
            for amount in (0, 1, 11, 12, 13, 18, 59, 100):
                expected = start + relativedelta(**{unit.value: amount})
                assert Period(amount, unit).after(start) == expected, (start, amount, unit)

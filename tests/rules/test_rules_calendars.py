"""Working calendars: the `holidays` package's data plus configured overrides."""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

import pytest
from holidays import HolidayBase, country_holidays
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.model.problems import ConfigurationError
from gateway.rules.calendars import WorkingCalendar, calendar_for


@cache
def _official(state: str, year: int) -> HolidayBase:
    return country_holidays(state, years=year)


def _official_working_day(state: str, d: date) -> bool:
    """Independent oracle straight from the package: weekday not a holiday, or a weekend day
    the package lists as a transferred working day."""
    hol = _official(state, d.year)
    if d.weekday() >= 5:
        return d in hol.weekend_workdays
    return d not in hol


@pytest.mark.parametrize(
    ("state", "day", "what"),
    [
        ("RU", date(2026, 6, 12), "Russia Day"),
        ("RU", date(2026, 11, 4), "Unity Day"),
        ("RU", date(2026, 1, 8), "New Year holidays"),
        ("RU", date(2026, 12, 31), "31 Dec 2026, day off moved from 4 Jan"),
        ("KZ", date(2026, 12, 16), "Independence Day"),
        ("KZ", date(2026, 3, 23), "Nauryz"),
        ("KZ", date(2026, 3, 25), "Nauryz (observed)"),
        ("KZ", date(2027, 1, 4), "New Year (observed, 2 Jan is a Saturday)"),
        ("RU", date(2026, 11, 21), "Saturday"),
        ("KZ", date(2026, 11, 22), "Sunday"),
    ],
)
def test_days_off(state: str, day: date, what: str) -> None:
    cal = calendar_for(state)
    assert not cal.is_working_day(day), what
    assert not _official_working_day(state, day), what


@pytest.mark.parametrize(
    ("state", "day"),
    [
        ("RU", date(2026, 11, 23)),  # an ordinary Monday
        ("KZ", date(2026, 12, 31)),  # Kazakhstan works on 31 December, Russia does not (2026)
        ("KZ", date(2026, 11, 4)),  # Russia's Unity Day is not Kazakh
        ("RU", date(2026, 12, 16)),  # Kazakhstan's Independence Day is not Russian
    ],
)
def test_working_days(state: str, day: date) -> None:
    assert calendar_for(state).is_working_day(day)


def test_transferred_working_saturday_from_the_package() -> None:
    # Russia 2025: the day off of Saturday 1 November was moved to Monday 3 November, so the
    # Saturday was a working day. The package lists it in weekend_workdays.
    transferred = country_holidays("RU", years=2025).weekend_workdays
    assert date(2025, 11, 1) in transferred
    cal = calendar_for("RU")
    for d in transferred:
        assert d.weekday() >= 5
        assert cal.is_working_day(d)
    assert not cal.is_working_day(date(2025, 11, 3))


def test_configured_extra_working_day_and_day_off() -> None:
    saturday, monday = date(2026, 11, 28), date(2026, 11, 30)
    cal = calendar_for("RU", extra_days_off=[monday], extra_working_days=[saturday])
    assert cal.is_working_day(saturday)
    assert not cal.is_working_day(monday)
    plain = calendar_for("RU")
    assert not plain.is_working_day(saturday)
    assert plain.is_working_day(monday)
    # A configured working day also wins over a package holiday.
    assert calendar_for("RU", extra_working_days=[date(2026, 6, 12)]).is_working_day(
        date(2026, 6, 12)
    )


def test_add_working_days_hand_checked_over_new_year() -> None:
    # From Fri 25 Dec 2026 in Russia: 28, 29, 30 Dec are working days 1-3; 31 Dec and
    # 1-8 Jan 2027 are off, 9-10 Jan a weekend; Mon 11 Jan is the 4th.
    assert calendar_for("RU").add_working_days(date(2026, 12, 25), 4) == date(2027, 1, 11)
    # Kazakhstan: 28-31 Dec are 1-4; 1 Jan off, 2-3 weekend, 4 Jan off (2 Jan observed);
    # Tue 5 Jan is the 5th.
    assert calendar_for("KZ").add_working_days(date(2026, 12, 25), 5) == date(2027, 1, 5)


def test_add_zero_negative_and_counting_backwards() -> None:
    cal = calendar_for("RU")
    assert cal.add_working_days(date(2026, 11, 21), 0) == date(2026, 11, 21)
    with pytest.raises(ValueError, match="0 or more"):
        cal.add_working_days(date(2026, 11, 21), -1)
    # From Mon 11 Jan 2027 back to Wed 30 Dec 2026: only 11 Jan lies in (30 Dec, 11 Jan].
    assert cal.working_days_between(date(2027, 1, 11), date(2026, 12, 30)) == -1
    assert cal.working_days_between(date(2026, 12, 30), date(2027, 1, 11)) == 1
    assert cal.working_days_between(date(2027, 1, 11), date(2027, 1, 11)) == 0


def test_a_calendar_without_working_days_fails_loudly() -> None:
    # Every day of four years configured off: the walk stops at its limit instead of looping.
    start = date(2026, 1, 1)
    off = [start + timedelta(days=i) for i in range(4 * 366)]
    cal = calendar_for("KZ", extra_days_off=off)
    with pytest.raises(ValueError, match="working days within"):
        cal.add_working_days(start, 1)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    state=st.sampled_from(["RU", "KZ", "BY"]),
    start=st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 10, 31)),
    n=st.integers(min_value=0, max_value=45),
)
def test_add_and_count_agree_with_the_package(state: str, start: date, n: int) -> None:
    cal = calendar_for(state)
    end = cal.add_working_days(start, n)
    assert cal.working_days_between(start, end) == n
    if n:
        assert _official_working_day(state, end)
        # No working day is skipped: the oracle counts n working days in (start, end].
        days = [start + timedelta(days=i) for i in range(1, (end - start).days + 1)]
        assert sum(_official_working_day(state, d) for d in days) == n
        assert cal.working_days_between(end, start) == -n


@pytest.mark.parametrize("state", ["XX", "ru", "RUS", "", "R1"])
def test_unknown_state_is_a_configuration_error(state: str) -> None:
    with pytest.raises(ConfigurationError, match="state"):
        calendar_for(state)


def test_same_date_as_day_off_and_working_day_is_refused() -> None:
    d = date(2026, 11, 28)
    with pytest.raises(ConfigurationError, match="2026-11-28"):
        calendar_for("KZ", extra_days_off=[d], extra_working_days=[d])


def test_datetimes_in_overrides_are_refused() -> None:
    from datetime import datetime

    with pytest.raises(ConfigurationError, match="extra_days_off"):
        WorkingCalendar("RU", frozenset({datetime(2026, 11, 23, 10, 0)}))  # type: ignore[arg-type]


def test_counting_over_years_and_its_limit() -> None:
    cal = calendar_for("KZ")
    # Two years overdue still counts (a reminder job meets old conversations).
    assert cal.working_days_between(date(2026, 1, 1), date(2028, 1, 1)) > 400
    with pytest.raises(ValueError, match="spans"):
        cal.working_days_between(date(2026, 1, 1), date(2060, 1, 1))


def test_year_without_data_is_an_error() -> None:
    with pytest.raises(ValueError, match="1991"):
        calendar_for("RU").is_working_day(date(1985, 5, 9))


def test_calendar_is_value_like() -> None:
    a = calendar_for("RU", extra_days_off=[date(2026, 11, 30)])
    b = calendar_for("RU", extra_days_off=(date(2026, 11, 30),))
    assert a == b
    assert hash(a) == hash(b)


@settings(max_examples=200, deadline=None)
@given(
    state=st.sampled_from(["RU", "KZ"]),
    start=st.dates(min_value=date(2020, 1, 1), max_value=date(2031, 12, 31)),
    days=st.integers(min_value=-800, max_value=800),
    overrides=st.booleans(),
)
def test_count_by_year_tables_equals_counting_day_by_day(
    state: str, start: date, days: int, overrides: bool
) -> None:
    """The count read from per-year tables is the count of every day walked one by one."""
    off = [start + timedelta(days=3), date(2026, 12, 31)] if overrides else []
    work = [start + timedelta(days=5 - start.weekday() % 7 + 7)] if overrides else []
    cal = calendar_for(state, extra_days_off=off, extra_working_days=set(work) - set(off))
    end = start + timedelta(days=days)
    low, high = min(start, end), max(start, end)
    walked = sum(cal.is_working_day(low + timedelta(days=i)) for i in range((high - low).days))
    walked += cal.is_working_day(high) - cal.is_working_day(low)
    assert cal.working_days_between(start, end) == (walked if end >= start else -walked)


@settings(max_examples=200, deadline=None)
@given(
    state=st.sampled_from(["RU", "KZ"]),
    start=st.dates(min_value=date(2020, 1, 1), max_value=date(2031, 12, 31)),
    n=st.integers(min_value=0, max_value=400),
    overrides=st.booleans(),
)
def test_add_by_year_tables_equals_walking_day_by_day(
    state: str, start: date, n: int, overrides: bool
) -> None:
    """The n-th working day found in the per-year tables is the one a walk of every day finds,
    across year ends and the node's overrides."""
    off = [start + timedelta(days=2), date(2026, 12, 31)] if overrides else []
    work = [start + timedelta(days=5 - start.weekday() % 7 + 7)] if overrides else []
    cal = calendar_for(state, extra_days_off=off, extra_working_days=set(work) - set(off))
    walked, remaining = start, n
    while remaining:
        walked += timedelta(days=1)
        remaining -= cal.is_working_day(walked)
    assert cal.add_working_days(start, n) == walked

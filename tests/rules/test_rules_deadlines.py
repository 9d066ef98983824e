"""Deadlines of CIS Art. 12 (30 working days) and SC Art. 6.1 (30 calendar days)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from gateway.model.problems import Severity
from gateway.model.profiles import CIS_ENFORCEMENT, RU_KZ_SUPREME_COURTS, AgreementProfile
from gateway.rules.calendars import calendar_for
from gateway.rules.deadlines import (
    Deadline,
    deadline_for,
    requested_deadline_problems,
    working_days_left,
)

CIS, SC = CIS_ENFORCEMENT, RU_KZ_SUPREME_COURTS


def _assert_cis_facts(state: str, received: date, due: date) -> None:
    """The due date is a working day and exactly 30 working days lie in (received, due]."""
    cal = calendar_for(state)
    assert cal.is_working_day(due)
    assert cal.working_days_between(received, due) == 30
    # and one day earlier would be only the 29th (no earlier day qualifies)
    assert cal.working_days_between(received, due - timedelta(days=1)) == 29


# (state, received on, due, why) — the counts are spelled out for the hand-checked ones.
HAND_CHECKED = [
    # RU from Fri 25 Dec 2026: 28-30 Dec = 3; 31 Dec off (moved from 4 Jan 2026), 1-8 Jan 2027
    # off, 9-10 weekend; 11-15 Jan = 8, 18-22 = 13, 25-29 = 18, 1-5 Feb = 23, 8-12 = 28,
    # 15 Feb = 29, Tue 16 Feb = 30.
    ("RU", date(2026, 12, 25), date(2027, 2, 16)),
    # RU from Tue 29 Dec 2026: 30 Dec = 1; 11-15 Jan = 6, ... 8-12 Feb = 26, 15-18 Feb = 30.
    ("RU", date(2026, 12, 29), date(2027, 2, 18)),
    # KZ from Fri 25 Dec 2026: 28-31 Dec = 4; 1 Jan off, 2-3 weekend, 4 Jan off (2 Jan
    # observed), 5-6 Jan = 6, 7 Jan off (Christmas), 8 Jan = 7; 11-15 = 12, 18-22 = 17,
    # 25-29 = 22, 1-5 Feb = 27, 8-10 Feb = 30.
    ("KZ", date(2026, 12, 25), date(2027, 2, 10)),
    # KZ from Tue 29 Dec 2026: 30-31 Dec = 2, 5-6 Jan = 4, 8 Jan = 5, 11-15 = 10, ... 8-12 Feb = 30.
    ("KZ", date(2026, 12, 29), date(2027, 2, 12)),
    # RU from Mon 1 Jun 2026: 2-5 = 4, 8-11 = 8, 12 Jun off (Russia Day), 15-19 = 13,
    # 22-26 = 18, 29-30 = 20, 1-3 Jul = 23, 6-10 = 28, 13-14 Jul = 30.
    ("RU", date(2026, 6, 1), date(2026, 7, 14)),
    # KZ from Tue 1 Dec 2026: 2-4 = 3, 7-11 = 8, 14-15 = 10, 16 Dec off (Independence Day),
    # 17-18 = 12, 21-25 = 17, 28-31 = 21, 5-6 Jan = 23, 8 Jan = 24, 11-15 = 29, Mon 18 Jan = 30.
    ("KZ", date(2026, 12, 1), date(2027, 1, 18)),
    # KZ from Mon 16 Mar 2026: 17-20 = 4, 23-25 Mar off (Nauryz), 26-27 = 6, 30 Mar-3 Apr = 11,
    # 6-10 = 16, 13-17 = 21, 20-24 = 26, 27-30 Apr = 30.
    ("KZ", date(2026, 3, 16), date(2026, 4, 30)),
    # RU from Mon 27 Oct 2025: 28-31 Oct = 4, Sat 1 Nov is a working day (5), 3-4 Nov off,
    # 5-7 = 8, 10-14 = 13, 17-21 = 18, 24-28 = 23, 1-5 Dec = 28, 8-9 Dec = 30.
    ("RU", date(2025, 10, 27), date(2025, 12, 9)),
    # RU from Wed 4 Nov 2026 (Unity Day itself): counting starts on Thu 5 Nov: 5-6 = 2,
    # 9-13 = 7, 16-20 = 12, 23-27 = 17, 30 Nov-4 Dec = 22, 7-11 = 27, 14-16 Dec = 30.
    ("RU", date(2026, 11, 4), date(2026, 12, 16)),
]


@pytest.mark.parametrize(("state", "received", "due"), HAND_CHECKED)
def test_cis_hand_checked_due_dates(state: str, received: date, due: date) -> None:
    d = deadline_for(CIS, received, calendar_for(state))
    assert d == Deadline(
        due=due, article="CIS Art. 12", working_days=True, shortened=False, counted_from=received
    )
    _assert_cis_facts(state, received, due)


@pytest.mark.parametrize("state", ["RU", "KZ", "BY", "KG", "AM"])
def test_cis_facts_hold_for_every_receipt_day_around_new_year(state: str) -> None:
    cal = calendar_for(state)
    for offset in range(-20, 20):
        received = date(2026, 12, 31) + timedelta(days=offset)
        _assert_cis_facts(state, received, deadline_for(CIS, received, cal).due)


def test_receipt_on_a_weekend_counts_from_the_next_day() -> None:
    cal = calendar_for("RU")
    saturday = deadline_for(CIS, date(2026, 11, 21), cal).due
    monday = deadline_for(CIS, date(2026, 11, 23), cal).due
    # Receipt on Saturday: Monday is working day 1; receipt on Monday: Tuesday is day 1.
    assert cal.working_days_between(saturday, monday) == 1


def test_the_national_holidays_push_the_due_date() -> None:
    # The same receipt day, two calendars: 4 Nov (Unity Day) is off in RU only.
    received = date(2026, 10, 30)
    ru = deadline_for(CIS, received, calendar_for("RU")).due
    kz = deadline_for(CIS, received, calendar_for("KZ")).due
    # RU: 2-3 Nov = 2, 4 Nov off, 5-6 = 4, 9-13 = 9, 16-20 = 14, 23-27 = 19, 30 Nov-4 Dec = 24,
    # 7-11 Dec = 29, Mon 14 Dec = 30.
    assert ru == date(2026, 12, 14)
    # KZ: 2-6 Nov = 5 (4 Nov is working), 9-13 = 10, ... 30 Nov-4 Dec = 25, 7-11 Dec = 30.
    assert kz == date(2026, 12, 11)


def test_configured_extra_working_day_shortens_and_day_off_lengthens() -> None:
    received = date(2026, 11, 23)
    plain = calendar_for("RU")
    base = deadline_for(CIS, received, plain).due
    with_saturday = calendar_for("RU", extra_working_days=[date(2026, 11, 28)])
    with_day_off = calendar_for("RU", extra_days_off=[date(2026, 12, 1)])
    assert deadline_for(CIS, received, with_saturday).due == plain.add_working_days(received, 29)
    assert deadline_for(CIS, received, with_day_off).due == plain.add_working_days(received, 31)
    assert deadline_for(CIS, received, with_saturday).due < base
    assert deadline_for(CIS, received, with_day_off).due > base


@pytest.mark.parametrize(
    ("state", "received", "due"),
    [
        # 23 Nov + 30 days = Wed 23 Dec 2026, a working day in both states.
        ("RU", date(2026, 11, 23), date(2026, 12, 23)),
        ("KZ", date(2026, 11, 23), date(2026, 12, 23)),
        # 6 Dec + 30 = Tue 5 Jan 2027: RU New Year holidays until Fri 8 Jan, weekend 9-10,
        # so Mon 11 Jan; in KZ 5 Jan is a working day.
        ("RU", date(2026, 12, 6), date(2027, 1, 11)),
        ("KZ", date(2026, 12, 6), date(2027, 1, 5)),
        # 16 Nov + 30 = Wed 16 Dec 2026: Independence Day in KZ → Thu 17 Dec; working in RU.
        ("RU", date(2026, 11, 16), date(2026, 12, 16)),
        ("KZ", date(2026, 11, 16), date(2026, 12, 17)),
        # 25 Dec + 30 = Sun 24 Jan 2027 → Mon 25 Jan in both.
        ("RU", date(2026, 12, 25), date(2027, 1, 25)),
        ("KZ", date(2026, 12, 25), date(2027, 1, 25)),
    ],
)
def test_sc_thirty_calendar_days_then_next_working_day(
    state: str, received: date, due: date
) -> None:
    cal = calendar_for(state)
    d = deadline_for(SC, received, cal)
    assert d.due == due
    assert (d.article, d.working_days, d.shortened) == ("SC Art. 6.1", False, False)
    nominal = received + timedelta(days=30)
    assert cal.is_working_day(d.due)
    assert all(
        not cal.is_working_day(nominal + timedelta(days=i)) for i in range((due - nominal).days)
    )


@pytest.mark.parametrize("profile", [CIS, SC])
def test_shorter_requested_deadline_replaces_the_agreements(profile: AgreementProfile) -> None:
    cal, received = calendar_for("KZ"), date(2026, 11, 23)
    statutory = deadline_for(profile, received, cal).due
    asked = date(2026, 12, 5)  # a Saturday: kept as asked
    d = deadline_for(profile, received, cal, requested_deadline=asked)
    assert (d.due, d.shortened, d.counted_from) == (asked, True, received)
    assert requested_deadline_problems(profile, received, asked, cal) == []
    # the same day as receipt is allowed
    assert deadline_for(profile, received, cal, received).due == received
    # equal to or later than the agreement's: the agreement's applies, not "shortened"
    for later in (statutory, statutory + timedelta(days=10)):
        d = deadline_for(profile, received, cal, requested_deadline=later)
        assert (d.due, d.shortened) == (statutory, False)
    [warning] = requested_deadline_problems(profile, received, statutory + timedelta(days=1), cal)
    assert warning.code == "REQUESTED_DEADLINE_LATER_THAN_AGREEMENT"
    assert warning.severity is Severity.WARNING


def test_requested_deadline_before_receipt() -> None:
    cal, received = calendar_for("RU"), date(2026, 11, 23)
    past = date(2026, 11, 20)
    # deadline_for ignores it ...
    d = deadline_for(CIS, received, cal, requested_deadline=past)
    assert (d.due, d.shortened) == (deadline_for(CIS, received, cal).due, False)
    # ... and the validation says why: without the creation date, an error.
    [error] = requested_deadline_problems(CIS, received, past, cal)
    assert (error.code, error.severity, error.article) == (
        "REQUESTED_DEADLINE_IN_PAST",
        Severity.ERROR,
        "CIS Art. 12",
    )
    assert error.path == "/Envelope/Header/RequestedDeadline"
    assert "2026-11-20" in error.message_ru
    # Created before the requested date, received after it: lapsed in transit, a warning.
    [warning] = requested_deadline_problems(CIS, received, past, cal, sent_on=date(2026, 11, 18))
    assert (warning.code, warning.severity) == (
        "REQUESTED_DEADLINE_PASSED_BEFORE_RECEIPT",
        Severity.WARNING,
    )
    # Created after the requested date: the request contradicts itself.
    [error] = requested_deadline_problems(CIS, received, past, cal, sent_on=date(2026, 11, 21))
    assert error.code == "REQUESTED_DEADLINE_IN_PAST"
    assert requested_deadline_problems(CIS, received, None, cal) == []


def test_working_days_left_and_overdue() -> None:
    cal, received = calendar_for("RU"), date(2026, 12, 25)
    d = deadline_for(CIS, received, cal)  # due Tue 16 Feb 2027
    assert working_days_left(d, received, cal) == 30
    assert working_days_left(d, date(2027, 1, 8), cal) == 27  # still New Year holidays
    assert working_days_left(d, date(2027, 2, 15), cal) == 1
    assert working_days_left(d, d.due, cal) == 0
    assert working_days_left(d, date(2027, 2, 17), cal) == -1
    assert (
        working_days_left(d, date(2027, 2, 22), cal) == -4
    )  # 17-19 Feb and Sat 20 Feb 2027 (a transferred working day); 22 Feb off
    # A shortened deadline on a Saturday: Friday is the last working day, Sunday is overdue.
    short = deadline_for(CIS, date(2026, 11, 23), cal, requested_deadline=date(2026, 11, 28))
    assert working_days_left(short, date(2026, 11, 27), cal) == 0
    assert working_days_left(short, date(2026, 11, 29), cal) == -1


def test_sc_days_left_are_calendar_days() -> None:
    cal = calendar_for("KZ")
    d = deadline_for(SC, date(2026, 11, 16), cal)  # due Thu 17 Dec 2026
    assert working_days_left(d, date(2026, 12, 12), cal) == 5  # a Saturday counts
    assert working_days_left(d, date(2026, 12, 20), cal) == -3

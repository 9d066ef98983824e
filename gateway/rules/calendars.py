"""Working-day calendars of the parties' states (CIS Art. 12: "30 рабочих дней").

Holidays, weekends and transferred working days come from the ``holidays`` package
(``country_holidays`` and its ``weekend_workdays``); nothing here lists holidays by hand. A node's
configuration may add days off (a decree the package does not know yet) and working days (a
transferred working Saturday), both of which override the package.

Counting follows Russian law on terms (ГК РФ ст. 191; АПК РФ ст. 113–114): a term in days starts
on the day *after* the event, and a term in working days counts only working days.

Cost: building one ``holidays`` year object takes ~6 ms for RU and ~1 ms for KZ, so year objects
are built once per (state, year) and shared; :func:`calendar_for` itself is cheap enough to call
per request. Year objects are built with ``expand=False`` so that a lookup never mutates a shared
object (``expand=True`` populates new years on read).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

from holidays import HolidayBase, country_holidays

from gateway.model.problems import ConfigurationError

STATE_CODE_PATTERN = re.compile(r"^[A-Z]{2}$")
"""ISO 3166-1 alpha-2, upper case: the form used in body ids (``RU-FSSP``)."""

MAX_SCAN_DAYS = 3 * 366
"""Longest span a single calendar walk may cover. Agreement terms are weeks (30 working days,
at most ~45 calendar days even over the Russian New Year holidays); a walk longer than three
years means a broken calendar (say, every day configured as a day off), not a real term."""

MAX_COUNT_SPAN_DAYS = 25 * 366
"""Longest span :meth:`WorkingCalendar.working_days_between` counts. Wider than any
conversation's life, so a reminder job counting days overdue never trips on an old one; a
wider span is a wrong date, refused rather than walked."""

_YEAR_CACHE_SIZE = 256
"""Year objects kept: ~10 states x a few years each in practice; 256 bounds memory if a caller
walks many years (each object is a few kilobytes)."""

_ONE_DAY = timedelta(days=1)


@lru_cache(maxsize=64)
def _state_holidays_class(state: str) -> type[HolidayBase]:
    """The ``holidays`` class for a state, or a ConfigurationError naming the state."""
    if not isinstance(state, str) or not STATE_CODE_PATTERN.fullmatch(state):
        raise ConfigurationError(
            f"calendar state {state!r} must be an ISO 3166-1 alpha-2 code in upper case, "
            "e.g. RU or KZ"
        )
    try:
        return type(country_holidays(state, years=(), expand=False))
    except NotImplementedError:
        raise ConfigurationError(
            f"no working-day calendar for state {state!r}: the holidays package does not know it; "
            "use a state it supports (RU, KZ, BY, KG, AM, TJ, UZ, AZ, MD, ...)"
        ) from None


@lru_cache(maxsize=_YEAR_CACHE_SIZE)
def _year_holidays(state: str, year: int) -> HolidayBase:
    """The package's holidays of one state and year, built once and never mutated afterwards.

    One object per year gives the same holidays and ``weekend_workdays`` as one multi-year object
    (checked for RU, KZ, BY, KG, AM, UZ, AZ, TJ, MD over 2000-2030).
    """
    cls = _state_holidays_class(state)
    if not cls.start_year <= year <= cls.end_year:
        raise ValueError(
            f"the holidays package has calendar data for {state} only for "
            f"{cls.start_year}-{cls.end_year}, not {year}"
        )
    return country_holidays(state, years=year, expand=False)


@dataclass(frozen=True, slots=True)
class WorkingCalendar:
    """Working days of one state: the package's calendar plus the node's overrides.

    Build it with :func:`calendar_for`; constructing it directly works the same.
    """

    state: str
    """ISO 3166-1 alpha-2 code of the state whose working days these are."""
    extra_days_off: frozenset[date] = field(default_factory=frozenset)
    """Days off the package does not know (a late decree); they win over the package."""
    extra_working_days: frozenset[date] = field(default_factory=frozenset)
    """Working days the package does not know (a transferred working Saturday); they win over
    the package's holidays and weekends."""

    def __post_init__(self) -> None:
        _state_holidays_class(self.state)  # unknown state: ConfigurationError now, not later
        for name in ("extra_days_off", "extra_working_days"):
            days = getattr(self, name)
            if not isinstance(days, frozenset):
                object.__setattr__(self, name, frozenset(days))
            if any(type(d) is not date for d in getattr(self, name)):
                raise ConfigurationError(
                    f"calendar {self.state}: {name} must hold dates (YYYY-MM-DD), not times"
                )
        both = self.extra_days_off & self.extra_working_days
        if both:
            listed = ", ".join(d.isoformat() for d in sorted(both))
            raise ConfigurationError(
                f"calendar {self.state}: {listed} configured both as extra day off and as extra "
                "working day; keep each date in one list only"
            )

    def is_working_day(self, d: date) -> bool:
        """True if ``d`` is a working day in this state (overrides first, then the package)."""
        if d in self.extra_working_days:
            return True
        if d in self.extra_days_off:
            return False
        return _year_holidays(self.state, d.year).is_working_day(d)

    def add_working_days(self, start: date, n: int) -> date:
        """The ``n``-th working day after ``start`` (``start`` itself never counts); ``start``
        for ``n == 0``.

        This is how a term "N working days from the event" ends: counting starts the next day
        (ГК РФ ст. 191). ``working_days_between(start, add_working_days(start, n)) == n``.
        """
        if n < 0:
            raise ValueError(f"n must be 0 or more working days, not {n}")
        try:
            found = self._nth_working_day_by_counts(start, n)
        except ValueError:  # a year without the package's data: walk the days one by one
            found = None
        if found is not None:
            return found
        d = start
        remaining = n
        for _ in range(MAX_SCAN_DAYS):
            if remaining == 0:
                return d
            d += _ONE_DAY
            if self.is_working_day(d):
                remaining -= 1
        if remaining == 0:
            return d
        raise ValueError(
            f"calendar {self.state}: no {n} working days within {MAX_SCAN_DAYS} days of "
            f"{start.isoformat()}; check the calendar's extra days off"
        )

    def _nth_working_day_by_counts(self, start: date, n: int) -> date | None:
        """:meth:`add_working_days` by the per-year counts of :func:`_working_days_by_day`
        (a search in each year the term crosses, not a walk of every day: a due date is
        computed on every step of a conversation); None when it lies more than
        :data:`MAX_SCAN_DAYS` days after ``start`` (the walk then reports it)."""
        if n == 0:
            return start
        year, day_of_year = start.year, start.timetuple().tm_yday
        wanted = _working_days_by_day(self, year)[day_of_year] + n
        while True:
            counts = _working_days_by_day(self, year)
            if counts[-1] >= wanted:
                # The first day of the year by which ``wanted`` working days have passed.
                found = date(year, 1, 1) + timedelta(days=bisect_left(counts, wanted) - 1)
                return found if (found - start).days <= MAX_SCAN_DAYS else None
            wanted -= counts[-1]
            year += 1
            if (date(year, 1, 1) - start).days > MAX_SCAN_DAYS:
                return None

    def working_days_between(self, start: date, end: date) -> int:
        """Working days ``d`` with ``start < d <= end``; when ``end < start``, minus the working
        days ``d`` with ``end < d <= start`` (so ``between(a, b) == -between(b, a)``).

        Read it as "working days from ``start`` to ``end``": a due date tomorrow is 1 away, a
        due date that was yesterday is -1 away when today is a working day.
        """
        if end == start:
            return 0
        if end < start:
            return -self.working_days_between(end, start)
        span = (end - start).days
        if span > MAX_COUNT_SPAN_DAYS:
            raise ValueError(
                f"calendar {self.state}: {start.isoformat()}..{end.isoformat()} spans {span} "
                f"days, more than the {MAX_COUNT_SPAN_DAYS} a count may cover"
            )
        try:
            return (
                sum(_working_days_by_day(self, year)[-1] for year in range(start.year, end.year))
                + _working_days_by_day(self, end.year)[end.timetuple().tm_yday]
                - _working_days_by_day(self, start.year)[start.timetuple().tm_yday]
            )
        except ValueError:  # a year without the package's data: count the days one by one
            return sum(self.is_working_day(start + timedelta(days=i)) for i in range(1, span + 1))

    def next_working_day(self, d: date) -> date:
        """``d`` if it is a working day, else the first working day after it (ГК РФ ст. 193)."""
        return d if self.is_working_day(d) else self.add_working_days(d, 1)


@lru_cache(maxsize=_YEAR_CACHE_SIZE)
def _working_days_by_day(calendar: WorkingCalendar, year: int) -> tuple[int, ...]:
    """Working days of ``calendar`` among the first ``k`` days of ``year``, for each ``k`` (0 to
    the year's length): a count between two dates is then two look-ups a year, not a walk of
    every day (the console counts days left for each row it shows)."""
    first = date(year, 1, 1)
    counts = [0]
    for i in range((date(year + 1, 1, 1) - first).days):
        counts.append(counts[-1] + calendar.is_working_day(first + timedelta(days=i)))
    return tuple(counts)


def calendar_for(
    state: str,
    extra_days_off: Iterable[date] = (),
    extra_working_days: Iterable[date] = (),
) -> WorkingCalendar:
    """The working calendar of ``state`` (ISO alpha-2) with the node's configured overrides.

    Cheap: the package's year objects are cached per (state, year) and built on first use.
    Raises ConfigurationError for a state the ``holidays`` package does not support or for a
    date listed both as day off and as working day.
    """
    return WorkingCalendar(state, frozenset(extra_days_off), frozenset(extra_working_days))

"""The one legal clock: a conversation's due date and days left, from its facts (CIS Art. 12;
SC Art. 6.1). Node, local service and API, console and jobs all ask this module; nothing else
turns instants into due dates.

Each date is fixed by three choices, the same on every node (docs/rules.md, Deadlines):

* **Which zone.** The day of receipt is the requested party's *local* date ("со дня получения"
  is a legal date where the request was received), in the zone the directory publishes for the
  requested body (``<TimeZone>``), else :data:`DEFAULT_ZONES` of its state. A request received
  at 01:30 in Almaty (20:30 UTC the day before) counts from the Almaty date. "Today" for days
  left and lateness is the requested party's local date too, so both nodes show the same count.
* **Which calendar.** The requested party's state's (the directory body's ``<Calendar>``):
  the days off and transferred working days the signed directory publishes for it (versioned),
  else the ``holidays`` package plus the node's configured extra days. Only a calendar both
  nodes read from the same signed directory is guaranteed to give both the same date.
* **Which pauses.** While the requested party waits on the requesting one (additional
  information, postponement, confidentiality, authenticity: ``CLOCK_PAUSED_IN`` of the
  machine) the term stops. A pause from local day A to local day B costs the days of the
  term's own unit in (A, B]: working days for CIS, calendar days for SC. The due date is then
  counted again from the day of receipt with the term lengthened by those days, so a
  working-day due date is always a working day.

Pure: the time "now" is a parameter; nothing reads the clock, a file or the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.model.directory import Directory
from gateway.model.problems import ConfigurationError, Problem
from gateway.model.profiles import profile
from gateway.rules.calendars import WorkingCalendar, calendar_for
from gateway.rules.deadlines import (
    Deadline,
    deadline_for,
    requested_deadline_problems,
    working_days_left,
)

DEFAULT_ZONES: Mapping[str, str] = MappingProxyType(
    {
        "RU": "Europe/Moscow",
        "KZ": "Asia/Almaty",
        "BY": "Europe/Minsk",
        "KG": "Asia/Bishkek",
        "AM": "Asia/Yerevan",
        "AZ": "Asia/Baku",
        "TJ": "Asia/Dushanbe",
        "UZ": "Asia/Tashkent",
        "MD": "Europe/Chisinau",
        "TM": "Asia/Ashgabat",
    }
)
"""The zone of a state's capital, used when the directory publishes no ``<TimeZone>`` for a
body. Russia spans eleven zones: a territorial body outside Moscow time must have its zone
published in the directory, or its day of receipt is the Moscow date."""

FALLBACK_ZONE = "UTC"
"""A state with no entry above and no published zone (a test state): UTC, said in the why."""

SOURCE_DIRECTORY = "directory"
SOURCE_HOLIDAYS = "holidays"


@dataclass(frozen=True, slots=True)
class Calendars:
    """Every state's working calendar and every body's zone, built once per directory.

    Build with :meth:`build`; a node rebuilds it when it takes a new directory.
    """

    by_state: Mapping[str, WorkingCalendar] = field(default_factory=dict)
    """Calendars built from the directory or the configuration; other states get the plain
    ``holidays`` calendar on first use."""
    sources: Mapping[str, str] = field(default_factory=dict)
    """``directory vN`` or ``holidays + node configuration`` per state in :attr:`by_state`."""
    zones: Mapping[str, str] = field(default_factory=dict)
    """Body id -> IANA zone published in the directory."""
    calendar_states: Mapping[str, str] = field(default_factory=dict)
    """Body id -> state whose calendar counts for it (the directory's ``<Calendar>``)."""

    @classmethod
    def build(
        cls,
        *,
        extra_days_off: Mapping[str, Iterable[date | str]] | None = None,
        extra_working_days: Mapping[str, Iterable[date | str]] | None = None,
        directory: Directory | None = None,
    ) -> Calendars:
        """Calendars from the node's configured extra days and the signed directory.

        A state whose calendar the directory publishes takes it (over the node's extra days:
        both nodes must count alike); every other state takes ``holidays`` plus the extras.
        """
        off = {s: _dates(v, s, "extra_days_off") for s, v in (extra_days_off or {}).items()}
        work = {
            s: _dates(v, s, "extra_working_days") for s, v in (extra_working_days or {}).items()
        }
        by_state: dict[str, WorkingCalendar] = {}
        sources: dict[str, str] = {}
        for state in sorted(set(off) | set(work)):
            by_state[state] = calendar_for(state, off.get(state, ()), work.get(state, ()))
            sources[state] = f"{SOURCE_HOLIDAYS} + node configuration"
        zones: dict[str, str] = {}
        calendar_states: dict[str, str] = {}
        if directory is not None:
            for published in directory.calendars:
                by_state[published.state] = calendar_for(
                    published.state, published.days_off, published.working_days
                )
                sources[published.state] = (
                    f"{SOURCE_DIRECTORY} v{directory.version}, calendar {published.state} "
                    f"v{published.version}"
                )
            for body in directory.bodies:
                calendar_states[body.id] = body.calendar
                if body.zone:
                    zones[body.id] = body.zone
        for body_id, name in zones.items():
            _zone(name, body_id)  # an unknown zone fails when the directory is taken
        return cls(by_state, sources, zones, calendar_states)

    def calendar(self, state: str) -> WorkingCalendar:
        found = self.by_state.get(state)
        return found if found is not None else calendar_for(state)

    def source(self, state: str) -> str:
        return self.sources.get(state, SOURCE_HOLIDAYS)

    def calendar_state_of(self, body_id: str) -> str:
        """The state whose calendar counts for ``body_id`` (CIS Art. 12: the requested
        party's)."""
        return self.calendar_states.get(body_id, body_id[:2])

    def zone_name_of(self, body_id: str) -> str:
        published = self.zones.get(body_id)
        if published:
            return published
        return DEFAULT_ZONES.get(body_id[:2], FALLBACK_ZONE)

    def zone_of(self, body_id: str) -> ZoneInfo:
        return _zone(self.zone_name_of(body_id), body_id)

    def local_date(self, body_id: str, instant: datetime) -> date:
        """The date ``instant`` falls on where ``body_id`` sits."""
        if instant.tzinfo is None:
            raise ValueError(f"instant {instant!r} must carry a time zone")
        return instant.astimezone(self.zone_of(body_id)).date()


def _zone(name: str, body_id: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"time zone {name!r} of {body_id} is not an IANA zone name (e.g. Asia/Almaty); "
            "the directory must publish a valid <TimeZone>"
        ) from None


def _dates(values: Iterable[date | str], state: str, name: str) -> tuple[date, ...]:
    out = []
    for value in values:
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value)
            except ValueError:
                raise ConfigurationError(
                    f"[calendar] {name}.{state}: {value!r} is not a date (YYYY-MM-DD)"
                ) from None
        out.append(value)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ClockFacts:
    """What a due date depends on, as both nodes record it."""

    agreement: str
    requested_party: str
    """Body id of the requested party: its zone and its state's calendar count."""
    received_at: datetime | None
    """Receipt of the request by the requested party; None: the clock has not started."""
    pauses: tuple[tuple[datetime, datetime | None], ...] = ()
    """(since, until) of each pause; until None: still paused."""
    requested_deadline: date | None = None
    """A shorter term the requesting party asked for (CIS Art. 12 para. 2)."""
    stopped_at: datetime | None = None
    """When an answer, refusal or withdrawal stopped the clock: it ends a pause still open
    (both nodes hold this instant; "now" differs between them)."""


@dataclass(frozen=True, slots=True)
class DueDate:
    """A due date with everything that fixed it (for docs, the console and the audit)."""

    due: date
    article: str
    working_days: bool
    """The term's unit: working days (CIS) or calendar days (SC)."""
    shortened: bool
    """``due`` is the shorter term the requesting party asked for."""
    received_on: date
    """The requested party's local date of receipt; the term runs from the next day."""
    zone: str
    calendar_state: str
    calendar_source: str
    paused_days: int
    """Days of the term's unit the pauses cost (added to the term)."""

    @property
    def why(self) -> str:
        """One line saying which calendar, zone and pauses fixed the date (Russian: console)."""
        unit = "раб. дн." if self.working_days else "дн."
        parts = [
            f"{self.article}: получен {self.received_on.isoformat()} ({self.zone})",
            f"календарь {self.calendar_state} ({self.calendar_source})",
        ]
        if self.paused_days:
            parts.append(f"приостановлен на {self.paused_days} {unit}")
        if self.shortened:
            parts.append("сокращённый срок по просьбе запрашивающей стороны")
        return "; ".join(parts)


def due_date(facts: ClockFacts, calendars: Calendars, now: datetime) -> DueDate | None:
    """The due date of a conversation; None before its request's receipt.

    ``now`` closes an open pause (the due date of a paused request moves on day by day),
    unless the clock has stopped: then the stop closes it.
    """
    if facts.received_at is None:
        return None
    rule = profile(facts.agreement).deadline
    body = facts.requested_party
    state = calendars.calendar_state_of(body)
    calendar = calendars.calendar(state)
    received_on = calendars.local_date(body, facts.received_at)
    end = facts.stopped_at if facts.stopped_at is not None else now
    paused = sum(
        _paused_days(
            calendars.local_date(body, since),
            calendars.local_date(body, until if until is not None else end),
            rule.working_days,
            calendar,
        )
        for since, until in facts.pauses
    )
    deadline = deadline_for(
        profile(facts.agreement), received_on, calendar, facts.requested_deadline, paused
    )
    return DueDate(
        due=deadline.due,
        article=rule.article,
        working_days=rule.working_days,
        shortened=deadline.shortened,
        received_on=received_on,
        zone=calendars.zone_name_of(body),
        calendar_state=state,
        calendar_source=calendars.source(state),
        paused_days=paused,
    )


def _paused_days(since: date, until: date, working: bool, calendar: WorkingCalendar) -> int:
    if until <= since:
        return 0
    if working:
        return calendar.working_days_between(since, until)
    return (until - since).days


def days_left(
    agreement: str, requested_party: str, due: date, now: datetime, calendars: Calendars
) -> int:
    """Days from the requested party's "today" to ``due``, in the term's unit.

    0: today is the last day; negative exactly when today is after ``due``.
    """
    rule = profile(agreement).deadline
    today = calendars.local_date(requested_party, now)
    calendar = calendars.calendar(calendars.calendar_state_of(requested_party))
    deadline = Deadline(due, rule.article, rule.working_days, False, due)
    return working_days_left(deadline, today, calendar)


def days_late(
    agreement: str, requested_party: str, due: date, answered_at: datetime, calendars: Calendars
) -> int:
    """How late an answer created at ``answered_at`` is, in the term's unit; 0 when on time
    (on the due date itself included, by the requested party's local date)."""
    return max(0, -days_left(agreement, requested_party, due, answered_at, calendars))


def requested_term_problems(
    agreement: str,
    requested_party: str,
    requested_deadline: date | None,
    received_at: datetime,
    calendars: Calendars,
    sent_at: datetime | None = None,
) -> list[Problem]:
    """:func:`gateway.rules.deadlines.requested_deadline_problems` with the dates taken in the
    requested party's zone and calendar: at submit ``received_at`` is now (the day it is sent),
    at receipt the instant of receipt and ``sent_at`` the request's ``env:Created``."""
    if requested_deadline is None:
        return []
    state = calendars.calendar_state_of(requested_party)
    return requested_deadline_problems(
        profile(agreement),
        calendars.local_date(requested_party, received_at),
        requested_deadline,
        calendars.calendar(state),
        sent_on=calendars.local_date(requested_party, sent_at) if sent_at is not None else None,
    )

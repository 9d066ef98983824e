"""When a request must be executed (CIS Art. 12; SC Art. 6.1).

* CIS: 30 *working* days from the day the requested party's enforcement authority received the
  request, by the requested party's calendar. Counting starts the next day (ГК РФ ст. 191), so
  the due date is the 30th working day after the day of receipt.
* SC: 30 *calendar* days from receipt "unless the parties agreed otherwise": the due date is the
  day of receipt plus 30 days. When that day is a day off in the requested party's state, the
  due date moves to the next working day there: the requested party's law governs execution
  (SC Art. 6.1 para. 2), and Russian law ends a term falling on a day off on the next working
  day (ГК РФ ст. 193).
* A shorter deadline asked by the requesting party (CIS Art. 12 para. 2; SC "unless agreed
  otherwise") replaces the agreement's when it is earlier and not before the day of receipt.
  It is kept as asked, even on a day off: the requesting party chose that date.
  A requested deadline that is later than the agreement's, or that lies before the day of
  receipt, is ignored here; :func:`requested_deadline_problems` tells the operator why.

Everything takes the date as a parameter; nothing reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from gateway.model.problems import Problem, Severity
from gateway.model.profiles import AgreementProfile
from gateway.rules.calendars import WorkingCalendar

REQUESTED_DEADLINE_PATH = "/Envelope/Header/RequestedDeadline"

DEFAULT_REMINDER_DAYS_BEFORE = 5
"""A working week: time enough to answer or to send a delay notice (CIS Art. 12 para. 3)."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """The date by which the requested party executes a request."""

    due: date
    """Last day to execute the request (the answer is on time if sent on this day)."""
    article: str
    """Where the term comes from, e.g. ``CIS Art. 12`` or ``SC Art. 6.1``."""
    working_days: bool
    """True: the agreement's term counts working days (CIS); False: calendar days (SC).
    Also the unit of :func:`working_days_left`."""
    shortened: bool
    """True: ``due`` is the shorter deadline the requesting party asked for."""
    counted_from: date
    """The day of receipt by the requested party ("со дня получения"). The term runs from
    the next day, so this day itself is not counted."""


def _statutory_due(
    profile: AgreementProfile, received_on: date, calendar: WorkingCalendar, paused: int = 0
) -> date:
    rule = profile.deadline
    if rule.working_days:
        return calendar.add_working_days(received_on, rule.days + paused)
    return calendar.next_working_day(received_on + timedelta(days=rule.days + paused))


def _lengthened(day: date, paused: int, working: bool, calendar: WorkingCalendar) -> date:
    if paused == 0:
        return day
    return calendar.add_working_days(day, paused) if working else day + timedelta(days=paused)


def deadline_for(
    profile: AgreementProfile,
    received_on: date,
    calendar: WorkingCalendar,
    requested_deadline: date | None = None,
    paused: int = 0,
) -> Deadline:
    """The deadline of a request received on ``received_on``.

    ``calendar`` is the requested party's (``profile.deadline.calendar_of``). A
    ``requested_deadline`` counts only when the profile allows a shorter one, it is earlier than
    the agreement's deadline and not before ``received_on``; otherwise the agreement's applies.
    ``paused``: days of the term's unit the clock stood still (gateway.rules.clock); they
    lengthen the agreement's term and a requested one alike, so a working-day due date stays
    a working day.
    """
    rule = profile.deadline
    due = _statutory_due(profile, received_on, calendar, paused)
    shortened = False
    if (
        requested_deadline is not None
        and rule.shorter_allowed
        and received_on <= requested_deadline
    ):
        asked = _lengthened(requested_deadline, paused, rule.working_days, calendar)
        if asked < due:
            due, shortened = asked, True
    return Deadline(
        due=due,
        article=rule.article,
        working_days=rule.working_days,
        shortened=shortened,
        counted_from=received_on,
    )


def requested_deadline_problems(
    profile: AgreementProfile,
    received_on: date,
    requested_deadline: date | None,
    calendar: WorkingCalendar,
    sent_on: date | None = None,
) -> list[Problem]:
    """What is wrong with a requested shorter deadline; empty when nothing is.

    ``received_on`` is the day of receipt by the requested party (when composing a request,
    pass the day it is sent). ``sent_on`` is the day the request was created (``env:Created``),
    when known.

    * before ``sent_on`` (or, without it, before ``received_on``) → ERROR
      ``REQUESTED_DEADLINE_IN_PAST``: the request contradicts itself; correct or remove it.
    * after ``sent_on`` but before ``received_on`` → WARNING
      ``REQUESTED_DEADLINE_PASSED_BEFORE_RECEIPT``: it lapsed in transit; the agreement's
      deadline applies.
    * later than the agreement's deadline → WARNING ``REQUESTED_DEADLINE_LATER_THAN_AGREEMENT``.
    * a profile that allows no shorter deadline → WARNING ``REQUESTED_DEADLINE_NOT_ALLOWED``.
    """
    if requested_deadline is None:
        return []
    rule = profile.deadline
    asked = requested_deadline.isoformat()
    earliest = sent_on if sent_on is not None else received_on
    if requested_deadline < earliest:
        when_ru = "даты составления запроса" if sent_on is not None else "даты получения запроса"
        when_en = "the request was created" if sent_on is not None else "the request was received"
        return [
            Problem(
                code="REQUESTED_DEADLINE_IN_PAST",
                path=REQUESTED_DEADLINE_PATH,
                message_ru=(
                    f"Запрошенный срок исполнения {asked} раньше {when_ru} {earliest.isoformat()}."
                ),
                message_en=f"requested deadline {asked} is before {when_en} ({earliest}).",
                remedy_ru="Укажите срок не ранее сегодняшнего дня или уберите его.",
                article=rule.article,
            )
        ]
    if not rule.shorter_allowed:
        return [
            Problem(
                code="REQUESTED_DEADLINE_NOT_ALLOWED",
                path=REQUESTED_DEADLINE_PATH,
                message_ru=(
                    "Соглашение не предусматривает сокращённый срок; применяется срок, "
                    f"установленный соглашением ({rule.article}), запрошенный срок {asked} "
                    "не учитывается."
                ),
                message_en=f"{profile.id} allows no shorter deadline; {asked} is ignored.",
                article=rule.article,
                severity=Severity.WARNING,
            )
        ]
    if requested_deadline < received_on:
        return [
            Problem(
                code="REQUESTED_DEADLINE_PASSED_BEFORE_RECEIPT",
                path=REQUESTED_DEADLINE_PATH,
                message_ru=(
                    f"Запрошенный срок {asked} истёк до получения запроса "
                    f"({received_on.isoformat()}); применяется срок, установленный соглашением "
                    f"({rule.article})."
                ),
                message_en=(
                    f"requested deadline {asked} passed before receipt on {received_on}; "
                    f"the {rule.article} deadline applies."
                ),
                remedy_ru="Исполните запрос в возможно короткий срок.",
                article=rule.article,
                severity=Severity.WARNING,
            )
        ]
    statutory = _statutory_due(profile, received_on, calendar)
    if requested_deadline > statutory:
        return [
            Problem(
                code="REQUESTED_DEADLINE_LATER_THAN_AGREEMENT",
                path=REQUESTED_DEADLINE_PATH,
                message_ru=(
                    f"Запрошенный срок {asked} позже срока по соглашению "
                    f"{statutory.isoformat()} ({rule.article}); применяется срок соглашения."
                ),
                message_en=(
                    f"requested deadline {asked} is later than the {rule.article} deadline "
                    f"{statutory}; the agreement's deadline applies."
                ),
                article=rule.article,
                severity=Severity.WARNING,
            )
        ]
    return []


def working_days_left(deadline: Deadline, today: date, calendar: WorkingCalendar) -> int:
    """Days left until ``deadline.due``, in the deadline's unit (working days for CIS,
    calendar days for SC).

    0: today is the last day (or, for working days, no working day remains before a due date
    that falls on a day off). Negative exactly when ``today`` is after the due date.
    """
    if not deadline.working_days:
        return (deadline.due - today).days
    left = calendar.working_days_between(today, deadline.due)
    if today > deadline.due:
        # A due date on a day off followed by more days off would otherwise read 0 although
        # the term has run out.
        return min(left, -1)
    return left

"""The one legal clock (gateway.rules.clock): zone, calendar and pauses of every due date.

The year test builds the Russian and the Kazakh node's clocks each from its own configuration
file (different extra days off, as two administrators would write them) and the one signed
directory, as :class:`gateway.exchange.node.Node` does, and checks they agree on every due date
of a year of receipts, around both local midnights, for both agreements, paused or not.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.config import NodeConfig
from gateway.exchange import conversation as machine
from gateway.exchange.recording import late_answer
from gateway.model.bodies import BodyLevel
from gateway.model.directory import BodyName, Directory, DirectoryBody, PublishedCalendar
from gateway.model.envelope import Header, Urgency
from gateway.model.problems import ConfigurationError, Severity
from gateway.rules.calendars import calendar_for
from gateway.rules.clock import (
    Calendars,
    ClockFacts,
    days_late,
    days_left,
    due_date,
    requested_term_problems,
)

MOSCOW, ALMATY = ZoneInfo("Europe/Moscow"), ZoneInfo("Asia/Almaty")
CIS, SC = "cis-enforcement", "ru-kz-supreme-courts"
PAIRS = {CIS: ("RU-FSSP", "KZ-MJ"), SC: ("RU-VS", "KZ-VS")}

# What each state notified the depositary (versioned): a KZ transfer decree the holidays
# package may lack (a working Saturday and the Monday it frees) and a RU day off.
KZ_PUBLISHED = PublishedCalendar(
    "KZ", 3, frozenset({date(2026, 7, 6)}), frozenset({date(2026, 7, 4)})
)
RU_PUBLISHED = PublishedCalendar("RU", 5, frozenset({date(2026, 12, 30)}))


def _body(body_id: str, zone: str = "") -> DirectoryBody:
    return DirectoryBody(
        id=body_id,
        state=body_id[:2],
        level=BodyLevel.CENTRAL,
        names=(BodyName("ru", body_id),),
        endpoint=f"https://{body_id.lower()}.example",
        certificates=(),
        calendar=body_id[:2],
        zone=zone,
    )


ZONES = {"RU": "Europe/Moscow", "KZ": "Asia/Almaty"}
DIRECTORY = Directory(
    version=7,
    issued_at=datetime(2026, 1, 1, tzinfo=UTC),
    depositary="CIS-EC",
    bodies=tuple(_body(b, ZONES[b[:2]]) for pair in PAIRS.values() for b in pair),
    calendars=(RU_PUBLISHED, KZ_PUBLISHED),
)


def _node_clock(tmp_path: Path, body_id: str, calendar_toml: str) -> Calendars:
    """A node's calendars as Node builds them: its configuration file and the directory."""
    path = tmp_path / f"{body_id}.toml"
    path.write_text(f'[node]\nbody_id = "{body_id}"\n\n[calendar]\n{calendar_toml}\n', "utf-8")
    config = NodeConfig.from_toml(path)
    return Calendars.build(
        extra_days_off=config.calendar.extra_days_off,
        extra_working_days=config.calendar.extra_working_days,
        directory=DIRECTORY,
    )


@pytest.fixture(scope="module")
def node_clocks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Calendars, Calendars]:
    tmp = tmp_path_factory.mktemp("clocks")
    # Each administrator configured only what they heard of: they disagree.
    ru = _node_clock(tmp, "RU-FSSP", 'extra_days_off = { RU = ["2026-05-04"] }')
    kz = _node_clock(
        tmp,
        "KZ-MJ",
        'extra_days_off = { KZ = ["2026-07-06", "2026-12-18"] }\n'
        'extra_working_days = { KZ = ["2026-07-04"] }',
    )
    return ru, kz


def _receipt_times(day: date) -> list[datetime]:
    """Instants around midnight in Moscow and in Almaty, and the middle of the day."""
    out = []
    for zone in (MOSCOW, ALMATY):
        midnight = datetime.combine(day, time(0, 0), zone)
        for minutes in (-90, -1, 0, 1, 90):
            out.append((midnight + timedelta(minutes=minutes)).astimezone(UTC))
    out.append(datetime.combine(day, time(12, 0), UTC))
    return out


def test_both_nodes_agree_on_every_due_date_of_a_year(
    node_clocks: tuple[Calendars, Calendars],
) -> None:
    ru, kz = node_clocks
    checked = 0
    day = date(2026, 1, 1)
    while day.year == 2026:
        for received in _receipt_times(day):
            for agreement, (ru_body, kz_body) in PAIRS.items():
                for requested in (ru_body, kz_body):
                    for pauses in (
                        (),
                        ((received + timedelta(days=2, hours=5), received + timedelta(days=9)),),
                    ):
                        facts = ClockFacts(agreement, requested, received, pauses)
                        now = received + timedelta(days=20)
                        on_ru, on_kz = due_date(facts, ru, now), due_date(facts, kz, now)
                        assert on_ru is not None and on_kz is not None
                        assert on_ru.due == on_kz.due, (agreement, requested, received, pauses)
                        assert (
                            on_ru.received_on
                            == received.astimezone(ZoneInfo(ZONES[requested[:2]])).date()
                        )
                        checked += 1
        day += timedelta(days=1)
    assert checked == 365 * 11 * 2 * 2 * 2


def test_without_the_directorys_calendars_the_two_configurations_disagree(
    node_clocks: tuple[Calendars, Calendars], tmp_path: Path
) -> None:
    """The year test could fail: the nodes' own configurations do give different dates."""
    bare = Directory(DIRECTORY.version, DIRECTORY.issued_at, "CIS-EC", DIRECTORY.bodies)
    ru = Calendars.build(extra_days_off={"RU": ["2026-05-04"]}, directory=bare)
    kz = Calendars.build(extra_days_off={"KZ": ["2026-07-06", "2026-12-18"]}, directory=bare)
    received = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    facts = ClockFacts(CIS, "KZ-MJ", received)
    assert due_date(facts, ru, received) != due_date(facts, kz, received)


def test_a_receipt_at_0130_in_almaty_counts_from_the_almaty_date() -> None:
    clock = Calendars.build(directory=DIRECTORY)
    received = datetime(2026, 6, 1, 1, 30, tzinfo=ALMATY)  # Sunday 31 May 20:30 UTC
    assert received.astimezone(UTC).date() == date(2026, 5, 31)
    due = due_date(ClockFacts(CIS, "KZ-MJ", received), clock, received)
    assert due is not None
    assert due.received_on == date(2026, 6, 1)
    kz = calendar_for("KZ", KZ_PUBLISHED.days_off, KZ_PUBLISHED.working_days)
    assert due.due == kz.add_working_days(date(2026, 6, 1), 30)
    assert due.zone == "Asia/Almaty" and due.calendar_state == "KZ"
    assert "directory v7, calendar KZ v3" in due.calendar_source


def test_a_body_without_a_published_zone_takes_its_capitals() -> None:
    bare = Directory(1, DIRECTORY.issued_at, "CIS-EC", (_body("KZ-MJ"), _body("BY-MJ")))
    clock = Calendars.build(directory=bare)
    assert clock.zone_name_of("KZ-MJ") == "Asia/Almaty"
    assert clock.zone_name_of("BY-MJ") == "Europe/Minsk"
    assert clock.zone_name_of("XX-TEST") == "UTC"


def test_an_unknown_published_zone_is_refused() -> None:
    bad = Directory(1, DIRECTORY.issued_at, "CIS-EC", (_body("KZ-MJ", "Asia/Nowhere"),))
    with pytest.raises(ConfigurationError, match="Asia/Nowhere"):
        Calendars.build(directory=bad)


def _saturday_case() -> tuple[date, datetime, datetime, int]:
    """A CIS receipt and a pause where the old rule (the 30th working day plus the pause's
    calendar days) lands on a Saturday."""
    kz = calendar_for("KZ", KZ_PUBLISHED.days_off, KZ_PUBLISHED.working_days)
    day = date(2026, 2, 2)
    while True:
        received = datetime.combine(day, time(10, 0), ALMATY)
        since, until = received + timedelta(days=1), received + timedelta(days=6)
        old = kz.add_working_days(day, 30) + timedelta(days=(until - since).days)
        if old.weekday() == 5:
            paused = kz.working_days_between(since.date(), until.date())
            return day, since, until, paused
        day += timedelta(days=1)


def test_a_pause_is_counted_in_working_days_and_the_due_date_is_a_working_day() -> None:
    clock = Calendars.build(directory=DIRECTORY)
    day, since, until, paused = _saturday_case()
    received = datetime.combine(day, time(10, 0), ALMATY)
    due = due_date(ClockFacts(CIS, "KZ-MJ", received, ((since, until),)), clock, until)
    assert due is not None
    kz = clock.calendar("KZ")
    assert due.paused_days == paused
    assert due.due == kz.add_working_days(day, 30 + paused)
    assert kz.is_working_day(due.due)
    assert due.due.weekday() < 5
    assert "приостановлен" in due.why


def test_an_sc_pause_is_counted_in_calendar_days() -> None:
    clock = Calendars.build(directory=DIRECTORY)
    received = datetime(2026, 3, 2, 10, 0, tzinfo=MOSCOW)
    pause = (received + timedelta(days=3), received + timedelta(days=10))
    due = due_date(ClockFacts(SC, "RU-VS", received, (pause,)), clock, received)
    assert due is not None and due.paused_days == 7
    assert due.due == clock.calendar("RU").next_working_day(date(2026, 3, 2) + timedelta(37))


def test_an_open_pause_runs_to_now() -> None:
    clock = Calendars.build(directory=DIRECTORY)
    received = datetime(2026, 3, 2, 10, 0, tzinfo=MOSCOW)
    facts = ClockFacts(SC, "RU-VS", received, ((received + timedelta(days=1), None),))
    first = due_date(facts, clock, received + timedelta(days=2))
    later = due_date(facts, clock, received + timedelta(days=5))
    assert first is not None and later is not None
    assert later.paused_days == first.paused_days + 3


def test_a_stopped_clock_ends_an_open_pause_where_it_stopped() -> None:
    """A refusal while paused: both nodes compute the same date, whatever their "now"."""
    clock = Calendars.build(directory=DIRECTORY)
    received = datetime(2026, 3, 2, 10, 0, tzinfo=MOSCOW)
    stopped = received + timedelta(days=4)
    facts = ClockFacts(
        SC, "RU-VS", received, ((received + timedelta(days=1), None),), stopped_at=stopped
    )
    at_sender = due_date(facts, clock, stopped)
    at_receiver = due_date(facts, clock, stopped + timedelta(days=2))
    assert at_sender is not None and at_receiver is not None
    assert at_sender.due == at_receiver.due and at_sender.paused_days == 3


def test_a_requested_term_is_shortened_and_lengthened_by_pauses_in_its_unit() -> None:
    clock = Calendars.build(directory=DIRECTORY)
    received = datetime(2026, 3, 2, 10, 0, tzinfo=MOSCOW)
    asked = date(2026, 3, 13)
    plain = due_date(ClockFacts(CIS, "RU-FSSP", received, (), asked), clock, received)
    assert plain is not None and plain.due == asked and plain.shortened
    pause = (received + timedelta(days=1), received + timedelta(days=3))
    paused = due_date(ClockFacts(CIS, "RU-FSSP", received, (pause,), asked), clock, received)
    assert paused is not None
    assert paused.due == clock.calendar("RU").add_working_days(asked, paused.paused_days)


def test_a_requested_term_past_in_the_requested_partys_zone_is_an_error() -> None:
    """20:30 UTC on 31 May is 1 June in Almaty: a term of 31 May is already past there."""
    clock = Calendars.build(directory=DIRECTORY)
    now = datetime(2026, 5, 31, 20, 30, tzinfo=UTC)
    (problem,) = requested_term_problems(CIS, "KZ-MJ", date(2026, 5, 31), now, clock)
    assert problem.code == "REQUESTED_DEADLINE_IN_PAST"
    assert problem.severity is Severity.ERROR
    assert requested_term_problems(CIS, "KZ-MJ", date(2026, 6, 1), now, clock) == []
    (later,) = requested_term_problems(CIS, "KZ-MJ", date(2026, 12, 1), now, clock)
    assert later.code == "REQUESTED_DEADLINE_LATER_THAN_AGREEMENT"
    assert later.severity is Severity.WARNING


def test_days_left_and_late_count_from_the_requested_partys_today() -> None:
    clock = Calendars.build(directory=DIRECTORY)
    due = date(2026, 6, 1)  # Monday
    # 23:30 UTC on Monday is Tuesday in Almaty: one working day late there.
    evening = datetime(2026, 6, 1, 23, 30, tzinfo=UTC)
    assert days_left(CIS, "KZ-MJ", due, evening, clock) == -1
    assert days_late(CIS, "KZ-MJ", due, evening, clock) == 1
    assert days_late(CIS, "RU-FSSP", due, evening, clock) == 1  # 02:30 Tuesday in Moscow
    assert days_late(CIS, "KZ-MJ", due, datetime(2026, 6, 1, 18, 0, tzinfo=UTC), clock) == 0


# --- late answers -------------------------------------------------------------------------------


def _answer_step(
    received: datetime, answered: datetime, delays: tuple[machine.DelayRecord, ...] = ()
) -> tuple[Header, machine.Step]:
    state = machine.Conversation(
        conversation_id="c",
        agreement=CIS,
        state=machine.State.ANSWERED,
        clock=machine.DeadlineClock(started_at=received, stopped_at=answered),
        delays=delays,
    )
    header = Header(
        message_id="m",
        conversation_id="c",
        in_reply_to="r",
        agreement=CIS,
        kind="Response",
        sender="KZ-MJ",
        recipient="RU-FSSP",
        created=answered,
        confidential=False,
        urgency=Urgency.NORMAL,
        requested_deadline=None,
        language="ru",
    )
    return header, machine.Step(state, (machine.StopClock(answered, machine.State.ANSWERED),))


def test_an_answer_after_the_due_date_is_late_unless_a_delay_notice_covers_it() -> None:
    clock = Calendars.build(directory=DIRECTORY)
    received = datetime(2026, 6, 1, 10, 0, tzinfo=ALMATY)
    facts = ClockFacts(CIS, "KZ-MJ", received)
    due = due_date(facts, clock, received)
    assert due is not None
    answered = datetime.combine(due.due + timedelta(days=10), time(11), ALMATY)
    header, step = _answer_step(received, answered)
    late = late_answer(header, step, due, "KZ-MJ", clock)
    assert late is not None and late.due == due.due
    assert late.days_late == clock.calendar("KZ").working_days_between(due.due, answered.date())

    on_time = datetime.combine(due.due, time(23, 59), ALMATY)
    assert late_answer(*_answer_step(received, on_time)[:2], due, "KZ-MJ", clock) is None

    notice = machine.DelayRecord("d", received + timedelta(days=20), answered.date())
    header, step = _answer_step(received, answered, (notice,))
    assert late_answer(header, step, due, "KZ-MJ", clock) is None
    short = machine.DelayRecord("d", received + timedelta(days=20), due.due + timedelta(days=2))
    header, step = _answer_step(received, answered, (short,))
    assert late_answer(header, step, due, "KZ-MJ", clock) is not None

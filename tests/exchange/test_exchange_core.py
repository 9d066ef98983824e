"""The decision core: every effect the machine emits is recorded; the judge decides without I/O."""

from __future__ import annotations

import typing
from datetime import UTC, date, datetime

import pytest

from gateway.exchange import conversation as machine
from gateway.exchange.recording import effect_events

AT = datetime(2027, 3, 1, 9, 30, tzinfo=UTC)

SAMPLES: dict[type, object] = {
    machine.StartClock: machine.StartClock(AT, "CIS Art. 12"),
    machine.PauseClock: machine.PauseClock(
        AT, machine.State.AWAITING_ADDITIONAL_INFO, "CIS Art. 14"
    ),
    machine.ResumeClock: machine.ResumeClock(AT),
    machine.StopClock: machine.StopClock(AT, machine.State.ANSWERED),
    machine.ScheduleReminder: machine.ScheduleReminder(
        date(2027, 4, 1), machine.Role.REQUESTING, "DELAY_EXPECTED_DATE_REACHED"
    ),
    machine.NotifyOperator: machine.NotifyOperator(
        machine.Role.REQUESTED, "ADDITIONAL_INFO_REQUESTED", "CIS Art. 14", "m-1"
    ),
}


def test_every_effect_kind_is_recorded() -> None:
    kinds = set(typing.get_args(machine.Effect))
    assert kinds == set(SAMPLES), "a new effect kind needs a sample here and a record"
    events = effect_events(SAMPLES.values())  # type: ignore[arg-type]
    assert len(events) == len(SAMPLES)
    names = [name for name, _ in events]
    assert names == [
        "deadline.started",
        "deadline.paused",
        "deadline.resumed",
        "deadline.stopped",
        "reminder.scheduled",
        "operator.notified",
    ]
    assert all(details for _, details in events)


def test_an_unknown_effect_is_refused_not_dropped() -> None:
    with pytest.raises(TypeError, match="has no record"):
        effect_events([object()])  # type: ignore[list-item]

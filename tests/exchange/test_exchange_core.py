"""The decision core: every effect the machine emits is recorded; the judge decides without I/O."""

from __future__ import annotations

import json
import typing
from datetime import UTC, date, datetime

import pytest

from gateway.exchange import conversation as machine
from gateway.exchange.recording import effect_events
from gateway.schemas import VALID_EXAMPLES_DIR as EXAMPLES

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


def _event_of_example(name: str, sender: machine.Role, **body: object) -> machine.Event:
    """The machine's event for a valid example, with body fields overridden."""
    from gateway.exchange.inbound import event_of
    from gateway.xml.convert import json_to_xml
    from gateway.xml.header import read_header
    from gateway.xml.schemas import default_registry

    document = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    kind = document["header"]["Kind"]
    document["body"][kind].update(body)
    root = json_to_xml(document, default_registry())
    return event_of(read_header(root), root, sender)


def test_sc_request_expected_by_is_its_shorter_term_and_urgency_is_read() -> None:
    """SC Art. 5.1 г): the term within which execution is expected is the request's shorter
    term (the earlier of it and the envelope's RequestedDeadline); SC Art. 5.2: urgency."""
    example = json.loads((EXAMPLES / "ru-kz-supreme-courts.Request.json").read_text("utf-8"))
    assert example["header"]["RequestedDeadline"] == "2026-12-18"
    event = _event_of_example(
        "ru-kz-supreme-courts.Request", machine.Role.REQUESTING, ExpectedBy="2026-12-10"
    )
    assert event.requested_deadline == date(2026, 12, 10)
    assert not event.urgent
    later = _event_of_example(
        "ru-kz-supreme-courts.Request", machine.Role.REQUESTING, ExpectedBy="2027-01-10"
    )
    assert later.requested_deadline == date(2026, 12, 18)


def test_sc_refusal_extent_and_authenticity_answer_are_read() -> None:
    partial = _event_of_example("ru-kz-supreme-courts.Refusal", machine.Role.REQUESTED)
    assert (partial.decision, partial.grounds) == ("partial", "contrary-to-law")
    full = _event_of_example("ru-kz-supreme-courts.Refusal", machine.Role.REQUESTED, Extent="full")
    assert full.decision == "full"
    yes = _event_of_example(
        "ru-kz-supreme-courts.AuthenticityConfirmation", machine.Role.REQUESTING
    )
    assert yes.decision == "confirmed"
    no = _event_of_example(
        "ru-kz-supreme-courts.AuthenticityConfirmation", machine.Role.REQUESTING, Confirmed=False
    )
    assert no.decision == "not-confirmed"


def test_machine_codec_keeps_urgency_and_partial_refusals() -> None:
    from dataclasses import replace

    from gateway.exchange import machine_codec

    conversation = replace(
        machine.new_conversation("c-1", "ru-kz-supreme-courts"),
        urgent=True,
        partial_refusals=("m-1", "m-2"),
    )
    back = machine_codec.loads(machine_codec.dumps(conversation))
    assert (back.urgent, back.partial_refusals) == (True, ("m-1", "m-2"))
    # A machine stored before these facts were kept reads as neither.
    old = json.loads(machine_codec.dumps(machine.new_conversation("c-2", "cis-enforcement")))
    del old["urgent"], old["partial_refusals"]
    legacy = machine_codec.loads(json.dumps(old))
    assert (legacy.urgent, legacy.partial_refusals) == (False, ())

"""Writing a conversation's step: the state, its due date, and every effect the machine emitted.

The shells (receiving, sending) call :func:`store_step` inside their one write transaction. Each
effect of :mod:`gateway.exchange.conversation` is applied here, none is dropped: clock effects
and reminders become audit events beside the due date they change (the deadline itself is
recomputed from the machine's clock), operator notices become ``operator.notified`` events that
the console and the reminder job read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from gateway.config import NodeConfig
from gateway.crypto.at_rest import KekRing
from gateway.crypto.report import ValidationReport
from gateway.exchange import conversation as machine
from gateway.exchange import machine_codec
from gateway.exchange.inbound import TRY_AGAIN
from gateway.model.envelope import Header
from gateway.model.problems import DocumentRejected, Problem
from gateway.model.profiles import profile
from gateway.rules.calendars import calendar_for
from gateway.rules.deadlines import deadline_for
from gateway.store import audit, machines, reports
from gateway.store import conversations as conv_store
from gateway.store import messages as msg_store
from gateway.store.reports import ReportPurpose


class ConcurrentChange(DocumentRejected):
    """The conversation moved since the snapshot the decision was made on: decide again."""

    def __init__(self) -> None:
        super().__init__(
            [
                Problem(
                    code=TRY_AGAIN,
                    path="/Envelope",
                    message_ru="Беседа изменена параллельно.",
                    message_en="concurrent change",
                    remedy_ru="Повторите позже.",
                )
            ]
        )


def load_state(
    conn: Any, conversation_id: str, *, for_update: bool = False
) -> tuple[conv_store.Conversation | None, machine.Conversation | None]:
    """A conversation's row and decoded machine (None, None when it is not known here)."""
    stored = conv_store.get(conn, conversation_id, for_update=for_update)
    if stored is None:
        return None, None
    text = machines.get(conn, conversation_id)
    return stored, machine_codec.loads(text) if text else None


def check_unchanged(
    conn: Any, header: Header, snapshot: conv_store.Conversation | None
) -> conv_store.Conversation | None:
    """Lock the conversation and make sure it is still as the decision saw it."""
    current = conv_store.get(conn, header.conversation_id, for_update=True)
    if (current is None) != (snapshot is None):
        raise ConcurrentChange
    if current is not None and snapshot is not None and current.version != snapshot.version:
        raise ConcurrentChange
    return current


def store_step(
    conn: Any,
    config: NodeConfig,
    header: Header,
    step: machine.Step,
    stored: conv_store.Conversation | None,
    requesting: str,
    requested: str,
    now: datetime,
) -> None:
    """Persist the conversation after ``step`` and apply its effects, in the caller's
    transaction. Raises :class:`ConcurrentChange` when another writer moved it meanwhile."""
    state = step.conversation
    deadline = due_date(config, state, header.agreement, requested, now)
    closed_at = now if state.closed else None
    if stored is None:
        conv_store.open_conversation(
            conn,
            conversation_id=header.conversation_id,
            agreement=header.agreement,
            requesting_party=requesting,
            requested_party=requested,
            opening_kind=header.kind,
            state=state.state.value,
            confidential=header.confidential,
            deadline=deadline,
            now=now,
        )
        if state.closed:
            conv_store.transition(
                conn,
                header.conversation_id,
                expected_state=state.state.value,
                new_state=state.state.value,
                now=now,
                closed_at=closed_at,
            )
    else:
        moved = conv_store.transition(
            conn,
            header.conversation_id,
            expected_state=stored.state,
            new_state=state.state.value,
            now=now,
            last_kind=header.kind,
            deadline=deadline,
            # The flag of a request covers its whole conversation (CIS Art. 16; SC Art. 8.1).
            confidential=stored.confidential or header.confidential,
            closed_at=closed_at if state.closed and stored.closed_at is None else stored.closed_at,
        )
        if not moved:
            raise ConcurrentChange
    machines.put(conn, header.conversation_id, machine_codec.dumps(state), now)
    for kind, details in effect_events(step.effects):
        audit.append(
            conn,
            now=now,
            actor="gateway",
            kind=kind,
            subjects={"conversation": header.conversation_id},
            details=details,
        )


def effect_events(effects: Iterable[machine.Effect]) -> list[tuple[str, dict[str, Any]]]:
    """The audit event (kind, details) that records each effect; every kind is covered."""
    events: list[tuple[str, dict[str, Any]]] = []
    for effect in effects:
        match effect:
            case machine.StartClock(at=at, article=article):
                events.append(("deadline.started", {"at": at.isoformat(), "article": article}))
            case machine.PauseClock(at=at, reason=reason, article=article):
                events.append(
                    (
                        "deadline.paused",
                        {"at": at.isoformat(), "reason": str(reason), "article": article},
                    )
                )
            case machine.ResumeClock(at=at):
                events.append(("deadline.resumed", {"at": at.isoformat()}))
            case machine.StopClock(at=at, outcome=outcome):
                events.append(("deadline.stopped", {"at": at.isoformat(), "outcome": str(outcome)}))
            case machine.ScheduleReminder(on=on, audience=audience, code=code):
                events.append(
                    (
                        "reminder.scheduled",
                        {"on": on.isoformat(), "audience": str(audience), "code": code},
                    )
                )
            case machine.NotifyOperator(audience=audience, code=code):
                events.append(("operator.notified", {"code": code, "audience": str(audience)}))
            case _:  # a new effect kind must be recorded before it ships
                raise TypeError(f"effect {effect!r} has no record")
    return events


def due_date(
    config: NodeConfig, state: machine.Conversation, agreement: str, requested: str, now: datetime
) -> Any:
    """The due date: the agreement's rule counted from the request's receipt (CIS Art. 12:
    30 working days by the requested party's calendar; SC Art. 6.1: 30 days), shifted by
    the days the clock was paused while the requested party waited on the other side."""
    clock = state.clock
    if clock.started_at is None:
        return None
    country = requested[:2]
    calendar = calendar_for(
        country,
        extra_days_off=config.calendar.extra_days_off.get(country, ()),
        extra_working_days=config.calendar.extra_working_days.get(country, ()),
    )
    due = deadline_for(
        profile(agreement), clock.started_at.date(), calendar, state.requested_deadline
    ).due
    paused_days = sum(((p.until or now) - p.since).days for p in clock.pauses)
    return due + timedelta(days=paused_days)


def record_verification(
    conn: Any,
    message_id: str,
    report: ValidationReport,
    purpose: ReportPurpose,
    now: datetime,
    kek_ring: KekRing,
) -> None:
    """Record a verification report with its time (after the message's own row): views read
    it, they never verify again."""
    failure = report.first_failure
    sub = failure.sub_indication if failure is not None else None
    reports.record_report(
        conn,
        message_id,
        report.to_json(),
        str(report.indication),
        str(sub) if sub is not None else None,
        purpose,
        now,
        kek_ring,
    )


def message_header(header: Header) -> msg_store.MessageHeader:
    return msg_store.MessageHeader(
        message_id=header.message_id,
        conversation_id=header.conversation_id,
        agreement=header.agreement,
        kind=header.kind,
        sender=header.sender,
        recipient=header.recipient,
        created=header.created,
        confidential=header.confidential,
        in_reply_to=header.in_reply_to,
    )

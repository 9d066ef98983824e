"""Writing a conversation's step: the state, its due date, and every effect the machine emitted.

The shells (receiving, sending) call :func:`store_step` inside their one write transaction. Each
effect of :mod:`gateway.exchange.conversation` is applied here, none is dropped: clock effects
and reminders become audit events beside the due date they change (the deadline itself is
recomputed from the machine's clock), operator notices become ``operator.notified`` events that
the console and the reminder job read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from lxml import etree

from gateway.crypto.keys.kek import KekRing
from gateway.crypto.report import ValidationReport
from gateway.exchange import conversation as machine
from gateway.exchange import machine_codec
from gateway.exchange.inbound import TRY_AGAIN
from gateway.exchange.listing import listed
from gateway.model.envelope import Header
from gateway.model.problems import DocumentRejected, Problem, Severity
from gateway.rules.agreement import request_facts
from gateway.rules.clock import Calendars, ClockFacts, DueDate, days_late, due_date
from gateway.store import audit, machines, reports
from gateway.store import conversations as conv_store
from gateway.store import late_answers as late_store
from gateway.store import messages as msg_store
from gateway.store.reports import ReportPurpose
from gateway.xml.parsing import parse_untrusted

ANSWER_LATE = "ANSWER_LATE"
"""Code of the warning a late answer's submission returns (and the metric counts)."""

ANSWER_LATE_EVENT = "answer.late"
"""Audit kind of the late-answer fact (its row: gateway.store.late_answers)."""


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
    stored, text = conv_store.get_with_machine(conn, conversation_id, for_update=for_update)
    return stored, machine_codec.loads(text) if text else None


def refused_request_facts(
    conn: Any, conversation_id: str, keys: KekRing
) -> tuple[str | None, set[str]] | None:
    """The issuer kind and subjects of the conversation's Request, for judging a refusal's
    Art. 25 ground (:func:`gateway.rules.reservations.refusal_problems`); None when no Request
    is stored here or it can no longer be read (purged, its key shredded)."""
    for message in msg_store.list_for_conversation(conn, conversation_id):
        if message.header.kind != "Request":
            continue
        try:
            document = msg_store.read_document(conn, message.header.message_id, keys)
        except (msg_store.MessageGone, msg_store.KeyShredded):
            return None
        return request_facts(parse_untrusted(document))
    return None


def store_step(
    conn: Any,
    calendars: Calendars,
    header: Header,
    step: machine.Step,
    stored: conv_store.Conversation | None,
    requesting: str,
    requested: str,
    now: datetime,
    *,
    opening: tuple[KekRing, etree._Element] | None = None,
) -> LateAnswer | None:
    """Persist the conversation after ``step`` and apply its effects, in the caller's
    transaction; record and return the late-answer fact when ``header`` is a late answer.
    ``opening``: the node's KEK ring and the document's tree, whose list display and tags go in
    with the row of a conversation ``header`` opens. ``stored`` may be an unlocked snapshot:
    the conversation's UPDATE checks its version (and a new one's INSERT that none was made),
    so this raises :class:`ConcurrentChange` when another writer moved it since ``stored`` was
    read; the machine's row is written after that UPDATE, under its lock."""
    state = step.conversation
    due = due_date(clock_facts(state, requested), calendars, now)
    deadline = due.due if due is not None else None
    closed_at = now if state.closed else None
    if stored is None:
        opened = conv_store.open_conversation(
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
            urgent=state.urgent,
            listing=(
                listed(conn, opening[0], header.conversation_id, opening[1], now)
                if opening is not None
                else None
            ),
        )
        if not opened:
            raise ConcurrentChange  # made by another writer since the decision saw none
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
            expected_version=stored.version,
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
    late = late_answer(header, step, due, requested, calendars)
    if late is not None:
        late_store.record(
            conn,
            late_store.LateAnswerRow(
                message_id=header.message_id,
                conversation_id=header.conversation_id,
                kind=header.kind,
                due=late.due,
                answered_on=late.answered_on,
                days_late=late.days_late,
                working_days=late.working_days,
                recorded_at=now,
            ),
        )
        audit.append(
            conn,
            now=now,
            actor="gateway",
            kind=ANSWER_LATE_EVENT,
            subjects={"conversation": header.conversation_id, "message": header.message_id},
            details=late.details(),
        )
    return late


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


ANSWER_KINDS = frozenset({"Response", "Refusal"})
"""Documents that execute a request or refuse it: the ones the term is about (CIS Art. 12)."""


@dataclass(frozen=True, slots=True)
class LateAnswer:
    """An answer after the due date without a delay notice covering it (CIS Art. 12 para. 3:
    the requested party must say so "в возможно короткий срок"). Accepted, but flagged."""

    due: date
    answered_on: date
    """The answer's creation, as a date in the requested party's zone."""
    days_late: int
    """In the term's unit (working days for CIS, calendar days for SC)."""
    working_days: bool

    def details(self) -> dict[str, Any]:
        return {
            "due": self.due.isoformat(),
            "answered_on": self.answered_on.isoformat(),
            "days_late": self.days_late,
            "unit": "working-days" if self.working_days else "days",
        }


def late_answer_warning(late: LateAnswer) -> Problem:
    """What the case system is told when it submits a late answer: sent, but flagged."""
    unit = "раб. дн." if late.working_days else "дн."
    return Problem(
        code=ANSWER_LATE,
        path="/Envelope/Header/Created",
        message_ru=(
            f"Ответ направлен {late.answered_on.isoformat()}, позже срока исполнения "
            f"{late.due.isoformat()} на {late.days_late} {unit}, без уведомления о задержке."
        ),
        message_en=(
            f"answer of {late.answered_on} is {late.days_late} day(s) after the due date "
            f"{late.due} with no delay notice; sent and flagged as late"
        ),
        remedy_ru="Если исполнение задерживается, направляйте уведомление о задержке заранее.",
        article="CIS Art. 12; SC Art. 6.1",
        severity=Severity.WARNING,
    )


def clock_facts(state: machine.Conversation, requested: str) -> ClockFacts:
    """What the legal clock needs from the machine (both nodes hold the same)."""
    return ClockFacts(
        agreement=state.agreement,
        requested_party=requested,
        received_at=state.clock.started_at,
        pauses=tuple((p.since, p.until) for p in state.clock.pauses),
        requested_deadline=state.requested_deadline,
        stopped_at=state.clock.stopped_at,
    )


def late_answer(
    header: Header,
    step: machine.Step,
    due: DueDate | None,
    requested: str,
    calendars: Calendars,
) -> LateAnswer | None:
    """The late-answer fact of ``header`` if it is an answer that stopped the clock after the
    due date with no delay notice announcing it; None otherwise."""
    if due is None or header.kind not in ANSWER_KINDS:
        return None
    if not any(isinstance(e, machine.StopClock) for e in step.effects):
        return None
    late = days_late(header.agreement, requested, due.due, header.created, calendars)
    if late == 0:
        return None
    answered_on = calendars.local_date(requested, header.created)
    for notice in step.conversation.delays:
        if notice.at <= header.created and (
            notice.expected_by is None or notice.expected_by >= answered_on
        ):
            return None  # announced: the requesting party knew and when to expect it
    return LateAnswer(due.due, answered_on, late, due.working_days)


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

"""The conversation state machine, driven by events; the whole state is asserted after each step."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from gateway.exchange.conversation import (
    CLOCK_PAUSED_IN,
    TRANSITIONS,
    ConsentRecord,
    Conversation,
    DeadlineClock,
    DelayRecord,
    DuplicateMessage,
    LastChange,
    MissingField,
    NotifyOperator,
    Pause,
    PauseClock,
    PendingSide,
    ProtocolError,
    ResumeClock,
    ScheduleReminder,
    StartClock,
    State,
    StopClock,
    UnexpectedMessage,
    UnknownKind,
    apply,
    new_conversation,
)
from gateway.model.profiles import PROFILES
from tests.exchange.conversation_helpers import CIS, PATHS, SC, D, R, at, ev, reach


class Driver:
    """Applies events one by one and checks the whole conversation and the effects each time."""

    def __init__(self, agreement: str) -> None:
        self.conversation = new_conversation("conv-1", agreement)
        self.expected = Conversation(conversation_id="conv-1", agreement=agreement)
        assert self.conversation == self.expected

    def step(self, event, expected_effects=(), **changes):  # type: ignore[no-untyped-def]
        result = apply(self.conversation, event)
        self.expected = replace(
            self.expected,
            message_ids=self.expected.message_ids | {event.message_id},
            updated_at=event.at,
            **changes,
        )
        assert result.conversation == self.expected
        assert result.effects == tuple(expected_effects)
        self.conversation = result.conversation
        return result

    def refuse(self, event, error=UnexpectedMessage):  # type: ignore[no-untyped-def]
        before = self.conversation
        with pytest.raises(error) as caught:
            apply(self.conversation, event)
        assert self.conversation == before == self.expected
        assert caught.value.state is before.state
        assert caught.value.kind == event.kind
        assert caught.value.sender is event.sender
        return caught.value


def test_cis_request_with_additional_info_delay_answer_and_consent() -> None:
    d = Driver(CIS)
    d.step(
        ev("Request", R, "m1", 0, requested_deadline=date(2026, 12, 10)),
        state=State.SUBMITTED,
        opening_message_id="m1",
        requested_deadline=date(2026, 12, 10),
        last_change=LastChange("m1", "Request", R),
    )
    d.refuse(ev("Response", D, "x1", 0.5))  # no answer before the receipt
    d.step(
        ev("Receipt", D, "m2", 1, in_reply_to="m1"),
        [StartClock(at(1), "CIS Art. 12")],
        state=State.IN_PROGRESS,
        clock=DeadlineClock(started_at=at(1)),
        last_change=LastChange("m2", "Receipt", D),
    )
    d.step(
        ev("AdditionalInfoRequest", D, "m3", 24),
        [
            PauseClock(at(24), State.AWAITING_ADDITIONAL_INFO, "CIS Art. 14; SC Art. 6.1"),
            NotifyOperator(R, "ADDITIONAL_INFO_REQUESTED", "CIS Art. 14; SC Art. 6.1", "m3"),
        ],
        state=State.AWAITING_ADDITIONAL_INFO,
        clock=DeadlineClock(at(1), (Pause(State.AWAITING_ADDITIONAL_INFO, at(24)),)),
        last_change=LastChange("m3", "AdditionalInfoRequest", D),
    )
    d.refuse(ev("AdditionalInfoRequest", D, "x2", 25))  # one question at a time
    d.refuse(ev("PostponementDecision", R, "x3", 25, decision="accept"))
    d.step(ev("Receipt", R, "m4", 24.1, in_reply_to="m3"))
    d.step(
        ev("AdditionalInfoAnswer", R, "m5", 48),
        [
            ResumeClock(at(48)),
            NotifyOperator(D, "ADDITIONAL_INFO_RECEIVED", "CIS Art. 14; SC Art. 6.1", "m5"),
        ],
        state=State.IN_PROGRESS,
        clock=DeadlineClock(at(1), (Pause(State.AWAITING_ADDITIONAL_INFO, at(24), at(48)),)),
        last_change=LastChange("m5", "AdditionalInfoAnswer", R),
    )
    d.step(
        ev("DelayNotice", D, "m6", 60, expected_by=date(2027, 1, 20)),
        [
            NotifyOperator(R, "DELAY_ANNOUNCED", "CIS Art. 12; SC Art. 6.1", "m6"),
            ScheduleReminder(date(2027, 1, 20), R, "DELAY_EXPECTED_DATE_REACHED"),
        ],
        delays=(DelayRecord("m6", at(60), date(2027, 1, 20)),),
    )
    assert d.conversation.expected_by == date(2027, 1, 20)
    d.step(
        ev("Response", D, "m7", 100),
        [
            StopClock(at(100), State.ANSWERED),
            NotifyOperator(R, "RESPONSE_RECEIVED", "CIS Art. 4–8; SC Art. 6.1", "m7"),
        ],
        state=State.ANSWERED,
        clock=DeadlineClock(
            at(1), (Pause(State.AWAITING_ADDITIONAL_INFO, at(24), at(48)),), stopped_at=at(100)
        ),
        last_change=LastChange("m7", "Response", D),
    )
    # Closed: nothing but receipts, rejections and consent (CIS Art. 9.2: consent after the answer).
    d.refuse(ev("DelayNotice", D, "x4", 101))
    d.refuse(ev("Withdrawal", R, "x5", 101))
    d.refuse(ev("ProtectionMeasuresInquiry", R, "x6", 101))
    d.step(ev("Receipt", R, "m8", 100.1, in_reply_to="m7"))
    d.step(
        ev("ConsentRequest", R, "m9", 200),
        [NotifyOperator(D, "CONSENT_REQUESTED", "", "m9")],
        pending_consents=(PendingSide("m9", R),),
    )
    d.refuse(ev("ConsentDecision", D, "x7", 201, decision="granted", in_reply_to="nope"))
    d.refuse(ev("ConsentDecision", D, "x8", 201, decision="maybe", in_reply_to="m9"), MissingField)
    d.step(
        ev("ConsentDecision", D, "m10", 210, decision="granted", in_reply_to="m9"),
        [NotifyOperator(R, "CONSENT_GRANTED", "CIS Art. 9.2; SC Art. 8.2", "m10")],
        pending_consents=(),
        consents=(ConsentRecord("m9", "granted", D, at(210)),),
    )
    assert d.conversation.state is State.ANSWERED


@pytest.mark.parametrize(
    ("decision", "target", "code"),
    [("accept", State.IN_PROGRESS, "CONDITIONS_ACCEPTED"), ("decline", State.WITHDRAWN, "")],
)
def test_postponement_decision(decision: str, target: State, code: str) -> None:
    d = Driver(CIS)
    d.conversation = d.expected = reach(CIS, State.IN_PROGRESS)
    started = d.conversation.clock
    d.step(
        ev("Postponement", D, "m1", 10),
        [
            PauseClock(at(10), State.POSTPONED, "CIS Art. 15"),
            NotifyOperator(R, "POSTPONEMENT_DECISION_NEEDED", "CIS Art. 15", "m1"),
        ],
        state=State.POSTPONED,
        clock=replace(started, pauses=(Pause(State.POSTPONED, at(10)),)),
        last_change=LastChange("m1", "Postponement", D),
    )
    d.refuse(ev("Response", D, "x1", 11))  # no answer while the requesting party decides
    d.refuse(ev("PostponementDecision", R, "x2", 11, decision=""), MissingField)
    d.refuse(ev("PostponementDecision", D, "x3", 11, decision="accept"), UnknownKind)
    ended = (Pause(State.POSTPONED, at(10), at(20)),)
    if target is State.IN_PROGRESS:
        effects = [ResumeClock(at(20)), NotifyOperator(D, code, "CIS Art. 15", "m2")]
        clock = replace(started, pauses=ended)
    else:
        effects = [
            StopClock(at(20), State.WITHDRAWN),
            NotifyOperator(D, "CONDITIONS_DECLINED", "CIS Art. 15", "m2"),
        ]
        clock = replace(started, pauses=ended, stopped_at=at(20))
    d.step(
        ev("PostponementDecision", R, "m2", 20, decision=decision),
        effects,
        state=target,
        clock=clock,
        last_change=LastChange("m2", f"PostponementDecision:{decision}", R),
    )


@pytest.mark.parametrize(
    ("decision", "target"), [("proceed", State.IN_PROGRESS), ("withdraw", State.WITHDRAWN)]
)
def test_confidentiality_decision(decision: str, target: State) -> None:
    conversation = reach(CIS, State.CONFIDENTIALITY_HOLD)
    assert conversation.clock.paused
    step = apply(conversation, ev("ConfidentialityDecision", R, "m1", 30, decision=decision))
    assert step.conversation.state is target
    assert step.conversation.clock.pauses[-1].until == at(30)
    assert step.conversation.clock.running is (target is State.IN_PROGRESS)
    assert step.conversation.clock.stopped_at == (at(30) if target.closed else None)


def test_sc_authenticity_confirmation_holds_the_request() -> None:
    d = Driver(SC)
    d.step(
        ev("Request", R, "m1", 0),
        state=State.SUBMITTED,
        opening_message_id="m1",
        last_change=LastChange("m1", "Request", R),
    )
    d.step(
        ev("Receipt", D, "m2", 2, in_reply_to="m1"),
        [StartClock(at(2), "SC Art. 6.1")],
        state=State.IN_PROGRESS,
        clock=DeadlineClock(started_at=at(2)),
        last_change=LastChange("m2", "Receipt", D),
    )
    d.step(
        ev("AuthenticityConfirmationRequest", D, "m3", 5),
        [
            PauseClock(at(5), State.AWAITING_AUTHENTICITY, "SC Art. 5.3"),
            NotifyOperator(R, "AUTHENTICITY_CONFIRMATION_NEEDED", "SC Art. 5.3", "m3"),
        ],
        state=State.AWAITING_AUTHENTICITY,
        clock=DeadlineClock(at(2), (Pause(State.AWAITING_AUTHENTICITY, at(5)),)),
        last_change=LastChange("m3", "AuthenticityConfirmationRequest", D),
    )
    d.refuse(ev("Response", D, "x1", 6))  # nothing is disclosed before confirmation
    d.refuse(ev("AdditionalInfoRequest", D, "x2", 6))
    d.refuse(ev("AuthenticityConfirmation", D, "x3", 6, decision="confirmed"), UnknownKind)
    d.step(
        ev("DelayNotice", D, "m4", 7),  # allowed while open; no date given, none recorded
        [NotifyOperator(R, "DELAY_ANNOUNCED", "CIS Art. 12; SC Art. 6.1", "m4")],
        delays=(DelayRecord("m4", at(7), None),),
    )
    assert d.conversation.expected_by is None
    d.step(
        ev("AuthenticityConfirmation", R, "m5", 29, decision="confirmed"),
        [
            ResumeClock(at(29)),
            NotifyOperator(D, "AUTHENTICITY_CONFIRMED", "SC Art. 5.3", "m5"),
        ],
        state=State.IN_PROGRESS,
        clock=DeadlineClock(at(2), (Pause(State.AWAITING_AUTHENTICITY, at(5), at(29)),)),
        last_change=LastChange("m5", "AuthenticityConfirmation:confirmed", R),
    )
    d.step(
        ev("Response", D, "m6", 50),
        [
            StopClock(at(50), State.ANSWERED),
            NotifyOperator(R, "RESPONSE_RECEIVED", "CIS Art. 4–8; SC Art. 6.1", "m6"),
        ],
        state=State.ANSWERED,
        clock=DeadlineClock(
            at(2), (Pause(State.AWAITING_AUTHENTICITY, at(5), at(29)),), stopped_at=at(50)
        ),
        last_change=LastChange("m6", "Response", D),
    )


def test_refusal_while_authenticity_is_doubted_closes_the_pause() -> None:
    held = reach(SC, State.AWAITING_AUTHENTICITY)  # SC Art. 6.2 allows refusal at any time
    refused = apply(held, ev("Refusal", D, "m2", 6, grounds="подлинность не подтверждена"))
    assert refused.conversation.state is State.REFUSED
    assert refused.conversation.refusal_grounds == "подлинность не подтверждена"
    assert refused.conversation.clock.stopped_at == at(6)
    assert refused.conversation.clock.pauses[-1].until == at(6)
    assert not refused.conversation.clock.paused


def test_sc_unsolicited_information_closes_on_receipt_then_allows_consent() -> None:
    d = Driver(SC)
    d.step(
        ev("UnsolicitedInformation", R, "m1", 0),
        [NotifyOperator(D, "UNSOLICITED_INFORMATION_RECEIVED", "SC Art. 7", "m1")],
        state=State.INFORMATION_SENT,
        opening_message_id="m1",
        last_change=LastChange("m1", "UnsolicitedInformation", R),
    )
    d.step(
        ev("Receipt", D, "m2", 1, in_reply_to="m1"),
        state=State.INFORMATION_DELIVERED,
        last_change=LastChange("m2", "Receipt", D),
    )
    assert d.conversation.closed
    assert d.conversation.clock == DeadlineClock()  # no deadline for unsolicited information
    # SC Art. 8.2 lets either side ask; here the receiver asks the provider.
    d.step(
        ev("ConsentRequest", D, "m3", 2),
        [NotifyOperator(R, "CONSENT_REQUESTED", "", "m3")],
        pending_consents=(PendingSide("m3", D),),
    )
    d.refuse(ev("ConsentDecision", D, "x1", 3, decision="granted", in_reply_to="m3"))
    d.step(
        ev("ConsentDecision", R, "m4", 3, decision="refused", in_reply_to="m3"),
        [NotifyOperator(D, "CONSENT_REFUSED", "CIS Art. 9.2; SC Art. 8.2", "m4")],
        pending_consents=(),
        consents=(ConsentRecord("m3", "refused", R, at(3)),),
    )


def test_cis_protection_measures_inquiry_as_its_own_conversation_and_as_a_side() -> None:
    conversation = reach(CIS, State.INQUIRY_ANSWERED)
    assert conversation.closed
    with pytest.raises(UnexpectedMessage):
        apply(conversation, ev("ConsentRequest", R, "x1", 9))
    # As a side conversation of a request it leaves the main state alone, even across closing.
    open_ = reach(CIS, State.IN_PROGRESS)
    asked = apply(open_, ev("ProtectionMeasuresInquiry", D, "m1", 5)).conversation
    assert asked.state is State.IN_PROGRESS
    assert asked.pending_inquiries == (PendingSide("m1", D),)
    answered = apply(asked, ev("Response", D, "m2", 6)).conversation
    with pytest.raises(UnexpectedMessage):  # the asker cannot answer its own inquiry
        apply(answered, ev("ProtectionMeasuresAnswer", D, "x2", 7, in_reply_to="m1"))
    done = apply(answered, ev("ProtectionMeasuresAnswer", R, "m3", 7, in_reply_to="m1"))
    assert done.conversation.state is State.ANSWERED
    assert done.conversation.pending_inquiries == ()


def test_refusal_requires_grounds_and_records_them() -> None:
    conversation = reach(CIS, State.IN_PROGRESS)
    for blank in ("", "   "):
        with pytest.raises(MissingField) as caught:
            apply(conversation, ev("Refusal", D, "x1", 5, grounds=blank))
        assert caught.value.article == "CIS Art. 13; SC Art. 6.2"
        assert caught.value.problem().path == "/Envelope/Body/Refusal/Grounds"
    step = apply(conversation, ev("Refusal", D, "m1", 5, grounds=" ст. 13: законодательство "))
    assert step.conversation.refusal_grounds == "ст. 13: законодательство"
    assert step.effects == (
        StopClock(at(5), State.REFUSED),
        NotifyOperator(R, "REQUEST_REFUSED", "CIS Art. 13; SC Art. 6.2", "m1"),
    )


def test_withdrawal_before_receipt_and_rejected_request() -> None:
    submitted = reach(CIS, State.SUBMITTED)
    withdrawn = apply(submitted, ev("Withdrawal", R, "m1", 1))
    assert withdrawn.conversation.state is State.WITHDRAWN
    assert withdrawn.conversation.clock == DeadlineClock()  # never started, nothing to stop
    assert withdrawn.effects == (NotifyOperator(D, "REQUEST_WITHDRAWN", "", "m1"),)
    # The receipt of the request may still come after the withdrawal crossed it.
    late = apply(withdrawn.conversation, ev("Receipt", D, "m2", 2, in_reply_to="p0"))
    assert late.conversation.state is State.WITHDRAWN
    rejected = apply(submitted, ev("Rejection", D, "m3", 1, in_reply_to="p0"))
    assert rejected.conversation.state is State.REJECTED
    assert rejected.effects == (NotifyOperator(R, "OPENING_DOCUMENT_REJECTED", "", "p0"),)
    with pytest.raises(UnexpectedMessage):
        apply(rejected.conversation, ev("ConsentRequest", R, "x1", 3))


def test_rejected_answer_may_be_resent_once_without_reopening() -> None:
    answered = reach(CIS, State.ANSWERED)  # the Response is message p2
    d = Driver(CIS)
    d.conversation = d.expected = answered
    d.refuse(ev("Response", D, "x0", 4))  # a second answer is not allowed…
    d.step(
        ev("Rejection", R, "m1", 4, in_reply_to="p2"),
        [NotifyOperator(D, "DOCUMENT_REJECTED_BY_PEER", "", "p2")],
        resend_due=True,
    )
    d.refuse(ev("Refusal", D, "x1", 5, grounds="g"))  # …a different closing kind is not either
    d.step(  # …but the rejected one, corrected, is; the state stays closed
        ev("Response", D, "m2", 5),
        resend_due=False,
        last_change=LastChange("m2", "Response", D),
    )
    d.refuse(ev("Response", D, "x2", 6))  # and only once per rejection
    # A rejection naming another document does not open the door.
    d.step(
        ev("Rejection", R, "m3", 7, in_reply_to="unrelated"),
        [NotifyOperator(D, "DOCUMENT_REJECTED_BY_PEER", "", "unrelated")],
    )
    d.refuse(ev("Response", D, "x3", 8))


def test_rejected_side_request_is_no_longer_pending() -> None:
    conversation = reach(CIS, State.ANSWERED)
    asked = apply(conversation, ev("ConsentRequest", R, "m1", 5)).conversation
    rejected = apply(asked, ev("Rejection", D, "m2", 6, in_reply_to="m1")).conversation
    assert rejected.pending_consents == ()
    assert not rejected.resend_due
    with pytest.raises(UnexpectedMessage):
        apply(rejected, ev("ConsentDecision", D, "x1", 7, decision="granted", in_reply_to="m1"))


def test_duplicate_message_id_is_refused() -> None:
    conversation = reach(CIS, State.IN_PROGRESS)
    with pytest.raises(DuplicateMessage) as caught:
        apply(conversation, ev("DelayNotice", D, "p1", 5))
    assert caught.value.code == "PROTOCOL_DUPLICATE_MESSAGE"


@pytest.mark.parametrize(
    ("agreement", "kind", "sender"),
    [
        (SC, "Postponement", D),  # CIS Art. 15 has no counterpart in the SC agreement
        (SC, "ConfidentialityNotice", D),
        (SC, "ProtectionMeasuresInquiry", R),
        (CIS, "UnsolicitedInformation", R),  # SC Art. 7 only
        (CIS, "AuthenticityConfirmationRequest", D),  # SC Art. 5.3 only
        (CIS, "Response", R),  # wrong direction
        (CIS, "ConsentDecision", R),  # CIS Art. 9.2: the provider decides
        (CIS, "Frobnicate", R),
    ],
)
def test_kind_outside_the_agreement_or_direction(agreement: str, kind: str, sender) -> None:  # type: ignore[no-untyped-def]
    conversation = reach(agreement, State.IN_PROGRESS)
    with pytest.raises(UnknownKind) as caught:
        apply(conversation, ev(kind, sender, "x1", 5, decision="granted"))
    assert caught.value.problem().code == "PROTOCOL_KIND_NOT_IN_AGREEMENT"


def _decisions(kind: str) -> list[str]:
    return {
        "PostponementDecision": ["accept", "decline"],
        "ConfidentialityDecision": ["proceed", "withdraw"],
        "ConsentDecision": ["granted"],
        "AuthenticityConfirmation": ["confirmed", "not-confirmed"],
        "Refusal": ["", "partial"],
    }.get(kind, [""])


@pytest.mark.parametrize(
    ("agreement", "state"),
    [(agreement, state) for agreement, paths in PATHS.items() for state in paths],
)
def test_every_event_outside_the_table_is_refused_and_changes_nothing(
    agreement: str, state: State
) -> None:
    conversation = reach(agreement, state)
    snapshot = replace(conversation)
    row = TRANSITIONS[state]
    checked = 0
    for kind in PROFILES[agreement].kinds:
        for sender in (R, D):
            for decision in _decisions(kind):
                refined = kind in (
                    "PostponementDecision",
                    "ConfidentialityDecision",
                    "AuthenticityConfirmation",
                ) or (kind == "Refusal" and decision == "partial")
                key = f"{kind}:{decision}" if refined else kind
                if (key, sender) in row:
                    continue
                event = ev(kind, sender, "illegal", 50, grounds="g", decision=decision)
                with pytest.raises(ProtocolError) as caught:
                    apply(conversation, event)
                assert caught.value.state is state
                assert state.value in str(caught.value)
                assert kind in str(caught.value)
                assert conversation == snapshot
                checked += 1
    assert checked > 0


def test_table_covers_every_state_and_closed_rows_never_leave() -> None:
    assert set(TRANSITIONS) == set(State)
    for state, row in TRANSITIONS.items():
        if state.closed:
            assert set(row.values()) <= {state}
            kinds = {kind for kind, _ in row}
            assert kinds <= {
                "Receipt",
                "Rejection",
                "ConsentRequest",
                "ConsentDecision",
                "ProtectionMeasuresAnswer",
                "ConsultationAnswer",
                "ConsultationRecord",
            }
    assert set(CLOCK_PAUSED_IN) <= {s for s in State if not s.closed}


def test_event_requires_aware_time_and_message_id() -> None:
    from datetime import datetime

    from gateway.exchange.conversation import Event

    with pytest.raises(ValueError, match="time zone"):
        Event("Request", R, "m1", datetime(2026, 1, 1))  # naive on purpose
    with pytest.raises(ValueError, match="message_id"):
        Event("Request", R, "", at(0))


def test_opening_kinds_are_exactly_the_profiles_openers() -> None:
    openers = {k.name for p in PROFILES.values() for k in p.kinds.values() if k.opens_conversation}
    assert {kind for kind, _ in TRANSITIONS[State.IDLE]} == openers


def test_problem_for_a_rejection_names_state_kind_and_sender() -> None:
    conversation = reach(SC, State.ANSWERED)
    with pytest.raises(UnexpectedMessage) as caught:
        apply(conversation, ev("DelayNotice", D, "x1", 9))
    problem = caught.value.problem()
    assert problem.code == "PROTOCOL_UNEXPECTED_MESSAGE"
    assert problem.path == "/Envelope/Header/Kind"
    assert "DelayNotice" in problem.message_ru and "answered" in problem.message_ru
    assert "requested" in problem.message_en


def test_sc_partial_refusal_stands_beside_the_response_for_the_rest() -> None:
    """SC Art. 6.2: execution "может быть полностью или частично отказано"; a partial refusal
    leaves the rest of the request to execute, and the Response for it closes the conversation."""
    conversation = reach(SC, State.IN_PROGRESS)
    partial = apply(conversation, ev("Refusal", D, "m1", 5, grounds="law", decision="partial"))
    assert partial.conversation.state is State.IN_PROGRESS
    assert partial.conversation.partial_refusals == ("m1",)
    assert partial.conversation.refusal_grounds == ""
    assert partial.conversation.clock.running
    assert partial.effects == (NotifyOperator(R, "REQUEST_PARTIALLY_REFUSED", "SC Art. 6.2", "m1"),)
    with pytest.raises(MissingField):  # a partial refusal states its reasons too
        apply(partial.conversation, ev("Refusal", D, "x1", 6, decision="partial"))
    answered = apply(partial.conversation, ev("Response", D, "m2", 7))
    assert answered.conversation.state is State.ANSWERED
    assert answered.conversation.partial_refusals == ("m1",)
    assert StopClock(at(7), State.ANSWERED) in answered.effects
    # A full refusal still closes it.
    full = apply(conversation, ev("Refusal", D, "m3", 5, grounds="law", decision="full"))
    assert full.conversation.state is State.REFUSED


def test_sc_authenticity_not_confirmed_stops_execution() -> None:
    """SC Art. 5.3: confirmation was asked because authenticity or content is in doubt; a
    "not confirmed" answer closes the request instead of resuming its execution."""
    conversation = reach(SC, State.AWAITING_AUTHENTICITY)
    step = apply(conversation, ev("AuthenticityConfirmation", R, "m1", 9, decision="not-confirmed"))
    assert step.conversation.state is State.WITHDRAWN
    assert step.conversation.clock.stopped_at == at(9)
    assert not step.conversation.clock.paused
    assert step.effects == (
        StopClock(at(9), State.WITHDRAWN),
        NotifyOperator(D, "AUTHENTICITY_NOT_CONFIRMED", "SC Art. 5.3", "m1"),
    )
    with pytest.raises(UnexpectedMessage):  # nothing is executed after it
        apply(step.conversation, ev("Response", D, "x1", 10))
    with pytest.raises(MissingField):
        apply(conversation, ev("AuthenticityConfirmation", R, "x2", 9, decision=""))


def test_urgent_request_is_kept_and_its_receipt_notifies_at_once() -> None:
    """SC Art. 5.2: "в случаях, не терпящих отлагательства"; the requested party's operator is
    told the moment the urgent request is received."""
    sent = apply(new_conversation("conv-1", SC), ev("Request", R, "m1", 0, urgent=True))
    assert sent.conversation.urgent
    received = apply(sent.conversation, ev("Receipt", D, "m2", 1))
    assert received.effects == (
        StartClock(at(1), "SC Art. 6.1"),
        NotifyOperator(D, "URGENT_REQUEST_RECEIVED", "SC Art. 5.2"),
    )
    plain = reach(SC, State.IN_PROGRESS)
    assert not plain.urgent


@pytest.mark.parametrize("agreement", [CIS, SC])
def test_may_send_is_what_apply_takes(agreement: str) -> None:
    """The console offers a form by ``may_send`` and the node takes a document by ``apply``:
    for every reachable state, kind, side and decision they agree on what may be sent now
    (``apply`` may still refuse a document's content, never its kind in that state)."""
    from gateway.exchange.conversation import (
        _DECISIONS,
        UnexpectedMessage,
        UnknownKind,
        may_send,
    )
    from gateway.model.profiles import profile

    checked = 0
    for state in PATHS[agreement]:
        conversation = reach(agreement, state)
        for kind in profile(agreement).kinds:
            decisions = sorted(_DECISIONS[kind][0]) if kind in _DECISIONS else [""]
            for sender in (R, D):
                for decision in decisions:
                    event = ev(kind, sender, "new", 50, grounds="основания", decision=decision)
                    allowed = may_send(agreement, state, kind, sender, decision)
                    try:
                        apply(conversation, event)
                        taken = True
                    except UnknownKind:
                        taken = False
                    except UnexpectedMessage as exc:
                        taken = "no such transition" not in str(exc)
                    except ProtocolError:
                        taken = True  # its content, not its kind
                    assert allowed == taken, (state, kind, sender, decision)
                    checked += 1
                # Without a decision: sendable with some decision.
                any_decision = any(may_send(agreement, state, kind, sender, d) for d in decisions)
                assert may_send(agreement, state, kind, sender) == any_decision
    assert checked > 200

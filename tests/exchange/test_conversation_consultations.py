"""Consultations within a conversation (CIS Art. 13 para. 3, 15; SC Art. 9.2): asked, answered,
recorded, never moving the main state or the deadline clock."""

from __future__ import annotations

import pytest

from gateway.exchange.conversation import (
    TRANSITIONS,
    ConsultationRecord,
    NotifyOperator,
    PendingSide,
    State,
    UnexpectedMessage,
    UnknownKind,
    apply,
)
from gateway.exchange.machine_codec import dumps, loads
from tests.exchange.conversation_helpers import CIS, PATHS, SC, D, R, at, ev, reach

_OPEN = [s for s in State if not s.closed and ("Withdrawal", R) in TRANSITIONS[s]]


@pytest.mark.parametrize("state", [s for s in _OPEN if s is not State.SUBMITTED])
def test_every_open_request_state_allows_a_consultation_and_stays(state: State) -> None:
    for agreement, asker in ((CIS, D), (SC, D), (SC, R)):
        if state not in PATHS[agreement]:  # e.g. POSTPONED under SC
            continue
        conversation = reach(agreement, state)
        asked = apply(conversation, ev("ConsultationRequest", asker, "c1", 30))
        assert asked.conversation.state is state
        assert asked.conversation.clock == conversation.clock
        assert asked.conversation.pending_consultations == (PendingSide("c1", asker),)
        assert asked.effects == (
            NotifyOperator(asker.other, "CONSULTATION_REQUESTED", _article(agreement), "c1"),
        )
        answer = ev("ConsultationAnswer", asker.other, "c2", 31, in_reply_to="c1")
        answered = apply(asked.conversation, answer)
        assert answered.conversation.state is state
        assert answered.conversation.pending_consultations == ()
        assert answered.conversation.consultations == (
            ConsultationRecord("c1", asker, "c2", answer.at),
        )
        assert answered.effects == (
            NotifyOperator(asker, "CONSULTATION_ANSWERED", _article(agreement), "c2"),
        )


def test_cis_consultations_are_asked_by_the_requested_party_only() -> None:
    # CIS Art. 13 para. 3, 15: the requested party consults before refusing or setting conditions.
    conversation = reach(CIS, State.IN_PROGRESS)
    with pytest.raises(UnknownKind):
        apply(conversation, ev("ConsultationRequest", R, "c1", 5))
    asked = apply(conversation, ev("ConsultationRequest", D, "c1", 5)).conversation
    with pytest.raises(UnknownKind):
        apply(asked, ev("ConsultationAnswer", D, "c2", 6, in_reply_to="c1"))


def test_an_answer_must_name_a_pending_consultation_of_the_other_party() -> None:
    conversation = reach(SC, State.IN_PROGRESS)
    asked = apply(conversation, ev("ConsultationRequest", D, "c1", 5)).conversation
    for fields in ({"in_reply_to": "nope"}, {}):
        with pytest.raises(UnexpectedMessage) as caught:
            apply(asked, ev("ConsultationAnswer", R, "c2", 6, **fields))
        assert caught.value.path == "/Envelope/Header/InReplyTo"
    with pytest.raises(UnexpectedMessage):  # its own question
        apply(asked, ev("ConsultationAnswer", D, "c2", 6, in_reply_to="c1"))
    done = apply(asked, ev("ConsultationAnswer", R, "c2", 6, in_reply_to="c1")).conversation
    with pytest.raises(UnexpectedMessage):  # answered once
        apply(done, ev("ConsultationAnswer", R, "c3", 7, in_reply_to="c1"))


def test_a_refusal_after_consultation_keeps_the_record_and_a_late_answer_is_recorded() -> None:
    conversation = reach(CIS, State.IN_PROGRESS)
    asked = apply(conversation, ev("ConsultationRequest", D, "c1", 5)).conversation
    refused = apply(asked, ev("Refusal", D, "r1", 6, grounds="CIS Art. 13")).conversation
    assert refused.state is State.REFUSED
    answered = apply(refused, ev("ConsultationAnswer", R, "c2", 7, in_reply_to="c1"))
    assert answered.conversation.state is State.REFUSED
    assert [r.answer_id for r in answered.conversation.consultations] == ["c2"]
    with pytest.raises(UnexpectedMessage):  # no new consultation once closed
        apply(refused, ev("ConsultationRequest", D, "c3", 8))


def test_a_rejected_consultation_request_is_no_longer_pending() -> None:
    conversation = reach(SC, State.IN_PROGRESS)
    asked = apply(conversation, ev("ConsultationRequest", R, "c1", 5)).conversation
    rejected = apply(asked, ev("Rejection", D, "x1", 6, in_reply_to="c1")).conversation
    assert rejected.pending_consultations == ()
    assert rejected.state is State.IN_PROGRESS


def test_consultations_survive_the_store_codec() -> None:
    conversation = reach(SC, State.IN_PROGRESS)
    asked = apply(conversation, ev("ConsultationRequest", D, "c1", 5)).conversation
    both = apply(asked, ev("ConsultationRequest", R, "c2", 6)).conversation
    done = apply(both, ev("ConsultationAnswer", R, "c3", 7, in_reply_to="c1")).conversation
    assert loads(dumps(done)) == done
    assert done.pending_consultations == (PendingSide("c2", R),)


def _article(agreement: str) -> str:
    return "CIS Art. 13, 15" if agreement == CIS else "SC Art. 9.2"


def test_a_record_of_an_oral_consultation_settles_the_request_it_names_or_stands_alone() -> None:
    # Consultations are often held by telephone or video; the record, from either party, is
    # what both conversations keep of them.
    conversation = reach(CIS, State.POSTPONED)
    asked = apply(conversation, ev("ConsultationRequest", D, "c1", 30)).conversation
    settled = apply(asked, ev("ConsultationRecord", D, "c2", 31, in_reply_to="c1"))
    assert settled.conversation.state is State.POSTPONED
    assert settled.conversation.pending_consultations == ()
    assert settled.conversation.consultations == (ConsultationRecord("c1", D, "c2", at(31)),)
    assert settled.effects == (NotifyOperator(R, "CONSULTATION_RECORDED", "CIS Art. 13, 15", "c2"),)
    alone = apply(settled.conversation, ev("ConsultationRecord", R, "c3", 32)).conversation
    assert alone.consultations[-1] == ConsultationRecord("c3", R, "c3", at(32))
    # A consultation held before a refusal may be recorded after it; the state stays.
    refused = apply(reach(CIS, State.REFUSED), ev("ConsultationRecord", D, "c4", 33)).conversation
    assert refused.state is State.REFUSED and len(refused.consultations) == 1

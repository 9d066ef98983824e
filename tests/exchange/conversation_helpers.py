"""Shared helpers for the conversation tests: pinned time, events, paths to every state."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from gateway.exchange.conversation import (
    Conversation,
    Event,
    Role,
    State,
    apply,
    new_conversation,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
R, D = Role.REQUESTING, Role.REQUESTED
CIS, SC = "cis-enforcement", "ru-kz-supreme-courts"


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def ev(kind: str, sender: Role, mid: str, hours: float, **fields: object) -> Event:
    return Event(kind=kind, sender=sender, message_id=mid, at=at(hours), **fields)  # type: ignore[arg-type]


# Paths that reach each state, per agreement: (kind, sender, extra fields).
_REQUEST = [("Request", R, {}), ("Receipt", D, {})]
PATHS: dict[str, dict[State, list[tuple[str, Role, dict[str, object]]]]] = {
    CIS: {
        State.IDLE: [],
        State.SUBMITTED: [("Request", R, {})],
        State.IN_PROGRESS: _REQUEST,
        State.AWAITING_ADDITIONAL_INFO: [*_REQUEST, ("AdditionalInfoRequest", D, {})],
        State.POSTPONED: [*_REQUEST, ("Postponement", D, {})],
        State.CONFIDENTIALITY_HOLD: [*_REQUEST, ("ConfidentialityNotice", D, {})],
        State.ANSWERED: [*_REQUEST, ("Response", D, {})],
        State.REFUSED: [*_REQUEST, ("Refusal", D, {"grounds": "CIS Art. 13: sovereignty"})],
        State.WITHDRAWN: [*_REQUEST, ("Withdrawal", R, {})],
        State.REJECTED: [("Request", R, {}), ("Rejection", D, {})],
        State.INQUIRY_SENT: [("ProtectionMeasuresInquiry", R, {})],
        State.INQUIRY_OPEN: [("ProtectionMeasuresInquiry", R, {}), ("Receipt", D, {})],
        State.INQUIRY_ANSWERED: [
            ("ProtectionMeasuresInquiry", R, {}),
            ("Receipt", D, {}),
            ("ProtectionMeasuresAnswer", D, {}),
        ],
    },
    SC: {
        State.IDLE: [],
        State.SUBMITTED: [("Request", R, {})],
        State.IN_PROGRESS: _REQUEST,
        State.AWAITING_ADDITIONAL_INFO: [*_REQUEST, ("AdditionalInfoRequest", D, {})],
        State.AWAITING_AUTHENTICITY: [*_REQUEST, ("AuthenticityConfirmationRequest", D, {})],
        State.ANSWERED: [*_REQUEST, ("Response", D, {})],
        State.REFUSED: [*_REQUEST, ("Refusal", D, {"grounds": "SC Art. 6.2: public order"})],
        State.WITHDRAWN: [*_REQUEST, ("Withdrawal", R, {})],
        State.REJECTED: [("Request", R, {}), ("Rejection", D, {})],
        State.INFORMATION_SENT: [("UnsolicitedInformation", R, {})],
        State.INFORMATION_DELIVERED: [("UnsolicitedInformation", R, {}), ("Receipt", D, {})],
    },
}


def reach(agreement: str, state: State) -> Conversation:
    conversation = new_conversation("conv-1", agreement)
    for i, (kind, sender, fields) in enumerate(PATHS[agreement][state]):
        conversation = apply(conversation, ev(kind, sender, f"p{i}", i, **fields)).conversation
    assert conversation.state is state
    return conversation


__all__ = ["CIS", "PATHS", "SC", "T0", "D", "R", "at", "date", "ev", "reach"]

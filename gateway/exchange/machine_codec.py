"""Conversation machine state <-> JSON, for the store.

The stored form holds no personal data: ids, states, roles, instants and decision codes. The
refusal grounds (free text that may name people) are not stored here — they live in the signed,
encrypted Refusal document — so :attr:`Conversation.refusal_grounds` comes back as a marker.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from gateway.exchange.conversation import (
    ConsentRecord,
    ConsultationRecord,
    Conversation,
    DeadlineClock,
    DelayRecord,
    LastChange,
    Pause,
    PendingSide,
    Role,
    State,
)

GROUNDS_KEPT_IN_DOCUMENT = "(в документе отказа)"
"""What ``refusal_grounds`` reads after a round trip: the text itself stays encrypted."""


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _d(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _pdt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _pd(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def dumps(conversation: Conversation) -> str:
    c = conversation
    data: dict[str, Any] = {
        "conversation_id": c.conversation_id,
        "agreement": c.agreement,
        "state": c.state.value,
        "opening_message_id": c.opening_message_id,
        "requested_deadline": _d(c.requested_deadline),
        "urgent": c.urgent,
        "clock": {
            "started_at": _dt(c.clock.started_at),
            "stopped_at": _dt(c.clock.stopped_at),
            "pauses": [[p.reason.value, _dt(p.since), _dt(p.until)] for p in c.clock.pauses],
        },
        "delays": [[r.message_id, _dt(r.at), _d(r.expected_by)] for r in c.delays],
        "refused": bool(c.refusal_grounds),
        "partial_refusals": list(c.partial_refusals),
        "last_change": (
            [c.last_change.message_id, c.last_change.key, c.last_change.sender.value]
            if c.last_change
            else None
        ),
        "resend_due": c.resend_due,
        "pending_consents": [[p.message_id, p.sender.value] for p in c.pending_consents],
        "consents": [[r.request_id, r.decision, r.decided_by.value, _dt(r.at)] for r in c.consents],
        "pending_inquiries": [[p.message_id, p.sender.value] for p in c.pending_inquiries],
        "pending_consultations": [[p.message_id, p.sender.value] for p in c.pending_consultations],
        "consultations": [
            [r.request_id, r.asked_by.value, r.answer_id, _dt(r.at)] for r in c.consultations
        ],
        "message_ids": sorted(c.message_ids),
        "updated_at": _dt(c.updated_at),
    }
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def loads(text: str) -> Conversation:
    d = json.loads(text)
    clock = d["clock"]
    return Conversation(
        conversation_id=d["conversation_id"],
        agreement=d["agreement"],
        state=State(d["state"]),
        opening_message_id=d["opening_message_id"],
        requested_deadline=_pd(d["requested_deadline"]),
        # Machines stored before urgency and partial refusals were kept have neither.
        urgent=d.get("urgent", False),
        clock=DeadlineClock(
            started_at=_pdt(clock["started_at"]),
            stopped_at=_pdt(clock["stopped_at"]),
            pauses=tuple(Pause(State(r), _pdt(s), _pdt(u)) for r, s, u in clock["pauses"]),  # type: ignore[arg-type]
        ),
        delays=tuple(DelayRecord(m, _pdt(a), _pd(e)) for m, a, e in d["delays"]),  # type: ignore[arg-type]
        refusal_grounds=GROUNDS_KEPT_IN_DOCUMENT if d["refused"] else "",
        partial_refusals=tuple(d.get("partial_refusals", ())),
        last_change=(
            LastChange(d["last_change"][0], d["last_change"][1], Role(d["last_change"][2]))
            if d["last_change"]
            else None
        ),
        resend_due=d["resend_due"],
        pending_consents=tuple(PendingSide(m, Role(s)) for m, s in d["pending_consents"]),
        consents=tuple(
            ConsentRecord(r, dec, Role(by), _pdt(at))  # type: ignore[arg-type]
            for r, dec, by, at in d["consents"]
        ),
        pending_inquiries=tuple(PendingSide(m, Role(s)) for m, s in d["pending_inquiries"]),
        # Machines stored before consultations existed have none.
        pending_consultations=tuple(
            PendingSide(m, Role(s)) for m, s in d.get("pending_consultations", ())
        ),
        consultations=tuple(
            ConsultationRecord(r, Role(by), a, _pdt(at))  # type: ignore[arg-type]
            for r, by, a, at in d.get("consultations", ())
        ),
        message_ids=frozenset(d["message_ids"]),
        updated_at=_pdt(d["updated_at"]),
    )

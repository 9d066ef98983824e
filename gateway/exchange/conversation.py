"""The conversation state machine: pure protocol logic, no sockets, no SQL, no clock (like h11).

Theory of operation
===================

A *conversation* is everything exchanged about one request (or one piece of unsolicited
information, or one inquiry about protection measures). Both nodes run the same machine over the
same documents: every document a node sends or receives is summarised as an :class:`Event`
(kind, sender role, message id, time, the few fields the protocol needs) and fed to
:func:`apply`, which returns a :class:`Step`: the new :class:`Conversation` and the
:data:`Effect` s to carry out (start, pause, resume or stop the deadline clock; schedule a
reminder; notify an operator). The caller — the store, the web handlers, the jobs — applies the
effects; this module never does.

Roles are relative to the conversation: the **requesting** party opened it (it sent the request,
the unsolicited information or the inquiry), the **requested** party was asked. The agreement
profile (:mod:`gateway.model.profiles`) says which kinds exist in an agreement and which role may
send each; :data:`TRANSITIONS` says in which state. Main path of a request::

    IDLE --Request(R)--> SUBMITTED --Receipt(D)--> IN_PROGRESS --Response(D)--> ANSWERED
                                                      |   \\--Refusal(D, grounds)--> REFUSED
                                                      |   \\--Refusal(D, partial)--> (same state)
                                                      |   \\--Withdrawal(R)-------> WITHDRAWN
       AdditionalInfoRequest(D) ⇄ AdditionalInfoAnswer(R)        AWAITING_ADDITIONAL_INFO
       Postponement(D) → PostponementDecision(R) accept|decline   POSTPONED
       ConfidentialityNotice(D) → ConfidentialityDecision(R) proceed|withdraw  CONFIDENTIALITY_HOLD
       AuthenticityConfirmationRequest(D) → AuthenticityConfirmation(R) confirmed|not-confirmed
                                                                            AWAITING_AUTHENTICITY

(R = requesting party, D = requested party.) While open, the requested party may send
``DelayNotice`` (recorded, no state change) and either party may run the *side conversations*
(consent to disclosure, protection-measures inquiry, consultations — CIS Art. 13 para. 3 and 15
before a refusal or conditions, SC Art. 9.2 on substantial costs) without touching the main
state; the profile says which side may ask for a consultation. A closed state accepts only
receipts, rejections, consent messages and answers to side inquiries or consultations still
pending — it never leaves itself. Anything else is a :class:`ProtocolError` naming the state,
the kind and the sender; the conversation is immutable, so the caller's copy is unchanged.

Two rules sit outside the table, both documented at their functions: a document the peer
rejected may be re-sent once corrected (:func:`_is_resend`), and decisions are refined by their
``decision`` field before the table is consulted (:func:`_table_key`).

The deadline clock (CIS Art. 12; SC Art. 6.1) starts at the receipt of the request and is paused
while the requested party waits on the requesting party — see :data:`CLOCK_PAUSED_IN` for the
decision and the articles. The clock holds instants only; turning them into a due date with
working days and calendars is :mod:`gateway.rules`' business.

Exception tree::

    GatewayError
    └── ProtocolError           the event is not allowed now (state, kind, sender named)
        ├── UnexpectedMessage   no transition for this kind from this sender in this state
        ├── UnknownKind         the kind is not one of the agreement's, or the role may not send it
        ├── MissingField        a field the protocol needs is absent or invalid (Refusal grounds …)
        └── DuplicateMessage    the message id was already applied (the caller re-acknowledges)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType

from gateway.model.problems import GatewayError, Problem
from gateway.model.profiles import Direction, profile

# --- limits ------------------------------------------------------------------------------------

MAX_MESSAGES_PER_CONVERSATION = 1000
"""Documents one conversation may hold. A real request needs under twenty (request, receipts,
one or two questions, a delay notice, the answer, consent); the bound stops a hostile or broken
peer from growing one conversation's state without end."""

MAX_PENDING_SIDE_REQUESTS = 32
"""Consent requests, protection-measures inquiries or consultation requests awaiting an answer
at once, per kind. A body asks for consent per third party (a court, a bank); dozens at once
would be a fault."""


# --- roles, states -----------------------------------------------------------------------------


class Role(StrEnum):
    """Who sent a document, relative to the conversation."""

    REQUESTING = "requesting"
    """The party that opened the conversation (CIS Art. 1 'запрашивающая Сторона')."""
    REQUESTED = "requested"
    """The party that was asked (CIS Art. 1 'запрашиваемая Сторона')."""

    @property
    def other(self) -> Role:
        return Role.REQUESTED if self is Role.REQUESTING else Role.REQUESTING


class State(StrEnum):
    IDLE = "idle"
    """Nothing exchanged yet; only an opening document is accepted."""
    SUBMITTED = "submitted"
    """The request was sent; its receipt has not come back."""
    IN_PROGRESS = "in-progress"
    """Delivered (the requested party's receipt) and being executed; the deadline clock runs."""
    AWAITING_ADDITIONAL_INFO = "awaiting-additional-info"
    """The requested party asked for additional information (CIS Art. 14; SC Art. 6.1)."""
    POSTPONED = "postponed"
    """Execution postponed or conditions set; the requesting party must decide (CIS Art. 15)."""
    CONFIDENTIALITY_HOLD = "confidentiality-hold"
    """The request cannot be executed confidentially; the requesting party decides (CIS Art. 16)."""
    AWAITING_AUTHENTICITY = "awaiting-authenticity"
    """The requested party doubts authenticity and asked for confirmation (SC Art. 5.3)."""
    ANSWERED = "answered"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    """Withdrawn by the requesting party, or closed by its answer: declining conditions or
    confidentiality (CIS Art. 15, 16), or not confirming the request's authenticity or content
    (SC Art. 5.3): a request its own sender does not stand behind is not executed."""
    REJECTED = "rejected"
    """The opening document was rejected by the peer's gateway (signature, schema): never began."""
    INFORMATION_SENT = "information-sent"
    """Unsolicited information sent (SC Art. 7); closes when its receipt arrives."""
    INFORMATION_DELIVERED = "information-delivered"
    INQUIRY_SENT = "inquiry-sent"
    """A protection-measures inquiry opened a conversation of its own (CIS Art. 9.5), unreceived."""
    INQUIRY_OPEN = "inquiry-open"
    INQUIRY_ANSWERED = "inquiry-answered"

    @property
    def closed(self) -> bool:
        return self in CLOSED_STATES


CLOSED_STATES = frozenset(
    {
        State.ANSWERED,
        State.REFUSED,
        State.WITHDRAWN,
        State.REJECTED,
        State.INFORMATION_DELIVERED,
        State.INQUIRY_ANSWERED,
    }
)

CLOCK_PAUSED_IN: Mapping[State, str] = MappingProxyType(
    {
        State.AWAITING_ADDITIONAL_INFO: "CIS Art. 14; SC Art. 6.1",
        State.POSTPONED: "CIS Art. 15",
        State.CONFIDENTIALITY_HOLD: "CIS Art. 16",
        State.AWAITING_AUTHENTICITY: "SC Art. 5.3",
    }
)
"""States in which the deadline clock is paused, with the article that makes the requested party
wait on the requesting one. The agreements count the deadline from receipt of *the request* (CIS
Art. 12; SC Art. 6.1) and are silent on suspension; in each of these states the requested party
cannot go on until the requesting party acts — the request lacks what proper execution needs
(Art. 14), execution is conditional on the requesting party's consent (Art. 15, 16) or the
request's authenticity is in doubt (SC Art. 5.3). Counting that time against the requested party
would mark it overdue for the other side's delay, so the clock pauses and resumes where it
stopped (it does not restart). Delay notices do not pause it (CIS Art. 12 para. 3 asks only for
notice)."""


# --- events, records, effects ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """A verified, parsed document, summarised for the protocol."""

    kind: str
    """``<env:Kind>``, e.g. ``Request``."""
    sender: Role
    message_id: str
    at: datetime
    """When the document was created (a Receipt: when the acknowledged document was received)."""
    in_reply_to: str | None = None
    """``<env:InReplyTo>``: which message a receipt, rejection or side answer is about."""
    grounds: str = ""
    """Refusal: the circumstances preventing execution (CIS Art. 13; SC Art. 6.2). Required."""
    decision: str = ""
    """PostponementDecision: ``accept``/``decline``; ConfidentialityDecision: ``proceed``/
    ``withdraw``; ConsentDecision: ``granted``/``refused``; AuthenticityConfirmation:
    ``confirmed``/``not-confirmed`` (SC Art. 5.3); Refusal: ``partial`` for a partial refusal
    (SC Art. 6.2 "полностью или частично"), else empty or ``full``."""
    expected_by: date | None = None
    """DelayNotice: the date by which the requested party now expects to answer."""
    requested_deadline: date | None = None
    """Request: a shorter deadline asked for (CIS Art. 12 para. 2; ``<env:RequestedDeadline>``),
    or the term within which execution is expected (SC Art. 5.1 г), ``<sc:ExpectedBy>``): the
    earlier of the two."""
    urgent: bool = False
    """Request: ``<env:Urgency>urgent`` (SC Art. 5.2 "в случаях, не терпящих отлагательства")."""

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError(f"Event.at must carry a time zone, got {self.at!r}")
        if not self.message_id:
            raise ValueError("Event.message_id must not be empty")
        if not isinstance(self.sender, Role):
            raise TypeError(f"Event.sender must be a Role, got {self.sender!r}")


@dataclass(frozen=True, slots=True)
class Pause:
    reason: State
    """The holding state that paused the clock."""
    since: datetime
    until: datetime | None = None
    """None: still paused."""


@dataclass(frozen=True, slots=True)
class DeadlineClock:
    """The instants the deadline depends on; :mod:`gateway.rules` turns them into a due date."""

    started_at: datetime | None = None
    """Receipt of the request by the requested party (CIS Art. 12 'со дня получения')."""
    pauses: tuple[Pause, ...] = ()
    stopped_at: datetime | None = None

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1].until is None

    @property
    def running(self) -> bool:
        return self.started_at is not None and self.stopped_at is None and not self.paused


@dataclass(frozen=True, slots=True)
class DelayRecord:
    message_id: str
    at: datetime
    expected_by: date | None


@dataclass(frozen=True, slots=True)
class PendingSide:
    """A consent request or protection-measures inquiry awaiting its answer."""

    message_id: str
    sender: Role


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    request_id: str
    decision: str
    """``granted`` or ``refused`` (CIS Art. 9.2; SC Art. 8.2)."""
    decided_by: Role
    at: datetime


@dataclass(frozen=True, slots=True)
class ConsultationRecord:
    """A consultation held within the conversation: the question and the answer that closed it
    (CIS Art. 13 para. 3, 15; SC Art. 9.2). The documents themselves hold what was said."""

    request_id: str
    """The ConsultationRequest; for a record of an oral consultation nobody asked for in writing,
    the record itself."""
    asked_by: Role
    answer_id: str
    """The ConsultationAnswer, or the ConsultationRecord of a consultation held orally."""
    at: datetime
    """When the answer was created."""


@dataclass(frozen=True, slots=True)
class LastChange:
    """The document that last changed the main state: the one a peer's rejection may undo."""

    message_id: str
    key: str
    """Table key (kind, refined by decision) — a re-send must have the same."""
    sender: Role


@dataclass(frozen=True, slots=True)
class Conversation:
    conversation_id: str
    agreement: str
    """Profile id (``cis-enforcement`` or ``ru-kz-supreme-courts``)."""
    state: State = State.IDLE
    opening_message_id: str | None = None
    requested_deadline: date | None = None
    """The shorter term the request asked for (see :attr:`Event.requested_deadline`)."""
    urgent: bool = False
    """The request was sent as urgent (SC Art. 5.2)."""
    clock: DeadlineClock = DeadlineClock()
    delays: tuple[DelayRecord, ...] = ()
    refusal_grounds: str = ""
    """Grounds of the refusal that closed the conversation."""
    partial_refusals: tuple[str, ...] = ()
    """Message ids of partial refusals (SC Art. 6.2): the rest of the request is still executed
    and answered by a Response."""
    last_change: LastChange | None = None
    resend_due: bool = False
    """The peer rejected :attr:`last_change`; the same kind may be sent again, corrected."""
    pending_consents: tuple[PendingSide, ...] = ()
    consents: tuple[ConsentRecord, ...] = ()
    pending_inquiries: tuple[PendingSide, ...] = ()
    pending_consultations: tuple[PendingSide, ...] = ()
    consultations: tuple[ConsultationRecord, ...] = ()
    """Consultations answered, in order: the record a refusal or conditions can point to."""
    message_ids: frozenset[str] = frozenset()
    """Every message applied: a repeat is refused as :class:`DuplicateMessage`."""
    updated_at: datetime | None = None

    @property
    def closed(self) -> bool:
        return self.state.closed

    @property
    def expected_by(self) -> date | None:
        """The latest date announced by a delay notice, if any."""
        for record in reversed(self.delays):
            if record.expected_by is not None:
                return record.expected_by
        return None


@dataclass(frozen=True, slots=True)
class StartClock:
    at: datetime
    article: str


@dataclass(frozen=True, slots=True)
class PauseClock:
    at: datetime
    reason: State
    article: str


@dataclass(frozen=True, slots=True)
class ResumeClock:
    at: datetime


@dataclass(frozen=True, slots=True)
class StopClock:
    at: datetime
    outcome: State


@dataclass(frozen=True, slots=True)
class ScheduleReminder:
    on: date
    audience: Role
    """Whose operator is reminded."""
    code: str


@dataclass(frozen=True, slots=True)
class NotifyOperator:
    audience: Role
    """Whose operator must know or act; the node compares it with its own role."""
    code: str
    """Stable code, e.g. ``ADDITIONAL_INFO_REQUESTED``; the console translates it."""
    article: str = ""
    message_id: str = ""
    """The document that caused the notice."""


Effect = StartClock | PauseClock | ResumeClock | StopClock | ScheduleReminder | NotifyOperator


@dataclass(frozen=True, slots=True)
class Step:
    conversation: Conversation
    effects: tuple[Effect, ...]


# --- errors ------------------------------------------------------------------------------------


class ProtocolError(GatewayError):
    """An event is not allowed now. The conversation it was applied to is unchanged."""

    code = "PROTOCOL_UNEXPECTED_MESSAGE"

    def __init__(
        self,
        state: State,
        kind: str,
        sender: Role,
        reason: str,
        article: str = "",
        path: str = "/Envelope/Header/Kind",
    ) -> None:
        self.state = state
        self.kind = kind
        self.sender = sender
        self.reason = reason
        self.article = article
        self.path = path
        """Where in the document the fault is (the header's kind, or a body field)."""
        super().__init__(f"{kind} from the {sender} party in state {state}: {reason}")

    def problem(self) -> Problem:
        """The problem to put in a Rejection to the peer (no internal detail beyond the rule)."""
        return Problem(
            code=self.code,
            path=self.path,
            message_ru=(
                f"Документ {self.kind} от {_ROLE_RU[self.sender]} стороны недопустим в состоянии "
                f"переписки «{self.state}»: {self.reason}."
            ),
            message_en=str(self),
            remedy_ru=(
                "Проверьте состояние переписки и поля документа; направьте документ допустимого "
                "вида с заполненными полями."
            ),
            article=self.article,
        )


class UnexpectedMessage(ProtocolError):
    code = "PROTOCOL_UNEXPECTED_MESSAGE"


class UnknownKind(ProtocolError):
    code = "PROTOCOL_KIND_NOT_IN_AGREEMENT"


class MissingField(ProtocolError):
    code = "PROTOCOL_MISSING_FIELD"


class DuplicateMessage(ProtocolError):
    code = "PROTOCOL_DUPLICATE_MESSAGE"


_KIND_PATH = "/Envelope/Header/Kind"
_ROLE_RU = {Role.REQUESTING: "запрашивающей", Role.REQUESTED: "запрашиваемой"}


# --- the table ---------------------------------------------------------------------------------

_R, _D = Role.REQUESTING, Role.REQUESTED
_SC = "ru-kz-supreme-courts"
_ACKS = (("Receipt", _R), ("Receipt", _D), ("Rejection", _R), ("Rejection", _D))
_CONSENT = (
    ("ConsentRequest", _R),
    ("ConsentRequest", _D),
    ("ConsentDecision", _R),
    ("ConsentDecision", _D),
)
_INQUIRY = (("ProtectionMeasuresInquiry", _R), ("ProtectionMeasuresInquiry", _D))
_INQUIRY_ANSWER = (("ProtectionMeasuresAnswer", _R), ("ProtectionMeasuresAnswer", _D))
_CONSULTATION = (("ConsultationRequest", _R), ("ConsultationRequest", _D))
_CONSULTATION_ANSWER = (
    ("ConsultationAnswer", _R),
    ("ConsultationAnswer", _D),
    ("ConsultationRecord", _R),
    ("ConsultationRecord", _D),
)


def _open(state: State, moves: dict[tuple[str, Role], State]) -> dict[tuple[str, Role], State]:
    """Rows every open request state shares, plus the state's own moves."""
    row: dict[tuple[str, Role], State] = {
        key: state
        for key in (
            *_ACKS,
            *_CONSENT,
            *_INQUIRY,
            *_INQUIRY_ANSWER,
            *_CONSULTATION,
            *_CONSULTATION_ANSWER,
        )
    }
    row[("DelayNotice", _D)] = state
    row[("Withdrawal", _R)] = State.WITHDRAWN
    row[("Refusal", _D)] = State.REFUSED
    # SC Art. 6.2: "полностью или частично отказано": a partial refusal leaves the rest of the
    # request to be executed; the Response for the rest closes the conversation.
    row[("Refusal:partial", _D)] = state
    row.update(moves)
    return row


def _closed(state: State, *, consent: bool) -> dict[tuple[str, Role], State]:
    # A consultation still pending when the request closed may be answered: the record of it
    # belongs with the refusal or conditions it preceded (CIS Art. 13 para. 3).
    keys = (*_ACKS, *_CONSENT, *_INQUIRY_ANSWER, *_CONSULTATION_ANSWER) if consent else _ACKS
    return {key: state for key in keys}


_TABLE: dict[State, dict[tuple[str, Role], State]] = {
    State.IDLE: {
        ("Request", _R): State.SUBMITTED,
        ("UnsolicitedInformation", _R): State.INFORMATION_SENT,
        ("ProtectionMeasuresInquiry", _R): State.INQUIRY_SENT,
    },
    State.SUBMITTED: {
        ("Receipt", _D): State.IN_PROGRESS,
        ("Rejection", _D): State.REJECTED,
        ("Withdrawal", _R): State.WITHDRAWN,
    },
    State.IN_PROGRESS: _open(
        State.IN_PROGRESS,
        {
            ("Response", _D): State.ANSWERED,
            ("AdditionalInfoRequest", _D): State.AWAITING_ADDITIONAL_INFO,
            ("Postponement", _D): State.POSTPONED,
            ("ConfidentialityNotice", _D): State.CONFIDENTIALITY_HOLD,
            ("AuthenticityConfirmationRequest", _D): State.AWAITING_AUTHENTICITY,
        },
    ),
    State.AWAITING_ADDITIONAL_INFO: _open(
        State.AWAITING_ADDITIONAL_INFO,
        {
            ("AdditionalInfoAnswer", _R): State.IN_PROGRESS,
            # The requested party may answer with what it has rather than wait for ever: its
            # question lapses (CIS Art. 6 last para.: 'в том объеме, в котором она доступна').
            ("Response", _D): State.ANSWERED,
        },
    ),
    State.POSTPONED: _open(
        State.POSTPONED,
        {
            ("PostponementDecision:accept", _R): State.IN_PROGRESS,
            ("PostponementDecision:decline", _R): State.WITHDRAWN,
        },
    ),
    State.CONFIDENTIALITY_HOLD: _open(
        State.CONFIDENTIALITY_HOLD,
        {
            ("ConfidentialityDecision:proceed", _R): State.IN_PROGRESS,
            ("ConfidentialityDecision:withdraw", _R): State.WITHDRAWN,
        },
    ),
    State.AWAITING_AUTHENTICITY: _open(
        State.AWAITING_AUTHENTICITY,
        {
            ("AuthenticityConfirmation:confirmed", _R): State.IN_PROGRESS,
            # SC Art. 5.3: confirmation was asked because the request's authenticity or content
            # is in doubt; "not confirmed" means it is not the requesting party's: not executed.
            ("AuthenticityConfirmation:not-confirmed", _R): State.WITHDRAWN,
        },
    ),
    State.ANSWERED: _closed(State.ANSWERED, consent=True),
    State.REFUSED: _closed(State.REFUSED, consent=True),
    State.WITHDRAWN: _closed(State.WITHDRAWN, consent=True),
    State.REJECTED: _closed(State.REJECTED, consent=False),
    State.INFORMATION_SENT: {
        ("Receipt", _D): State.INFORMATION_DELIVERED,
        ("Rejection", _D): State.REJECTED,
    },
    # SC Art. 8.2: the receiver of unsolicited information may ask consent to disclose it.
    State.INFORMATION_DELIVERED: _closed(State.INFORMATION_DELIVERED, consent=True),
    State.INQUIRY_SENT: {
        ("Receipt", _D): State.INQUIRY_OPEN,
        ("Rejection", _D): State.REJECTED,
    },
    State.INQUIRY_OPEN: {
        **{key: State.INQUIRY_OPEN for key in _ACKS},
        ("ProtectionMeasuresAnswer", _D): State.INQUIRY_ANSWERED,
    },
    State.INQUIRY_ANSWERED: _closed(State.INQUIRY_ANSWERED, consent=False),
}

TRANSITIONS: Mapping[State, Mapping[tuple[str, Role], State]] = MappingProxyType(
    {state: MappingProxyType(row) for state, row in _TABLE.items()}
)
"""``{state: {(kind, sender_role): next_state}}``. Decision kinds are refined by their decision
(``PostponementDecision:accept``). A missing entry is an :class:`UnexpectedMessage`."""

_DECISIONS: Mapping[str, tuple[frozenset[str], str]] = MappingProxyType(
    {
        "PostponementDecision": (frozenset({"accept", "decline"}), "CIS Art. 15"),
        "ConfidentialityDecision": (frozenset({"proceed", "withdraw"}), "CIS Art. 16"),
        "ConsentDecision": (frozenset({"granted", "refused"}), "CIS Art. 9.2; SC Art. 8.2"),
        "AuthenticityConfirmation": (frozenset({"confirmed", "not-confirmed"}), "SC Art. 5.3"),
        "Refusal": (frozenset({"", "full", "partial"}), "SC Art. 6.2"),
    }
)
_REFINED = frozenset(
    {"PostponementDecision", "ConfidentialityDecision", "AuthenticityConfirmation"}
)

_NOTICES: Mapping[str, tuple[Role, str, str]] = MappingProxyType(
    {
        # key: (whose operator, code, article)
        "Response": (_R, "RESPONSE_RECEIVED", "CIS Art. 4–8; SC Art. 6.1"),
        "Refusal": (_R, "REQUEST_REFUSED", "CIS Art. 13; SC Art. 6.2"),
        "Withdrawal": (_D, "REQUEST_WITHDRAWN", ""),
        "DelayNotice": (_R, "DELAY_ANNOUNCED", "CIS Art. 12; SC Art. 6.1"),
        "AdditionalInfoRequest": (_R, "ADDITIONAL_INFO_REQUESTED", "CIS Art. 14; SC Art. 6.1"),
        "AdditionalInfoAnswer": (_D, "ADDITIONAL_INFO_RECEIVED", "CIS Art. 14; SC Art. 6.1"),
        "Postponement": (_R, "POSTPONEMENT_DECISION_NEEDED", "CIS Art. 15"),
        "PostponementDecision:accept": (_D, "CONDITIONS_ACCEPTED", "CIS Art. 15"),
        "PostponementDecision:decline": (_D, "CONDITIONS_DECLINED", "CIS Art. 15"),
        "ConfidentialityNotice": (_R, "CONFIDENTIALITY_DECISION_NEEDED", "CIS Art. 16"),
        "ConfidentialityDecision:proceed": (_D, "PROCEED_WITHOUT_CONFIDENTIALITY", "CIS Art. 16"),
        "ConfidentialityDecision:withdraw": (_D, "REQUEST_WITHDRAWN", "CIS Art. 16"),
        "AuthenticityConfirmationRequest": (_R, "AUTHENTICITY_CONFIRMATION_NEEDED", "SC Art. 5.3"),
        "AuthenticityConfirmation:confirmed": (_D, "AUTHENTICITY_CONFIRMED", "SC Art. 5.3"),
        "AuthenticityConfirmation:not-confirmed": (
            _D,
            "AUTHENTICITY_NOT_CONFIRMED",
            "SC Art. 5.3",
        ),
        "UnsolicitedInformation": (_D, "UNSOLICITED_INFORMATION_RECEIVED", "SC Art. 7"),
        "ProtectionMeasuresAnswer": (_R, "PROTECTION_MEASURES_ANSWERED", "CIS Art. 9.5"),
    }
)


# --- the core ----------------------------------------------------------------------------------


def new_conversation(conversation_id: str, agreement: str) -> Conversation:
    """An empty conversation under ``agreement`` (raises KeyError naming the known profiles)."""
    profile(agreement)
    if not conversation_id:
        raise ValueError("conversation_id must not be empty")
    return Conversation(conversation_id=conversation_id, agreement=agreement)


def apply(conversation: Conversation, event: Event) -> Step:
    """Apply one document to a conversation; return the new conversation and the effects.

    Raises a :class:`ProtocolError` subclass if the event is not allowed now; ``conversation``
    is immutable, so the caller still holds the unchanged state.
    """
    state = conversation.state
    fail = _failer(state, event)
    if event.message_id in conversation.message_ids:
        raise DuplicateMessage(
            state, event.kind, event.sender, f"message {event.message_id} was already applied"
        )
    if len(conversation.message_ids) >= MAX_MESSAGES_PER_CONVERSATION:
        raise fail(UnexpectedMessage, f"over {MAX_MESSAGES_PER_CONVERSATION} documents")
    agreement = profile(conversation.agreement)
    kind = agreement.kinds.get(event.kind)
    if kind is None:
        raise fail(UnknownKind, f"not a message kind of {agreement.id}")
    if not _direction_allows(kind.direction, event.sender):
        raise fail(UnknownKind, f"only the {kind.direction} party may send it", kind.article)
    _check_fields(event, fail)
    key = _table_key(event)

    if _is_resend(conversation, event, key):
        changed = replace(
            conversation,
            last_change=LastChange(event.message_id, key, event.sender),
            resend_due=False,
        )
        return Step(_seen(changed, event), ())

    target = _target(state, key, event.sender)
    if target is None:
        raise fail(UnexpectedMessage, "no such transition", kind.article)

    if target is state:
        changed, effects = _stay(conversation, event, fail)
    else:
        changed, effects = _move(conversation, event, key, target)
    return Step(_seen(changed, event), tuple(effects))


_Fail = Callable[..., ProtocolError]
"""Builds the error for the current state and event: ``fail(ErrorClass, reason, article="")``."""


def _failer(state: State, event: Event) -> _Fail:
    def fail(
        cls: type[ProtocolError], reason: str, article: str = "", path: str = ""
    ) -> ProtocolError:
        return cls(state, event.kind, event.sender, reason, article, path or _KIND_PATH)

    return fail


def _check_fields(event: Event, fail: _Fail) -> None:
    if event.kind == "Refusal" and not event.grounds.strip():
        raise fail(
            MissingField,
            "a refusal must state its grounds (field 'grounds')",
            "CIS Art. 13; SC Art. 6.2",
            f"/Envelope/Body/{event.kind}/Grounds",
        )
    allowed = _DECISIONS.get(event.kind)
    if allowed is not None and event.decision not in allowed[0]:
        raise fail(
            MissingField,
            # The peer's value is not echoed: errors travel back and into logs.
            f"field 'decision' must be one of {', '.join(sorted(allowed[0]))}",
            allowed[1],
            f"/Envelope/Body/{event.kind}/Decision",
        )


def may_send(
    agreement: str, state: State, kind: str, sender: Role, decision: str | None = None
) -> bool:
    """Whether ``sender`` may send ``kind`` now, in a conversation under ``agreement`` in
    ``state``: the agreement has the kind and lets that side send it, and the table of
    transitions has it in this state — the checks :func:`apply` makes (the node) and what the
    console asks before offering a form. ``decision`` (``accept``, ``partial``, …) asks about the
    kind with that decision; None: with any decision the kind allows (a form whose own fields
    choose it). The rest is the document's content, judged when it is sent."""
    spec = profile(agreement).kinds.get(kind)
    if spec is None or not _direction_allows(spec.direction, sender):
        return False
    if decision is not None:
        return _target(state, _key(kind, decision), sender) is not None
    return _target(state, kind, sender) is not None or any(
        key.startswith(f"{kind}:") and who is sender for key, who in TRANSITIONS[state]
    )


def _direction_allows(direction: Direction, sender: Role) -> bool:
    return direction is Direction.EITHER or direction.value == sender.value


def _target(state: State, key: str, sender: Role) -> State | None:
    return TRANSITIONS[state].get((key, sender))


def _table_key(event: Event) -> str:
    return _key(event.kind, event.decision)


def _key(kind: str, decision: str) -> str:
    """The table's event name: the kind, refined by the decision for decision kinds, because
    accept and decline lead to different states."""
    if kind in _REFINED:
        return f"{kind}:{decision}"
    if kind == "Refusal" and decision == "partial":
        return "Refusal:partial"
    return kind


def _is_resend(conversation: Conversation, event: Event, key: str) -> bool:
    """The one rule outside the table: after the peer's gateway rejected the document that last
    changed the state (bad signature, schema), that document never took effect on the peer's side,
    while ours already moved. The sender may send the same kind (same decision) again, corrected,
    under a new message id; the state does not move a second time."""
    last = conversation.last_change
    return (
        conversation.resend_due
        and last is not None
        and last.key == key
        and last.sender is event.sender
    )


def _seen(conversation: Conversation, event: Event) -> Conversation:
    return replace(
        conversation,
        message_ids=conversation.message_ids | {event.message_id},
        updated_at=event.at,
    )


def _stay(
    conversation: Conversation, event: Event, fail: _Fail
) -> tuple[Conversation, list[Effect]]:
    """An event the table allows without a change of state: acks, delay notices, side talk."""
    effects: list[Effect] = []
    kind, sender = event.kind, event.sender
    if kind == "Refusal":  # partial (SC Art. 6.2): the rest goes on
        conversation = replace(
            conversation, partial_refusals=(*conversation.partial_refusals, event.message_id)
        )
        effects.append(
            NotifyOperator(_R, "REQUEST_PARTIALLY_REFUSED", "SC Art. 6.2", event.message_id)
        )
    elif kind == "DelayNotice":
        record = DelayRecord(event.message_id, event.at, event.expected_by)
        conversation = replace(conversation, delays=(*conversation.delays, record))
        effects.append(_notice("DelayNotice", event))
        if event.expected_by is not None:
            effects.append(ScheduleReminder(event.expected_by, _R, "DELAY_EXPECTED_DATE_REACHED"))
    elif kind == "Rejection":
        conversation, more = _rejected(conversation, event)
        effects.extend(more)
    elif kind in ("ConsultationRequest", "ConsultationAnswer", "ConsultationRecord"):
        conversation, effect = _consultation(conversation, event, fail)
        effects.append(effect)
    elif kind in ("ConsentRequest", "ProtectionMeasuresInquiry"):
        consent = kind == "ConsentRequest"
        pending = conversation.pending_consents if consent else conversation.pending_inquiries
        if len(pending) >= MAX_PENDING_SIDE_REQUESTS:
            raise fail(UnexpectedMessage, f"{MAX_PENDING_SIDE_REQUESTS} {kind}s already pending")
        added = (*pending, PendingSide(event.message_id, sender))
        conversation = (
            replace(conversation, pending_consents=added)
            if consent
            else replace(conversation, pending_inquiries=added)
        )
        code = "CONSENT_REQUESTED" if kind == "ConsentRequest" else "PROTECTION_MEASURES_INQUIRY"
        effects.append(NotifyOperator(sender.other, code, "", event.message_id))
    elif kind in ("ConsentDecision", "ProtectionMeasuresAnswer"):
        consent = kind == "ConsentDecision"
        pending = conversation.pending_consents if consent else conversation.pending_inquiries
        match = [p for p in pending if p.message_id == event.in_reply_to]
        if not match or match[0].sender is not sender.other:
            raise fail(
                UnexpectedMessage,
                f"in_reply_to {event.in_reply_to!r} names no pending request of the other party",
            )
        rest = tuple(p for p in pending if p.message_id != event.in_reply_to)
        conversation = (
            replace(conversation, pending_consents=rest)
            if consent
            else replace(conversation, pending_inquiries=rest)
        )
        if consent:
            decided = ConsentRecord(match[0].message_id, event.decision, sender, event.at)
            conversation = replace(conversation, consents=(*conversation.consents, decided))
            effects.append(
                NotifyOperator(
                    sender.other,
                    "CONSENT_GRANTED" if event.decision == "granted" else "CONSENT_REFUSED",
                    "CIS Art. 9.2; SC Art. 8.2",
                    event.message_id,
                )
            )
        else:
            effects.append(
                NotifyOperator(sender.other, "PROTECTION_MEASURES_ANSWERED", "CIS Art. 9.5")
            )
    # Receipt: nothing to do; it acknowledges a document that already took effect.
    return conversation, effects


def _consultation(
    conversation: Conversation, event: Event, fail: _Fail
) -> tuple[Conversation, NotifyOperator]:
    """A consultation asked or answered: kept beside the main state, which it never moves."""
    article = profile(conversation.agreement).kind(event.kind).article
    pending = conversation.pending_consultations
    if event.kind == "ConsultationRequest":
        if len(pending) >= MAX_PENDING_SIDE_REQUESTS:
            raise fail(UnexpectedMessage, f"{MAX_PENDING_SIDE_REQUESTS} consultations pending")
        added = (*pending, PendingSide(event.message_id, event.sender))
        notice = NotifyOperator(
            event.sender.other, "CONSULTATION_REQUESTED", article, event.message_id
        )
        return replace(conversation, pending_consultations=added), notice
    match = [p for p in pending if p.message_id == event.in_reply_to]
    if event.kind == "ConsultationRecord":
        # The minutes of a consultation held orally, by either party: it settles the pending
        # request it names, or stands alone (a consultation by telephone nobody asked in writing).
        asked = match[0] if match else PendingSide(event.message_id, event.sender)
    elif not match or match[0].sender is not event.sender.other:
        raise fail(
            UnexpectedMessage,
            f"in_reply_to {event.in_reply_to!r} names no pending consultation of the other party",
            article,
            "/Envelope/Header/InReplyTo",
        )
    else:
        asked = match[0]
    record = ConsultationRecord(asked.message_id, asked.sender, event.message_id, event.at)
    conversation = replace(
        conversation,
        pending_consultations=tuple(p for p in pending if p.message_id != event.in_reply_to),
        consultations=(*conversation.consultations, record),
    )
    code = (
        "CONSULTATION_RECORDED" if event.kind == "ConsultationRecord" else "CONSULTATION_ANSWERED"
    )
    notice = NotifyOperator(event.sender.other, code, article, event.message_id)
    return conversation, notice


def _rejected(conversation: Conversation, event: Event) -> tuple[Conversation, list[Effect]]:
    """A peer's gateway refused one of the other party's documents without processing it."""
    target = event.in_reply_to
    last = conversation.last_change
    if last is not None and target == last.message_id and last.sender is event.sender.other:
        conversation = replace(conversation, resend_due=True)
    kept_consents = tuple(p for p in conversation.pending_consents if p.message_id != target)
    kept_inquiries = tuple(p for p in conversation.pending_inquiries if p.message_id != target)
    kept_consultations = tuple(
        p for p in conversation.pending_consultations if p.message_id != target
    )
    conversation = replace(
        conversation,
        pending_consents=kept_consents,
        pending_inquiries=kept_inquiries,
        pending_consultations=kept_consultations,
    )
    return conversation, [
        NotifyOperator(event.sender.other, "DOCUMENT_REJECTED_BY_PEER", "", target or "")
    ]


def _move(
    conversation: Conversation, event: Event, key: str, target: State
) -> tuple[Conversation, list[Effect]]:
    """A change of main state, with its clock effects derived from the states left and entered."""
    source = conversation.state
    at = event.at
    effects: list[Effect] = []
    clock = conversation.clock
    changes: dict[str, object] = {
        "state": target,
        "last_change": LastChange(event.message_id, key, event.sender),
        "resend_due": False,
    }
    if source is State.IDLE:
        changes["opening_message_id"] = event.message_id
        changes["requested_deadline"] = event.requested_deadline
        changes["urgent"] = event.urgent
    if event.kind == "Refusal":
        changes["refusal_grounds"] = event.grounds.strip()

    if source is State.SUBMITTED and target is State.IN_PROGRESS:
        article = profile(conversation.agreement).deadline.article
        clock = replace(clock, started_at=at)
        effects.append(StartClock(at, article))
        if conversation.urgent:  # SC Art. 5.2: the requested party's operator knows at once
            urgency_article = "SC Art. 5.2" if conversation.agreement == _SC else ""
            effects.append(NotifyOperator(_D, "URGENT_REQUEST_RECEIVED", urgency_article))
    elif target in CLOCK_PAUSED_IN and source not in CLOCK_PAUSED_IN and clock.started_at:
        clock = replace(clock, pauses=(*clock.pauses, Pause(target, at)))
        effects.append(PauseClock(at, target, CLOCK_PAUSED_IN[target]))
    elif source in CLOCK_PAUSED_IN and target is State.IN_PROGRESS and clock.paused:
        clock = _end_pause(clock, at)
        effects.append(ResumeClock(at))
    if target.closed and clock.started_at is not None and clock.stopped_at is None:
        if clock.paused:
            clock = _end_pause(clock, at)
        clock = replace(clock, stopped_at=at)
        effects.append(StopClock(at, target))
    changes["clock"] = clock

    notice = key if key in _NOTICES else None
    if notice is not None:
        effects.append(_notice(notice, event))
    elif event.kind == "Rejection":
        code = "OPENING_DOCUMENT_REJECTED"
        effects.append(NotifyOperator(_R, code, "", event.in_reply_to or ""))
    return replace(conversation, **changes), effects  # type: ignore[arg-type]


def _end_pause(clock: DeadlineClock, at: datetime) -> DeadlineClock:
    last = clock.pauses[-1]
    # A peer's clock may be behind ours: never let a pause end before it began.
    ended = replace(last, until=max(at, last.since))
    return replace(clock, pauses=(*clock.pauses[:-1], ended))


def _notice(key: str, event: Event) -> NotifyOperator:
    audience, code, article = _NOTICES[key]
    return NotifyOperator(audience, code, article, event.message_id)

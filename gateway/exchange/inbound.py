"""The inbound judge: what to do with one verified document, decided without I/O.

Theory of operation. A peer's document reaches the judge after the shell has parsed it once,
verified its signatures on that tree and validated it against the schema. The judge then takes
two more inputs, both read by the shell before any transaction: a :class:`Snapshot` of what the
store knows about the document's message id and conversation, and the directory. It returns
one of three verdicts:

``Accept``   store it; the plan carries the conversation's next state (the document *and* our
             Receipt applied), the parties and the effects to apply;
``Refuse``   answer a signed Rejection; ``conflict`` tells a protocol error (the document does
             not fit the conversation) from an invalid document;
``Replay``   the same message id with the same bytes was stored before: answer its receipt.

Nothing here reads a clock, a socket or a table: time is a parameter, the store is the snapshot.
The shell writes an ``Accept`` only if the conversation is still in the snapshot's state
(optimistic concurrency); otherwise it takes a new snapshot and asks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from lxml import etree

from gateway.crypto import algorithms
from gateway.crypto.report import SubIndication, ValidationReport
from gateway.crypto.trust import CLOCK_SKEW as CLOCK_SKEW_TOLERANCE
from gateway.exchange import conversation as machine
from gateway.exchange.directory import DirectoryIndex, UnknownBody
from gateway.model.directory import CertificateRole
from gateway.model.envelope import Header
from gateway.model.problems import DocumentRejected, Problem, Severity
from gateway.model.profiles import PROFILES, Reservation, profile
from gateway.rules.agreement import PartiesContext, agreement_problems
from gateway.rules.clock import Calendars, requested_term_problems
from gateway.rules.content import check_content
from gateway.rules.reservations import REFUSAL_ERROR_CODES
from gateway.store import conversations as conv_store

ENV = "{urn:cis-exchange:envelope:1}"

TRY_AGAIN = "TRY_AGAIN"

MAX_CLOCK_SKEW = CLOCK_SKEW_TOLERANCE
"""How far in our future a document's ``Created`` (and its signatures' claimed signing time, see
gateway.crypto.trust) may lie. Nodes' clocks drift and NTP steps them by seconds; a document from
minutes ahead of us means one of the two clocks is wrong, and deadlines counted from it would be
wrong with it. Refused as ``CLOCK_SKEW``, naming both times."""

CLOCK_SKEW = "CLOCK_SKEW"
"""Code of the transient refusals (a concurrent change): the sender must retry."""

TRUST_LAG = frozenset({"SEAL_NOT_IN_DIRECTORY", "SIGNATURE_TRY_LATER"})
"""Refusals that only mean this node's trust is behind the sender's: a seal certificate the
directory version here does not list yet (the sender activated a new generation as the
depositary published it), revocation lists not fetched yet. The sender retries with back-off
until this node catches up (or the delivery dead-letters); a signed Rejection would end it for
good and lose the request."""


# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """One document as the shell established it: parsed once, signatures verified on the tree."""

    tls_body: str
    """The body the peer's TLS certificate proved."""
    header: Header
    root: etree._Element
    """The verified tree: exactly what the signatures cover (the parser refuses comments)."""
    report: ValidationReport
    payload: bytes
    """The signed document's bytes, as stored."""
    sha256: bytes
    """Of the signed document's bytes (what the receipt acknowledges)."""
    encrypted: bool
    """It came encrypted to this node (CMS)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the store knew before the judge decided, read in one short read transaction."""

    stored_sha256: bytes | None = None
    """A message with this id is stored already: its SHA-256."""
    receipt_message_id: str | None = None
    """That message's receipt, when it has one."""
    conversation: conv_store.Conversation | None = None
    state: machine.Conversation | None = None
    """The conversation's machine, decoded; None for a new conversation."""
    request: tuple[str | None, set[str]] | None = None
    """For a refusal: the refused request's issuer kind and subjects, None when unknown."""


# --- verdicts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accept:
    header: Header
    requesting: str
    requested: str
    step: machine.Step
    """The conversation after the document and our Receipt; effects of both."""
    new_conversation: bool
    warnings: tuple[Problem, ...] = ()
    """Accepted, but the operator should know (a requested term that lapsed in transit)."""


@dataclass(frozen=True, slots=True)
class Refuse:
    problem: Problem
    conflict: bool = False
    """A protocol error: well-formed and signed, but it does not fit the conversation."""

    @property
    def transient(self) -> bool:
        return self.problem.code == TRY_AGAIN or self.problem.code in TRUST_LAG


@dataclass(frozen=True, slots=True)
class Replay:
    receipt_message_id: str


Verdict = Accept | Refuse | Replay


# --- the envelope's own checks (before any store read) ----------------------------------------


def check_envelope(received: Received, index: DirectoryIndex, body_id: str) -> None:
    """What a verified, schema-valid envelope must satisfy whatever the store holds: sender is
    the TLS peer, this node is the recipient, the seal is the one the directory pins, the
    official signed where the kind needs it, the content rules hold. Raises DocumentRejected."""
    header, report = received.header, received.report
    if header.sender != received.tls_body:
        raise reject(
            "SENDER_MISMATCH",
            "Отправитель в документе не совпадает с органом, установившим соединение.",
            "the envelope's Sender is not the body the TLS connection authenticated",
            "Отправляйте документы только от своего органа.",
        )
    if header.recipient != body_id:
        raise reject(
            "WRONG_RECIPIENT",
            f"Документ адресован {header.recipient}, а не этому узлу ({body_id}).",
            f"addressed to {header.recipient}, this node is {body_id}",
            "Отправьте документ на узел органа-получателя по справочнику органов.",
        )
    check_pinned_seal(index, header.sender, report)
    check_suites(index, header.sender, body_id, report)
    agreement = PROFILES.get(header.agreement)
    kind = agreement.kinds.get(header.kind) if agreement else None
    if agreement is None or kind is None:
        raise reject(
            "UNKNOWN_KIND",
            f"Вид документа {header.kind!r} соглашения {header.agreement!r} не известен.",
            f"kind {header.kind!r} of agreement {header.agreement!r} is unknown",
            "Используйте вид документа из XSD соглашения.",
        )
    official_signed = any(s.role == "official" and s.passed for s in report.signatures)
    if kind.signed_by_official and not official_signed:
        raise reject(
            "SIGNATURE_OFFICIAL_MISSING",
            "Документ должен быть подписан уполномоченным лицом и скреплён печатью.",
            "the document needs the official's signature as well as the seal",
            "Подпишите документ подписью уполномоченного лица.",
            "CIS Art. 11.3; SC Art. 5.1",
        )
    content = [p for p in check_content(received.root, header) if p.severity is Severity.ERROR]
    if content:
        raise DocumentRejected(content)


def check_pinned_seal(index: DirectoryIndex, sender: str, report: ValidationReport) -> None:
    """The seal's certificate must be one the directory lists for the sender (CIS Art. 18)."""
    seal = next((s for s in report.signatures if s.role == "seal"), None)
    try:
        body = index.body(sender)
    except UnknownBody:
        raise _not_in_directory(sender) from None
    pinned = {c.sha256 for c in body.certificates if c.role is CertificateRole.SEAL}
    if seal is None or not seal.chain or seal.chain[0].sha256 not in pinned:
        raise reject(
            "SEAL_NOT_IN_DIRECTORY",
            "Сертификат печати отправителя отсутствует в справочнике органов.",
            "the sender's seal certificate is not the one the directory lists",
            "Опубликуйте сертификат печати через депозитария (новая версия справочника).",
            "CIS Art. 18",
        )


def check_suites(
    index: DirectoryIndex, sender: str, recipient: str, report: ValidationReport
) -> None:
    """Every signature must use a suite the recipient accepts and the sender signs with, as
    the directory publishes them (docs/keys-and-signatures.md, "Suites")."""
    accepted = index.body(recipient).accepted_suites
    signs_with = index.body(sender).signing_suites
    for signature in report.signatures:
        suite = algorithms.suite_of(algorithms.SignatureMethod(signature.signature_algorithm))
        if suite not in accepted:
            raise reject(
                "SIGNATURE_SUITE_NOT_ACCEPTED",
                f"Подпись ({signature.role}) выполнена по набору алгоритмов {suite}, который "
                f"орган {recipient} не принимает (принимает: {', '.join(accepted)}).",
                f"the {signature.role} signature uses suite {suite}; {recipient} accepts only "
                f"{', '.join(accepted)} (directory, Suites/Accepts)",
                "Подпишите документ ключом из набора, который принимает получатель.",
                "CIS Art. 11.3",
            )
        if suite not in signs_with:
            raise reject(
                "SIGNATURE_SUITE_NOT_PUBLISHED",
                f"Подпись ({signature.role}) выполнена по набору {suite}, которого нет среди "
                f"наборов органа {sender} в справочнике ({', '.join(signs_with)}).",
                f"the {signature.role} signature uses suite {suite}, which {sender} does not "
                f"publish in Suites/SignsWith ({', '.join(signs_with)})",
                "Опубликуйте набор через депозитария или подпишите ключом опубликованного набора.",
                "CIS Art. 18",
            )


def signature_failure(report: ValidationReport) -> DocumentRejected:
    failure = report.first_failure
    claimed = failure.claimed_signing_time if failure else None
    if claimed is not None and claimed > report.validated_at + MAX_CLOCK_SKEW:
        # Not a bad key or a tampered document: the sender's clock and ours disagree.
        return DocumentRejected([_clock_skew(claimed, report.validated_at)])
    sub = failure.sub_indication if failure else SubIndication.FORMAT_FAILURE
    return reject(
        f"SIGNATURE_{sub}",
        f"Подпись документа не прошла проверку: {sub}.",
        f"signature verification failed: {report.indication}/{sub}",
        "Подпишите документ действующим ключом органа и отправьте заново.",
        "CIS Art. 11.3; SC Art. 5.1",
    )


# --- the judge -------------------------------------------------------------------------------


def judge(
    received: Received,
    snapshot: Snapshot,
    index: DirectoryIndex,
    *,
    body_id: str,
    receipt_message_id: str,
    now: datetime,
    calendars: Calendars,
) -> Verdict:
    """Decide on one document (see the module's theory of operation)."""
    header = received.header
    if snapshot.stored_sha256 is not None:
        if snapshot.stored_sha256 != received.sha256:
            return Refuse(
                _problem(
                    "MESSAGE_ID_REUSED",
                    "Сообщение с таким идентификатором уже получено с другим содержанием.",
                    "a different document with this message id was received before",
                    "Создайте новый идентификатор сообщения (MessageId).",
                )
            )
        if snapshot.receipt_message_id is None:  # stored, its receipt not yet: in flight
            return Refuse(_problem(TRY_AGAIN, "Документ обрабатывается.", "being processed", ""))
        return Replay(snapshot.receipt_message_id)
    if header.created > now + MAX_CLOCK_SKEW:
        return Refuse(_clock_skew(header.created, now))
    try:
        state, stored = _conversation(received, snapshot, body_id)
        _check_encrypted_if_confidential(header, stored, received.encrypted)
        requesting = stored.requesting_party if stored else header.sender
        requested = stored.requested_party if stored else header.recipient
        parties = parties_context(
            index, header.agreement, requesting, requested, stored, snapshot.request
        )
        errors = [
            p
            for p in agreement_problems(received.root, header, parties, now.date())
            if p.severity is Severity.ERROR and _blocks(p)
        ]
        if errors:
            return Refuse(errors[0])
        term = _requested_term_problems(header, stored, requested, now, calendars)
        if any(p.severity is Severity.ERROR for p in term):
            return Refuse(next(p for p in term if p.severity is Severity.ERROR))
    except DocumentRejected as rejected:
        return Refuse(rejected.problems[0])
    try:
        step = machine.apply(
            state, event_of(header, received.root, role(header.sender, requesting))
        )
        ack = machine.apply(
            step.conversation,
            machine.Event(
                kind="Receipt",
                sender=role(body_id, requesting),
                message_id=receipt_message_id,
                at=now,
                in_reply_to=header.message_id,
            ),
        )
    except machine.ProtocolError as error:
        return Refuse(error.problem(), conflict=True)
    return Accept(
        header=header,
        requesting=requesting,
        requested=requested,
        step=machine.Step(ack.conversation, (*step.effects, *ack.effects)),
        new_conversation=stored is None,
        warnings=tuple(term),
    )


def _requested_term_problems(
    header: Header,
    stored: conv_store.Conversation | None,
    requested: str,
    now: datetime,
    calendars: Calendars,
) -> list[Problem]:
    """CIS Art. 12 para. 2 at receipt: a shorter term asked in a new request, judged by the
    requested party's date of receipt (``now``) and the request's creation. One already past
    when the request was written is refused; one that lapsed in transit, or is not shorter, is
    accepted with a warning and the agreement's term applies."""
    if stored is not None or header.requested_deadline is None:
        return []
    return requested_term_problems(
        header.agreement,
        requested,
        header.requested_deadline,
        now,
        calendars,
        sent_at=header.created,
    )


def _conversation(
    received: Received, snapshot: Snapshot, body_id: str
) -> tuple[machine.Conversation, conv_store.Conversation | None]:
    header = received.header
    stored = snapshot.conversation
    if stored is None:
        kind = profile(header.agreement).kinds.get(header.kind)
        if kind is None or not kind.opens_conversation:
            raise reject(
                "UNKNOWN_CONVERSATION",
                "Беседа (ConversationId), к которой относится документ, неизвестна.",
                "the conversation this document belongs to is unknown here",
                "Укажите ConversationId запроса, на который вы отвечаете.",
            )
        return machine.new_conversation(header.conversation_id, header.agreement), None
    if stored.agreement != header.agreement:
        raise reject(
            "AGREEMENT_MISMATCH",
            "Документ относится к другому соглашению, чем беседа.",
            "the document's agreement differs from its conversation's",
            "Укажите соглашение запроса.",
        )
    parties = (stored.requesting_party, stored.requested_party)
    if header.sender not in parties or body_id not in parties:
        raise reject(
            "UNKNOWN_CONVERSATION",
            "Беседа с таким идентификатором ведётся другими органами.",
            "the conversation belongs to other bodies",
            "Укажите ConversationId своей беседы.",
        )
    state = snapshot.state or machine.new_conversation(header.conversation_id, header.agreement)
    return state, stored


def _check_encrypted_if_confidential(
    header: Header, stored: conv_store.Conversation | None, encrypted: bool
) -> None:
    """A confidential document (or any of a confidential conversation) must come encrypted to
    this node: in clear it may have been read on its way (CIS Art. 16)."""
    if not encrypted and (header.confidential or (stored and stored.confidential)):
        raise reject(
            "CONFIDENTIAL_NOT_ENCRYPTED",
            "Конфиденциальный документ получен незашифрованным.",
            "a confidential document arrived without encryption to this node",
            "Зашифруйте документ на сертификат шифрования получателя из справочника органов.",
            "CIS Art. 16; SC Art. 8.1",
        )


def parties_context(
    index: DirectoryIndex,
    agreement: str,
    requesting: str,
    requested: str,
    stored: conv_store.Conversation | None,
    request: tuple[str | None, set[str]] | None = None,
) -> PartiesContext:
    """The two bodies' participations and reservations from the directory; ``request``: for
    a refusal, the refused request's facts."""
    participations, reservations = [], []
    for body_id in (requesting, requested):
        try:
            body = index.body(body_id)
        except UnknownBody:
            raise _not_in_directory(body_id) from None
        participations += [p for p in body.participations if p.agreement == agreement]
        reservations += [r for r in body.reservations if r.agreement == agreement]
    return PartiesContext(
        requesting_body=requesting,
        requested_body=requested,
        participations=tuple(participations),
        reservations=_unique(reservations),
        conversation_started_on=stored.opened_at.date() if stored else None,
        directory_has_reservations=index.publishes_reservations(agreement),
        request=request,
    )


def _unique(reservations: list[Reservation]) -> tuple[Reservation, ...]:
    """Each state's reservation once, though every body of the state lists it."""
    return tuple(dict.fromkeys(reservations))


def _blocks(problem: Problem) -> bool:
    """On receipt, the agreement's not being in force refuses a document, and so does a
    refusal citing an Art. 25 declaration nobody made or that does not cover the request; a
    request under a declaration is a ground the requested body's operator may refuse on
    (Art. 13), not the gateway."""
    return problem.code.startswith("AGREEMENT_") or problem.code in REFUSAL_ERROR_CODES


# --- reading a document into the machine's terms --------------------------------------------


def role(body_id: str, requesting: str) -> machine.Role:
    return machine.Role.REQUESTING if body_id == requesting else machine.Role.REQUESTED


_DECISIONS = {"proceed-without-confidentiality": "proceed"}


def body_element(root: etree._Element) -> etree._Element | None:
    """The document's body element (``env:Body``'s child); None when the body is empty."""
    body = root.find(f"{ENV}Body")
    return body[0] if body is not None and len(body) else None


def body_fields(root: etree._Element) -> dict[str, str]:
    """The body element's child texts by local name (of a repeated one, the last)."""
    element = body_element(root)
    if element is None:
        return {}
    return {etree.QName(c).localname: (c.text or "").strip() for c in element}


def event_of(header: Header, root: etree._Element, sender: machine.Role) -> machine.Event:
    """The machine's event for a document: its kind, sender and the few fields it judges."""
    element = body_element(root)
    fields: dict[str, str] = {}
    grounds: list[str] = []
    if element is not None:
        for child in element:
            name = etree.QName(child).localname
            text = (child.text or "").strip()
            if name == "Ground":
                grounds.append(text)
            fields.setdefault(name, text)
    expected = fields.get("ExpectedDate")
    return machine.Event(
        kind=header.kind,
        sender=sender,
        message_id=header.message_id,
        at=header.created,
        in_reply_to=header.in_reply_to,
        grounds=", ".join(grounds) or fields.get("Reasons", "") or fields.get("Circumstances", ""),
        decision=_decision(header.kind, fields),
        expected_by=datetime.fromisoformat(expected).date() if expected else None,
        requested_deadline=_requested_term(header, fields),
        urgent=header.urgency == "urgent",
    )


def _decision(kind: str, fields: dict[str, str]) -> str:
    """The machine's decision: the body's ``Decision``, a SC refusal's ``Extent`` (6.2), or an
    authenticity confirmation's ``Confirmed`` (5.3) as ``confirmed``/``not-confirmed``."""
    if kind == "AuthenticityConfirmation":
        return "confirmed" if fields.get("Confirmed") in ("true", "1") else "not-confirmed"
    if kind == "Refusal":
        return fields.get("Extent", "")
    decision = fields.get("Decision", "")
    return _DECISIONS.get(decision, decision)


def _requested_term(header: Header, fields: dict[str, str]) -> date | None:
    """A request's shorter term: ``<env:RequestedDeadline>`` or, for a SC request, the term
    within which execution is expected (SC Art. 5.1 г), ``ExpectedBy``; the earlier of the two.
    The legal clock applies it only when it is shorter than the agreement's own (SC Art. 6.1:
    30 days "если иное не было согласовано Сторонами")."""
    terms = [header.requested_deadline] if header.requested_deadline else []
    if header.kind == "Request" and fields.get("ExpectedBy"):
        terms.append(date.fromisoformat(fields["ExpectedBy"]))
    return min(terms, default=None)


# --- problems --------------------------------------------------------------------------------


def _clock_skew(created: datetime, now: datetime) -> Problem:
    """The sender's clock (or ours) is off by more than :data:`MAX_CLOCK_SKEW`: both times are
    named so that either operator can tell which clock to fix."""
    created_at = f"{created.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
    our_time = f"{now.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
    minutes = int(MAX_CLOCK_SKEW.total_seconds() // 60)
    return _problem(
        CLOCK_SKEW,
        f"Документ создан {created_at}, а часы узла-получателя показывают {our_time}: "
        f"расхождение больше {minutes} мин.",
        f"the document was created at {created_at}, the receiving node's clock says {our_time}: "
        f"more than {minutes} min apart",
        "Сверьте часы обоих узлов с NTP (timedatectl status) и отправьте документ повторно.",
    )


def _problem(code: str, ru: str, en: str, remedy: str, article: str = "") -> Problem:
    return Problem(
        code=code, path="/Envelope", message_ru=ru, message_en=en, remedy_ru=remedy, article=article
    )


def reject(code: str, ru: str, en: str, remedy: str, article: str = "") -> DocumentRejected:
    return DocumentRejected([_problem(code, ru, en, remedy, article)])


def _not_in_directory(body_id: str) -> DocumentRejected:
    return reject(
        "BODY_NOT_IN_DIRECTORY",
        f"Орган {body_id} отсутствует в справочнике органов.",
        f"{body_id} is not in the directory of bodies",
        "Проверьте идентификатор органа; импортируйте актуальный справочник.",
        "CIS Art. 18",
    )


__all__ = [
    "TRY_AGAIN",
    "Accept",
    "Received",
    "Refuse",
    "Replay",
    "Snapshot",
    "Verdict",
    "check_envelope",
    "event_of",
    "judge",
    "parties_context",
    "reject",
    "role",
]

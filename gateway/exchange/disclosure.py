"""Disclosure of exchanged information to others: the rule (pure) and its shell (store).

Theory of operation
===================

A body that *received* information under an agreement may hand it on only as the agreement
allows. :func:`may_disclose` is the rule, free of I/O; :func:`disclose` is the shell that reads
the conversation, asks the rule, and — if allowed — records the disclosure and returns the
signed document; a refusal is audited and raised.

The rule, in order (the first that decides wins):

1. **A purpose is stated** (CIS Art. 9.1: information is used only for the agreement's and the
   request's purposes; SC Art. 8.2: only for implementing the agreement) and a recipient named.
2. **Request confidentiality** (CIS Art. 16; SC Art. 8.1). In a confidential conversation the
   *requested* party promised to keep the request confidential: it discloses nothing of the
   conversation — not even to the parties of the proceeding — unless the requesting party
   released it (CIS: a ConfidentialityDecision ``proceed-without-confidentiality``) or granted
   consent to this very disclosure (SC, where either party may ask consent).
3. **Own documents.** What this body wrote itself is not information *received* under the
   agreement (CIS Art. 9.2 and SC Art. 8.2 speak of received information): allowed here, the
   body's national law governs.
4. **CIS enforcement** (Art. 9.2–9.3): to the parties of the proceeding — the debtor (Art. 9.2)
   and the creditor (Art. 9.3: to the extent needed for the creditor to apply to a court of the
   providing party for recognition and enforcement) — allowed; to a third party only with the
   providing party's consent.
5. **RU–KZ supreme courts** (Art. 8.2): the agreement knows no "parties of a proceeding"
   exception: any disclosure outside the receiving court needs the providing court's *prior
   written* consent, whatever the recipient's category.

Consent is a ``ConsentDecision`` ``granted`` recorded in the conversation's machine state
(:attr:`gateway.exchange.conversation.Conversation.consents`), decided by the providing party,
answering a ``ConsentRequest`` of this body that names **this recipient** (``ThirdParty/Name``,
compared after normalisation) and **this message** (``ProvidedInMessageId``; a request without
it covers every document the consenting party provided in the conversation). Where several
decisions match, the latest counts: a later refusal is not overridden by an earlier grant.

Exception tree::

    GatewayError
    └── DisclosureError          the disclosure cannot even be judged (unknown message, not ours)
        └── DisclosureRefused    the rule refused; :attr:`decision` names article and remedy
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from lxml import etree

from gateway.crypto.at_rest import normalise_debtor_name
from gateway.crypto.keys.kek import KekRing
from gateway.exchange import machine_codec
from gateway.exchange.conversation import ConsentRecord, Conversation, Role, new_conversation
from gateway.model.ids import time_ordered_uuid
from gateway.model.problems import GatewayError
from gateway.model.profiles import CIS_ENFORCEMENT, AgreementProfile, profile
from gateway.store import Store, audit, disclosures, machines
from gateway.store import conversations as conv_store
from gateway.store import messages as msg_store
from gateway.store.disclosures import MAX_PURPOSE_CHARS, MAX_RECIPIENT_CHARS
from gateway.xml.parsing import parse_untrusted

ENV = "{urn:cis-exchange:envelope:1}"

MAX_CONSENT_DOCUMENTS = 64
"""ConsentRequest / ConsentDecision documents read per judgement. The machine allows 32 pending
consent requests at a time; twice that covers a long conversation's history, and the bound
keeps one disclosure from decrypting a hostile conversation's every document."""

PROCEED_WITHOUT_CONFIDENTIALITY = "proceed-without-confidentiality"
"""The CIS ConfidentialityDecision value by which the requesting party releases the request."""


class RecipientCategory(StrEnum):
    """To whom a document is disclosed (CIS Art. 1 'стороны исполнительного производства')."""

    CREDITOR = "creditor"
    """The creditor of the enforcement document behind the request (CIS Art. 9.3)."""
    DEBTOR = "debtor"
    """The debtor: a party to the proceeding (CIS Art. 9.2)."""
    THIRD_PARTY = "third-party"
    """Anyone else: a court, a bank, an insolvency practitioner (CIS Art. 9.2; SC Art. 8.2)."""


@dataclass(frozen=True, slots=True)
class ConsentScope:
    """What one ConsentRequest of this body asked for, as read from its signed document."""

    request_id: str
    """Message id of the ConsentRequest."""
    third_party: str
    """``ThirdParty/Name`` as sent (compared after :func:`normalise_debtor_name`)."""
    provided_in: str | None
    """``ProvidedInMessageId``: the document consent was asked for; None covers every document
    the consenting party provided in the conversation."""


_NO_SCOPES: Mapping[str, ConsentScope] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Decision:
    """The rule's answer. :attr:`allowed` is the only success."""

    allowed: bool
    article: str
    """The article that allows or forbids, e.g. ``CIS Art. 9.2``."""
    reason_ru: str
    """Why, in Russian, for the operator."""
    code: str
    """Stable English code, e.g. ``DISCLOSURE_CONSENT_REQUIRED``."""
    remedy_ru: str = ""
    """What to do to be allowed (empty when allowed)."""
    consent_request_id: str | None = None
    """The ConsentRequest whose granted decision allows it, when consent was the ground."""

    def summary(self) -> str:
        todo = f" Что сделать: {self.remedy_ru}" if self.remedy_ru else ""
        where = f" [{self.article}]" if self.article else ""
        return f"{self.code}{where}: {self.reason_ru}{todo}"


# --- the rule (pure) ---------------------------------------------------------------------------


def _refuse(code: str, article: str, reason: str, remedy: str) -> Decision:
    return Decision(False, article, reason, code, remedy)


def _consent_remedy(agreement: AgreementProfile, own_role: Role, message_id: str) -> str:
    kind = agreement.kinds.get("ConsentRequest")
    if kind is not None and kind.direction.value not in ("either", own_role.value):
        return (
            "Соглашение предусматривает запрос согласия (ConsentRequest) только запрашивающей "
            "Стороной; раскрыть полученные от неё сведения третьему лицу через шлюз нельзя."
        )
    return (
        "Направьте предоставившей информацию Стороне запрос согласия (ConsentRequest) с "
        f"ThirdParty/Name, точно совпадающим с получателем, и ProvidedInMessageId {message_id}; "
        "раскрытие возможно после получения решения ConsentDecision «granted»."
    )


def _matching_consent(
    conversation: Conversation,
    provided_by: Role,
    message_id: str,
    recipient: str,
    scopes: Mapping[str, ConsentScope],
) -> ConsentRecord | None:
    """The latest consent decision of the providing party covering this recipient and message."""
    wanted = normalise_debtor_name(recipient)
    found: ConsentRecord | None = None
    for record in conversation.consents:
        scope = scopes.get(record.request_id)
        if record.decided_by is not provided_by or scope is None:
            continue
        if normalise_debtor_name(scope.third_party) != wanted:
            continue
        if scope.provided_in not in (None, message_id):
            continue
        if found is None or record.at >= found.at:
            found = record
    return found


def may_disclose(
    conversation: Conversation,
    agreement: AgreementProfile,
    recipient_category: RecipientCategory,
    provided_by: Role,
    *,
    own_role: Role,
    message_id: str,
    recipient: str,
    purpose: str,
    confidential: bool,
    consent_scopes: Mapping[str, ConsentScope] = _NO_SCOPES,
    confidentiality_released: bool = False,
) -> Decision:
    """May this body disclose the document ``message_id`` to ``recipient``? See the module's
    theory of operation for the rule; no I/O, no clock.

    ``provided_by`` is the role of the document's sender, ``own_role`` this body's role in the
    conversation; ``confidential`` the conversation's flag (CIS Art. 16; SC Art. 8.1);
    ``consent_scopes`` the ConsentRequests this body sent, by message id;
    ``confidentiality_released`` whether the requesting party decided to proceed without
    confidentiality (CIS Art. 16 para. 2).
    """
    if agreement.id != conversation.agreement:
        raise ValueError(
            f"the conversation is under {conversation.agreement}, not {agreement.id}: "
            "pass the conversation's own agreement profile"
        )
    category = RecipientCategory(recipient_category)
    cis = agreement.id == CIS_ENFORCEMENT.id
    use_article = "CIS Art. 9.1" if cis else "SC Art. 8.2"
    if not purpose.strip() or len(purpose) > MAX_PURPOSE_CHARS:
        return _refuse(
            "DISCLOSURE_PURPOSE_REQUIRED",
            use_article,
            "Полученная информация используется исключительно в целях соглашения и запроса: "
            f"цель раскрытия должна быть указана (не длиннее {MAX_PURPOSE_CHARS} знаков).",
            "Укажите цель раскрытия (--purpose).",
        )
    if not recipient.strip() or not normalise_debtor_name(recipient):
        return _refuse(
            "DISCLOSURE_RECIPIENT_REQUIRED",
            use_article,
            "Не указан получатель раскрываемой информации.",
            "Укажите получателя (--to): наименование организации или фамилию, имя, отчество.",
        )
    if len(recipient) > MAX_RECIPIENT_CHARS:
        return _refuse(
            "DISCLOSURE_RECIPIENT_TOO_LONG",
            use_article,
            f"Наименование получателя длиннее {MAX_RECIPIENT_CHARS} знаков.",
            "Укажите получателя одной строкой.",
        )

    def consented() -> ConsentRecord | None:
        return _matching_consent(conversation, provided_by, message_id, recipient, consent_scopes)

    if confidential and own_role is Role.REQUESTED and not confidentiality_released:
        grant = consented() if provided_by is Role.REQUESTING else None
        if grant is not None and grant.decision == "granted":
            article = "SC Art. 8.1–8.2" if not cis else "CIS Art. 16"
            return Decision(
                True,
                article,
                "Запрашивающая Сторона дала согласие на это раскрытие.",
                "DISCLOSURE_CONSENTED",
                consent_request_id=grant.request_id,
            )
        article = "CIS Art. 16" if cis else "SC Art. 8.1"
        remedy = (
            "Если запрос нельзя исполнить без раскрытия, уведомите запрашивающую Сторону "
            "(ConfidentialityNotice, ст. 16): она решит, исполнять ли запрос без сохранения "
            "конфиденциальности."
            if cis
            else "Запросите письменное согласие запрашивающей Стороны (ConsentRequest, ст. 8.2)."
        )
        return _refuse(
            "DISCLOSURE_REQUEST_CONFIDENTIAL",
            article,
            "Запрашивающая Сторона просила сохранить конфиденциальность запроса: сведения этой "
            "переписки не раскрываются никому, в том числе сторонам исполнительного производства.",
            remedy,
        )

    if provided_by is own_role:
        return Decision(
            True,
            "",
            "Документ составлен этим органом: ограничения на раскрытие полученной информации "
            "(ст. 9.2 Соглашения СНГ, ст. 8.2 Соглашения ВС) к нему не относятся.",
            "DISCLOSURE_OWN_DOCUMENT",
        )

    if cis and category is RecipientCategory.DEBTOR:
        return Decision(
            True,
            "CIS Art. 9.2",
            "Должник — сторона исполнительного производства: раскрытие ему допускается.",
            "DISCLOSURE_PARTY_OF_PROCEEDING",
        )
    if cis and category is RecipientCategory.CREDITOR:
        return Decision(
            True,
            "CIS Art. 9.3",
            "Взыскателю информация раскрывается в той мере, в которой это необходимо для его "
            "обращения в суд Стороны, представившей информацию, о признании и приведении в "
            "исполнение решения, на основании которого выдан исполнительный документ.",
            "DISCLOSURE_CREDITOR",
        )

    article = "CIS Art. 9.2" if cis else "SC Art. 8.2"
    grant = consented()
    if grant is not None and grant.decision == "granted":
        return Decision(
            True,
            article,
            "Предоставившая информацию Сторона дала согласие на раскрытие этому получателю.",
            "DISCLOSURE_CONSENTED",
            consent_request_id=grant.request_id,
        )
    who = (
        "третьим лицам"
        if cis
        else "кому-либо вне получившего её суда (третьим лицам), в том числе сторонам дела,"
    )
    reason = (
        f"Информация, полученная по соглашению, раскрывается {who} только с "
        + ("согласия" if cis else "предварительного письменного согласия")
        + " предоставившей её Стороны"
    )
    if grant is not None:
        return _refuse(
            "DISCLOSURE_CONSENT_REFUSED",
            article,
            reason + "; она отказала в согласии на раскрытие этому получателю.",
            "Раскрытие невозможно; при изменении обстоятельств направьте новый запрос согласия.",
        )
    return _refuse(
        "DISCLOSURE_CONSENT_REQUIRED",
        article,
        reason + "; согласия на раскрытие этому получателю в переписке нет.",
        _consent_remedy(agreement, own_role, message_id),
    )


# --- the shell (store) -------------------------------------------------------------------------


class DisclosureError(GatewayError):
    """The disclosure cannot be judged: unknown or purged message, a conversation of others."""


class DisclosureRefused(DisclosureError):
    """The rule refused; :attr:`decision` names the article, the reason and what to do."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(decision.summary())


@dataclass(frozen=True, slots=True)
class Disclosure:
    """A disclosure that was allowed and recorded."""

    disclosure_id: str
    message_id: str
    conversation_id: str
    decision: Decision
    document: bytes
    """The signed document exactly as stored (and as it went on the wire)."""
    conditions: tuple[str, ...] = ()
    """Conditions the providing party attached to its consent (ConsentDecision/Condition): the
    recipient must be told them."""
    procedure: tuple[str, ...] = ()
    """For the creditor (CIS Art. 9.3 para. 2): the answer's DisclosureProcedure — the authority,
    its address and the procedure by which the creditor may obtain the information."""


def _body_element(document: bytes) -> etree._Element | None:
    body = parse_untrusted(document).find(f"{ENV}Body")
    return body[0] if body is not None and len(body) else None


def _children(element: etree._Element | None, name: str) -> list[etree._Element]:
    if element is None:
        return []
    return [c for c in element if etree.QName(c).localname == name]


def _text(element: etree._Element | None, *path: str) -> str | None:
    for name in path:
        found = _children(element, name)
        element = found[0] if found else None
    return (element.text or "").strip() if element is not None else None


def _role_of(body_id: str, conversation: conv_store.Conversation) -> Role:
    return Role.REQUESTING if body_id == conversation.requesting_party else Role.REQUESTED


def _consent_scopes(conn: Any, keys: KekRing, state: Conversation) -> dict[str, ConsentScope]:
    scopes: dict[str, ConsentScope] = {}
    for record in state.consents[-MAX_CONSENT_DOCUMENTS:]:
        try:
            document = msg_store.read_document(conn, record.request_id, keys)
        except (msg_store.MessageGone, msg_store.KeyShredded):
            continue  # purged: what it asked for can no longer be shown, so it covers nothing
        element = _body_element(document)
        name = _text(element, "ThirdParty", "Name")
        if name:
            provided_in = _text(element, "ProvidedInMessageId") or None
            scopes[record.request_id] = ConsentScope(record.request_id, name, provided_in)
    return scopes


def _released(
    conn: Any, keys: KekRing, messages: Sequence[msg_store.StoredMessage], requesting: str
) -> bool:
    """Whether the requesting party decided to proceed without confidentiality (CIS Art. 16)."""
    decisions = [
        m
        for m in messages
        if m.header.kind == "ConfidentialityDecision"
        and m.direction is msg_store.Direction.IN
        and m.header.sender == requesting
    ][-MAX_CONSENT_DOCUMENTS:]
    for m in decisions:
        try:
            document = msg_store.read_document(conn, m.header.message_id, keys)
        except (msg_store.MessageGone, msg_store.KeyShredded):
            continue
        if _text(_body_element(document), "Decision") == PROCEED_WITHOUT_CONFIDENTIALITY:
            return True
    return False


def _conditions(
    conn: Any, keys: KekRing, messages: Sequence[msg_store.StoredMessage], request_id: str
) -> tuple[str, ...]:
    for m in messages:
        if m.header.kind == "ConsentDecision" and m.header.in_reply_to == request_id:
            try:
                document = msg_store.read_document(conn, m.header.message_id, keys)
            except (msg_store.MessageGone, msg_store.KeyShredded):
                return ()
            element = _body_element(document)
            return tuple((c.text or "").strip() for c in _children(element, "Condition"))
    return ()


def judge(
    store: Store,
    keys: KekRing,
    *,
    body_id: str,
    message_id: str,
    recipient: str,
    category: RecipientCategory,
    purpose: str,
) -> tuple[Decision, msg_store.StoredMessage, tuple[str, ...]]:
    """Read what the rule needs from the store and ask it; nothing is written."""
    with store.read() as conn:
        stored = msg_store.get(conn, message_id)
        conversation = conv_store.get(conn, stored.header.conversation_id) if stored else None
        if stored is None or conversation is None:
            raise DisclosureError(
                f"сообщение {message_id} не хранится на этом узле (не получено или уничтожено "
                "по сроку хранения)"
            )
        if body_id not in (conversation.requesting_party, conversation.requested_party):
            raise DisclosureError(f"сообщение {message_id} относится к переписке других органов")
        text = machines.get(conn, conversation.conversation_id)
        state = (
            machine_codec.loads(text)
            if text
            else new_conversation(conversation.conversation_id, conversation.agreement)
        )
        own_role = _role_of(body_id, conversation)
        provided_by = _role_of(stored.header.sender, conversation)
        messages = msg_store.list_for_conversation(conn, conversation.conversation_id)
        scopes = _consent_scopes(conn, keys, state)
        released = (
            conversation.agreement == CIS_ENFORCEMENT.id
            and own_role is Role.REQUESTED
            and _released(conn, keys, messages, conversation.requesting_party)
        )
        decision = may_disclose(
            state,
            profile(conversation.agreement),
            category,
            provided_by,
            own_role=own_role,
            message_id=message_id,
            recipient=recipient,
            purpose=purpose,
            confidential=conversation.confidential or stored.header.confidential,
            consent_scopes=scopes,
            confidentiality_released=released,
        )
        conditions = (
            _conditions(conn, keys, messages, decision.consent_request_id)
            if decision.consent_request_id
            else ()
        )
    return decision, stored, conditions


def disclose(
    store: Store,
    keys: KekRing,
    *,
    body_id: str,
    message_id: str,
    recipient: str,
    category: RecipientCategory,
    purpose: str,
    actor: str,
    now: datetime,
) -> Disclosure:
    """Judge, then record the disclosure and return the signed document; or audit the refusal
    and raise :class:`DisclosureRefused`. The audit event names codes and ids, never the
    recipient or the purpose (they are sealed in the disclosure record)."""
    category = RecipientCategory(category)
    decision, stored, conditions = judge(
        store,
        keys,
        body_id=body_id,
        message_id=message_id,
        recipient=recipient,
        category=category,
        purpose=purpose,
    )
    header = stored.header
    subjects = {"message": message_id, "conversation": header.conversation_id}
    if not decision.allowed:
        with store.transaction() as conn:
            audit.append(
                conn,
                now=now,
                actor=actor[:64],
                kind="disclosure.refused",
                subjects=subjects,
                details={
                    "code": decision.code,
                    "article": decision.article,
                    "category": category.value,
                },
            )
        raise DisclosureRefused(decision)
    disclosure_id = time_ordered_uuid()
    with store.transaction() as conn:
        document = msg_store.read_document(conn, message_id, keys)
        disclosures.record(
            conn,
            keys,
            disclosure_id=disclosure_id,
            message_id=message_id,
            conversation_id=header.conversation_id,
            agreement=header.agreement,
            category=category.value,
            article=decision.article,
            consent_request_id=decision.consent_request_id,
            actor=actor[:64],
            recipient=recipient.strip(),
            purpose=purpose.strip(),
            document_sha256=stored.document_sha256,
            now=now,
        )
        audit.append(
            conn,
            now=now,
            actor=actor[:64],
            kind="document.disclosed",
            subjects={**subjects, "disclosure": disclosure_id},
            details={
                "code": decision.code,
                "article": decision.article,
                "category": category.value,
                "consent_request": decision.consent_request_id,
            },
        )
    procedure = (
        _procedure(document)
        if category is RecipientCategory.CREDITOR and header.agreement == CIS_ENFORCEMENT.id
        else ()
    )
    return Disclosure(
        disclosure_id,
        message_id,
        header.conversation_id,
        decision,
        document,
        conditions,
        procedure,
    )


def _procedure(document: bytes) -> tuple[str, ...]:
    """The answer's DisclosureProcedure (CIS Art. 9.3 para. 2), as lines; empty if none."""
    element = _body_element(document)
    found = _children(element, "DisclosureProcedure")
    if not found:
        return ()
    parts = (_text(found[0], name) for name in ("Authority", "Address", "Procedure"))
    return tuple(p for p in parts if p)


__all__ = [
    "ConsentScope",
    "Decision",
    "Disclosure",
    "DisclosureError",
    "DisclosureRefused",
    "RecipientCategory",
    "disclose",
    "judge",
    "may_disclose",
]

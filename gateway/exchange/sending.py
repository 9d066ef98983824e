"""The sending shells: submission (JSON in, signed document queued) and delivery (outbox rows
out, the peer's signed answer checked and recorded).

Submit::

    snapshot read → plan (pure: convert, schema, rules, the conversation's machine)
      → sign (official + seal; only a plan the protocol allows is signed)
      → one write transaction: conversation unchanged? store, outbox, audit → commit

Deliver: claim due rows → the web layer posts them → :func:`record_answer` verifies the peer's
signed Receipt (our message id, the SHA-256 of the bytes we sent) or Rejection and records it;
anything else is a failed attempt, retried with back-off until the dead letter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from sqlalchemy.engine import Connection

from gateway.crashpoints import crash_point
from gateway.crypto.keys.keystore import KeyRole, KeyStoreError, SigningKey
from gateway.crypto.recipient import encrypt_for
from gateway.crypto.segments import sealed_size
from gateway.crypto.xades import (
    resign_envelope,
    sign_envelope,
    signer_certificates,
    verify_envelope,
)
from gateway.exchange import conversation as machine
from gateway.exchange.directory import DirectoryIndex
from gateway.exchange.inbound import (
    CLOCK_SKEW,
    MAX_CLOCK_SKEW,
    TRY_AGAIN,
    body_fields,
    check_pinned_seal,
    event_of,
    reject,
    role,
)
from gateway.exchange.recording import (
    ConcurrentChange,
    LateAnswer,
    late_answer_warning,
    load_state,
    message_header,
    record_verification,
    refused_request_facts,
    store_step,
)
from gateway.exchange.retry import DeadLetter, next_attempt, system_random
from gateway.exchange.submission import Draft, ListedUpload, Plan, draft_of, plan_submission
from gateway.model.directory import CertificateRole, Suite
from gateway.model.envelope import AttachmentRef, Header, PartSealing
from gateway.model.limits import MAX_MESSAGE_BYTES, delivery_problems
from gateway.model.problems import DocumentRejected, Problem, Refused
from gateway.model.profiles import PROFILES
from gateway.store import attachments as attachment_store
from gateway.store import audit
from gateway.store import conversations as conv_store
from gateway.store import idempotency as idem_store
from gateway.store import messages as msg_store
from gateway.store import outbox as outbox_store
from gateway.store import receipts as receipt_store
from gateway.store import resends as resend_store
from gateway.store.reports import ReportPurpose
from gateway.xml.convert import to_bytes
from gateway.xml.header import read_header
from gateway.xml.parsing import parse_untrusted
from gateway.xml.validate import validate

if TYPE_CHECKING:
    from gateway.exchange.node import Node

log = logging.getLogger(__name__)

DECISION_ATTEMPTS = 3
"""Times a submission is planned again when its conversation moved under it."""

DELIVERY_LEASE = timedelta(minutes=2)
"""How long a worker holds an outbox row: well above one delivery's time limit, so a live worker
never loses its row, and short enough that a crashed worker's rows go out again soon."""

ENCRYPTION_ROOM = 64 * 1024
"""Bytes of MAX_MESSAGE_BYTES kept free for the CMS wrapping of a confidential document (its
recipients' keys and the AEAD tag: under 4 KiB for the most recipients encrypt_for takes)."""

MAX_SUBMITTED_BYTES = MAX_MESSAGE_BYTES - ENCRYPTION_ROOM
"""Largest signed document a submission may make: one the peer endpoint accepts on the wire."""

RATE_LIMIT_SPREAD_SECONDS = 1.0
"""Jitter added to a peer's Retry-After, so workers told the same time do not return at once."""


# --- submit ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submitted:
    """A stored submission: its header, its warnings and the conversation's state after it."""

    header: Header
    warnings: list[Problem]
    state: str

    def answer(self) -> dict[str, Any]:
        """What the local API answers (kept word for word with an idempotency key)."""
        return submitted_answer(self.header, self.state, self.warnings)


def submit(
    node: Node,
    document: dict[str, Any],
    *,
    actor: str,
    resending: str | None = None,
    idempotency: idem_store.IdempotencyKey | None = None,
) -> Submitted:
    """Turn the case system's JSON into a signed document and queue it; return its header,
    the warnings and the state it left its conversation in. Raises DocumentRejected or
    ProtocolError, storing nothing.

    ``resending``: the id of a document of ours that the peer refused for good or whose
    delivery was given up; the new one replaces it (same conversation, kind and recipient, a
    new MessageId), linked to it in the same transaction (:class:`ResendRefused` otherwise).
    With ``idempotency`` the key and the answer are stored in the same transaction (KeyTaken
    if a submission with that key was stored meanwhile: nothing of this one is kept)."""
    now = node.clock()
    draft = draft_of(document)
    original = _resendable(node, resending, draft) if resending else None
    refs = _uploaded(node, draft.attachments)
    for _ in range(DECISION_ATTEMPTS):
        stored, state, request = _snapshot(node, draft)
        plan = plan_submission(
            draft,
            stored,
            state,
            body_id=node.body_id,
            index=node.index,
            registry=node.registry,
            now=now,
            calendars=node.calendars,
            request=request,
            attachments=refs,
            seal=lambda recipient, listed: _sealed(node, draft.attachment_ids, recipient, listed),
        )
        if original is not None:
            _check_resend_matches(plan.header, original)
        suites = common_suites(node.index, node.body_id, plan.header.recipient)
        official = _official_for(node, plan, now, suites)
        signed = to_bytes(sign_envelope(plan.root, official, _seal_for(node, now, suites), now))
        _check_size(node, plan.header, signed)
        crash_point("submit.signed")
        try:
            late = _store_submitted(
                node,
                plan,
                stored,
                signed,
                actor,
                now,
                original=original,
                attachment_ids=draft.attachment_ids,
                idempotency=idempotency,
            )
        except ConcurrentChange:
            continue
        except msg_store.MessageAlreadyStored:
            raise _already_stored(plan) from None
        crash_point("submit.committed")
        return Submitted(plan.header, _warnings(plan, late), str(plan.step.conversation.state))
    raise ConcurrentChange


def _warnings(plan: Plan, late: LateAnswer | None) -> list[Problem]:
    warnings = list(plan.warnings)
    if late is not None:
        warnings.append(late_answer_warning(late))
    return warnings


def submitted_answer(header: Header, state: str, warnings: list[Problem]) -> dict[str, Any]:
    """What the local API answers a submission (its SubmitResult as JSON): kept with an
    idempotency key so that a retry gets the same answer."""
    return {
        "message_id": header.message_id,
        "conversation_id": header.conversation_id,
        "state": state,
        "warnings": [w.to_json() for w in warnings],
    }


def _already_stored(plan: Plan) -> machine.DuplicateMessage:
    """A resubmission of a document already stored (the answer to the first one was lost): the
    same refusal the conversation gives a repeated id, so the case system reads it one way."""
    header = plan.header
    return machine.DuplicateMessage(
        plan.step.conversation.state,
        header.kind,
        role(header.sender, plan.requesting),
        f"message {header.message_id} is already stored: it was submitted before; read it with "
        "GET /api/v1/messages/{message_id}",
        path="/Envelope/Header/MessageId",
    )


def _uploaded(node: Node, listed: Sequence[ListedUpload]) -> list[AttachmentRef]:
    """The signed header's list for the uploads a submission names, as the case system
    describes them (refused if one is not an uploaded, unsent attachment)."""
    if not listed:
        return []  # the small-document path: no query
    try:
        with node.store.read() as conn:
            found = attachment_store.staged(conn, [a.attachment_id for a in listed], node.kek_ring)
    except attachment_store.AttachmentNotFound as exc:
        raise reject(
            "ATTACHMENT_UNKNOWN",
            "Вложение не найдено среди загруженных и ещё не отправленных.",
            str(exc),
            "Загрузите файл (POST /api/v1/attachments) и укажите его id один раз.",
        ) from None
    return [
        AttachmentRef(
            a.meta.name,
            a.meta.media_type,
            a.meta.language,
            a.size,
            a.sha256.hex(),
            title=said.title,
            translation_of=said.translation_of,
            register_extract=said.register_extract,
        )
        for a, said in zip(found, listed, strict=True)
    ]


def _sealed(
    node: Node, attachment_ids: Sequence[str], recipient: str, refs: Sequence[AttachmentRef]
) -> list[AttachmentRef]:
    """A confidential submission's list: each upload's part key encrypted to the recipient's
    encryption certificates (CMS, as the document will be), with the segments' prefix and the
    id they are bound to, so that the parts can go as stored and only the recipient opens them."""
    certificates = encryption_certificates(node, recipient)
    with node.store.read() as conn:
        keys = [attachment_store.staged_sealing(conn, a, node.kek_ring) for a in attachment_ids]
    return [
        dataclasses.replace(
            ref, sealing=PartSealing(prefix, attachment_id, encrypt_for(key, certificates))
        )
        for ref, attachment_id, (key, prefix) in zip(refs, attachment_ids, keys, strict=True)
    ]


def _check_size(node: Node, header: Header, signed: bytes) -> None:
    """Refuse now what the recipient would refuse (413) on each delivery until the dead
    letter: its published limits (directory), the same check its door runs."""
    recipient = node.index.body(header.recipient)
    problems = delivery_problems(
        header.recipient,
        len(signed),
        [a.size for a in header.attachments],
        max_xml_bytes=MAX_SUBMITTED_BYTES,
        max_message_bytes=recipient.max_message_bytes,
        max_attachment_bytes=recipient.max_attachment_bytes,
        # Sealed parts travel with their tags (16 bytes per 64 KiB): the door counts them.
        wire_sizes=[sealed_size(a.size) if a.sealing else a.size for a in header.attachments],
    )
    if problems:
        raise DocumentRejected(problems)


def _snapshot(
    node: Node, draft: Draft
) -> tuple[
    conv_store.Conversation | None,
    machine.Conversation | None,
    tuple[str | None, set[str]] | None,
]:
    """The conversation as stored and, for a refusal, the refused request's facts."""
    if draft.conversation_id is None:
        return None, None, None
    with node.store.read() as conn:
        stored, state = load_state(conn, draft.conversation_id)
        request = None
        if draft.is_refusal and stored is not None:
            request = refused_request_facts(conn, draft.conversation_id, node.kek_ring)
    return stored, state, request


def common_suites(index: DirectoryIndex, sender: str, recipient: str) -> tuple[Suite, ...]:
    """Suites ``sender`` signs with that ``recipient`` accepts, as the directory publishes them
    (docs/keys-and-signatures.md, "Suites"); none refuses the submission, naming both lists."""
    signs_with = index.body(sender).signing_suites
    accepted = index.body(recipient).accepted_suites
    common = tuple(s for s in signs_with if s in accepted)
    if not common:
        raise reject(
            "SIGNATURE_SUITE_NOT_ACCEPTED",
            f"Орган {recipient} не принимает ни один набор алгоритмов подписи, которым "
            f"подписывает этот орган ({', '.join(signs_with)}); он принимает: "
            f"{', '.join(accepted)}.",
            f"{recipient} accepts {', '.join(accepted)}; {sender} signs with "
            f"{', '.join(signs_with)} (directory, Suites)",
            "Опубликуйте через депозитария набор, который принимает получатель, и создайте "
            "ключи этого набора (docs/keys-and-signatures.md).",
            "CIS Art. 11.3",
        )
    return common


def _official_for(
    node: Node, plan: Plan, now: datetime, suites: tuple[Suite, ...]
) -> SigningKey | None:
    """The official's key when the kind needs it: never send a document half-signed
    (CIS Art. 11.3): without a usable official's key the submission is refused, clearly."""
    if not plan.signed_by_official:
        return None
    try:
        name = node.config.keys.official or node.keys.keys.official
        if not name:
            return node.keys.official(None, at=now)  # raises: no official key configured
        return node.keys.signing_key_for(KeyRole.OFFICIAL, name, at=now, suites=suites)
    except KeyStoreError as exc:
        raise reject(
            "OFFICIAL_KEY_UNAVAILABLE",
            f"Документ не может быть подписан уполномоченным лицом: его ключ недоступен ({exc}).",
            f"the official's key cannot sign now: {exc}",
            "Активируйте действующее поколение ключа уполномоченного лица "
            "(gateway keys list / keys activate) и отправьте документ снова.",
            "CIS Art. 11.3; SC Art. 5.1",
        ) from None


def _seal_for(node: Node, now: datetime, suites: tuple[Suite, ...]) -> SigningKey:
    """The seal generation active now; none (revoked, not yet replaced) refuses the
    submission clearly instead of failing inside: nothing is stored, the case system resubmits
    once a new generation is active (docs/key-rotation.md, emergency)."""
    try:
        return node.keys.signing_key_for(KeyRole.SEAL, at=now, suites=suites)
    except KeyStoreError as exc:
        raise reject(
            "SEAL_KEY_UNAVAILABLE",
            f"Документ не может быть скреплён печатью органа: ключ печати недоступен ({exc}).",
            f"the body's seal cannot sign now: {exc}",
            "Активируйте новое поколение ключа печати (gateway keys list / keys activate seal) "
            "и отправьте документ снова.",
            "CIS Art. 11.3",
        ) from None


class ResendRefused(Refused):
    """A resend the node will not make: the original is not ours, not refused for good,
    already resent, or the new document is not its replacement. Nothing was stored."""

    CONFLICTS = frozenset({"NOT_RESENDABLE", "ALREADY_RESENT"})
    """Codes about the original's state (409); the others are about the new document (422)."""


def _resendable(node: Node, original_id: str, draft: Draft) -> msg_store.StoredMessage:
    """The original, if it may be replaced now (read before planning; checked again, under
    lock, in the write)."""
    with node.store.read() as conn:
        original = msg_store.get(conn, original_id)
        states = outbox_store.states_of(conn, [original_id])
        replaced_by = resend_store.resent_as(conn, original_id)
        with_parts = bool(attachment_store.parts_of(conn, original_id))
    if original is None or original.direction is not msg_store.Direction.OUT:
        raise ResendRefused(
            "NOT_RESENDABLE",
            f"message {original_id} is not a document this node sent",
            f"Сообщение {original_id} не отправлялось этим узлом: повторно отправить нечего.",
        )
    _check_final(original_id, states.get(original_id))
    if with_parts:
        raise ResendRefused(
            "NOT_RESENDABLE",
            f"message {original_id} carries attachments, which belong to it alone: upload them "
            "again and submit the document anew (POST /api/v1/attachments, then "
            "POST /api/v1/messages)",
            f"К сообщению {original_id} приложены файлы, они принадлежат только ему: загрузите "
            "их заново и отправьте документ как новый.",
        )
    if replaced_by is not None:
        _already_resent(original_id, replaced_by)
    if opens_conversation(original) and draft.header.get("ConversationId") == (
        original.header.conversation_id
    ):
        raise ResendRefused(
            "RESEND_MISMATCH",
            "header.ConversationId: the refused document opened its conversation, which the "
            "refusal closed (rejected); its resend opens a new one: leave ConversationId out",
            "header.ConversationId: отклонённый документ открывал переписку, и она закрыта "
            "отказом; повторная отправка открывает новую — не указывайте ConversationId.",
        )
    for field, old in (("Kind", original.header.kind), ("Recipient", original.header.recipient)):
        if draft.header.get(field, old) != old:
            _mismatch(field, old)
    given = draft.header.get("MessageId")
    if given == original_id:
        raise ResendRefused(
            "RESEND_MISMATCH",
            "header.MessageId: a resend is a new message; leave MessageId out or give a new one",
            "header.MessageId: повторная отправка — новое сообщение; не указывайте MessageId "
            "или укажите новый.",
        )
    return original


def _check_final(original_id: str, state: str | None) -> None:
    if state != outbox_store.OutboxState.FAILED.value:
        raise ResendRefused(
            "NOT_RESENDABLE",
            f"message {original_id} is {state or 'not in the outbox'}: only a document the "
            "peer refused for good or whose delivery was given up (dead letter) is resent",
            f"Сообщение {original_id} в состоянии «{state or 'нет в очереди'}»: повторно "
            "отправляется только документ, отклонённый получателем окончательно или не "
            "доставленный после всех попыток.",
        )


def _already_resent(original_id: str, replaced_by: str) -> NoReturn:
    raise ResendRefused(
        "ALREADY_RESENT",
        f"message {original_id} was already resent as {replaced_by}; resend that one if it "
        "was refused too",
        f"Сообщение {original_id} уже отправлено повторно как {replaced_by}; если отклонено и "
        "оно, отправьте повторно его.",
    )


def opens_conversation(message: msg_store.StoredMessage) -> bool:
    """Whether the message's kind opens a conversation (a Request, say): refused by the peer's
    gateway, it closes its conversation as rejected, and its resend opens a new one."""
    agreement = PROFILES.get(message.header.agreement)
    kind = agreement.kinds.get(message.header.kind) if agreement else None
    return bool(kind and kind.opens_conversation)


def _check_resend_matches(header: Header, original: msg_store.StoredMessage) -> None:
    """A resend replaces its original: same kind and recipient, and the same conversation
    unless the original opened it (see :func:`opens_conversation`)."""
    was = original.header
    same = [
        ("Kind", header.kind, was.kind),
        ("Recipient", header.recipient, was.recipient),
    ]
    if not opens_conversation(original):
        same.insert(0, ("ConversationId", header.conversation_id, was.conversation_id))
    for field, new, old in same:
        if new != old:
            _mismatch(field, old)


def _mismatch(field: str, old: str) -> NoReturn:
    raise ResendRefused(
        "RESEND_MISMATCH",
        f"header.{field}: a resend must keep the original's {field} ({old})",
        f"header.{field}: повторная отправка должна сохранить {field} исходного документа ({old}).",
    )


def _store_submitted(
    node: Node,
    plan: Plan,
    snapshot: conv_store.Conversation | None,
    signed: bytes,
    actor: str,
    now: datetime,
    *,
    original: msg_store.StoredMessage | None = None,
    attachment_ids: Sequence[str] = (),
    idempotency: idem_store.IdempotencyKey | None = None,
) -> LateAnswer | None:
    header = plan.header

    def write(conn: Connection) -> LateAnswer | None:
        late = store_step(
            conn,
            node.calendars,
            header,
            plan.step,
            snapshot,
            plan.requesting,
            plan.requested,
            now,
            opening=(node.kek_ring, plan.root),
        )
        if original is not None:  # after the step: a resend may open its conversation
            _link_resend(conn, header, original.header.message_id, actor, now)
        msg_store.insert_sent(conn, message_header(header), signed, node.kek_ring, now)
        if attachment_ids:
            message_key = msg_store.data_key(conn, header.message_id, node.kek_ring)
            attachment_store.link(
                conn, header.message_id, message_key, attachment_ids, node.kek_ring
            )
        outbox_store.enqueue(conn, header.message_id, header.recipient, now)
        audit.append(
            conn,
            now=now,
            actor=actor,
            kind="message.submitted",
            subjects={"message": header.message_id, "conversation": header.conversation_id},
            # The digest binds the chain (and its signed checkpoints) to what was signed: a
            # proof of existence (gateway.exchange.existence).
            details={
                "kind": header.kind,
                "agreement": header.agreement,
                "sha256": hashlib.sha256(signed).hexdigest(),
            },
        )
        if idempotency is not None:
            answer = Submitted(header, _warnings(plan, late), str(plan.step.conversation.state))
            idem_store.record(conn, idempotency, answer.answer(), now)
        crash_point("submit.write")
        return late

    return node.committer.run(write, key=header.message_id)


def _link_resend(
    conn: Connection, header: Header, original_id: str, actor: str, now: datetime
) -> None:
    """Under the original's outbox row lock: still final, not resent meanwhile; then the
    link and its audit event, in the transaction that stores the new document."""
    _check_final(original_id, outbox_store.lock_state(conn, original_id))
    try:
        resend_store.record(conn, header.message_id, original_id, header.conversation_id, now)
    except resend_store.AlreadyResent as exc:
        _already_resent(original_id, exc.resent_as)
    audit.append(
        conn,
        now=now,
        actor=actor,
        kind="message.resent",
        subjects={
            "message": header.message_id,
            "original": original_id,
            "conversation": header.conversation_id,
        },
        details={"kind": header.kind},
    )


# --- deliver ---------------------------------------------------------------------------------


class DeliveryResult(StrEnum):
    DELIVERED = "delivered"
    """The peer's signed Receipt is verified and recorded."""
    REJECTED = "rejected"
    """The peer refused it with a signed Rejection: final."""
    RETRY = "retry"
    """The attempt failed; another is scheduled."""
    FAILED = "failed"
    """No attempt is left: the dead letter."""


@dataclass(frozen=True, slots=True)
class Delivered:
    message_id: str
    outcome: DeliveryResult
    code: str | None = None


class Answer(StrEnum):
    """What the peer's answer claims to be (the web layer reads it from the HTTP status)."""

    RECEIPT = "Receipt"
    REJECTION = "Rejection"


@dataclass(frozen=True, slots=True)
class Outgoing:
    endpoint: str
    wire: bytes
    """What goes over the connection: the signed document, or its CMS encryption."""
    signed: bytes
    """The signed document itself: the receipt's SHA-256 must be of these bytes."""
    attachments: tuple[attachment_store.Part, ...] = ()
    """The parts that go beside it, in order."""
    resigned: bool = False
    """Signed again just now: a generation that signed it was revoked while it waited."""
    sealed_parts: bool = False
    """The parts go as their stored segments, sealed under part keys the signed header wraps
    to the recipient (a confidential document's: docs/attachments.md)."""


class SignerRevoked(Exception):
    """A document waiting in the outbox was signed by a generation revoked since, and no
    generation of that role can sign it again now: it stays in the outbox (the attempt is
    retried with back-off) until one is active — never sent under a revoked signature."""

    code = "SIGNER_REVOKED_NO_SUCCESSOR"


def claim_due(node: Node, worker_id: str, limit: int) -> list[outbox_store.Claim]:
    now = node.clock()
    with node.store.transaction() as conn:
        claims = outbox_store.claim_due(conn, worker_id, now, limit, DELIVERY_LEASE)
    if claims:
        crash_point("claim.committed")
    return claims


def outgoing(node: Node, claim: outbox_store.Claim) -> Outgoing:
    """What to send for a claim: the endpoint, the bytes for the wire and the signed document
    they carry. A confidential document (its own flag or its conversation's) is encrypted to
    the recipient's encryption certificates from the directory — sign, then encrypt — so only
    the recipient node reads it, even where TLS ends before it."""
    body = node.index.body(claim.destination)
    with node.store.read() as conn:
        document, confidential = msg_store.read_for_sending(conn, claim.message_id, node.kek_ring)
        parts = attachment_store.parts_of(conn, claim.message_id)
    document, resigned = _signed_in_force(node, claim.message_id, claim.destination, document)
    if not confidential:
        return Outgoing(body.endpoint, document, document, parts, resigned)
    certificates = encryption_certificates(node, claim.destination)
    wire = encrypt_for(document, certificates)
    return Outgoing(body.endpoint, wire, document, parts, resigned, sealed_parts=True)


def encryption_certificates(node: Node, body_id: str) -> list[x509.Certificate]:
    """The body's encryption certificates from the signed directory: what a confidential
    document and its parts' keys are encrypted to."""
    certificates = [
        x509.load_der_x509_certificate(c.der)
        for c in node.index.body(body_id).certificates
        if c.role is CertificateRole.ENCRYPTION
    ]
    if not certificates:
        raise reject(
            "NO_ENCRYPTION_CERTIFICATE",
            f"В справочнике органов нет сертификата шифрования {body_id}.",
            f"the directory lists no encryption certificate for {body_id}",
            "Запросите у депозитария справочник с сертификатом шифрования органа.",
            "CIS Art. 16; SC Art. 8",
        )
    return certificates


def _signed_in_force(
    node: Node, message_id: str, destination: str, document: bytes
) -> tuple[bytes, bool]:
    """The document to send: as stored, or — when a seal or official generation that signed
    it has been revoked since (docs/key-rotation.md, emergency) — signed again by the
    generations in force now, stored in place of the old one and audited
    (``message.resigned``), before anything leaves. Without revocations nothing is parsed."""
    now = node.clock()
    revoked = _revoked_generations(node, now)
    if not revoked:
        return document, False
    root = parse_untrusted(document)
    signers = signer_certificates(root)
    stale = sorted(revoked[der] for der in signers.values() if der in revoked)
    if not stale:
        return document, False
    try:
        suites = common_suites(node.index, node.body_id, destination)
        official_name = node.config.keys.official
        official = (
            node.keys.signing_key_for(KeyRole.OFFICIAL, official_name, at=now, suites=suites)
            if KeyRole.OFFICIAL in signers and official_name
            else None
        )
        if KeyRole.OFFICIAL in signers and official is None:
            raise KeyStoreError("no official key configured ([keys] official)")
        seal = node.keys.signing_key_for(KeyRole.SEAL, at=now, suites=suites)
    except (KeyStoreError, DocumentRejected) as exc:
        raise SignerRevoked(
            f"message {message_id} was signed by {', '.join(stale)}, revoked since, and no "
            f"generation in force can sign it again ({exc}); it waits in the outbox"
        ) from None
    resigned = to_bytes(resign_envelope(root, official, seal, now))
    with node.store.transaction() as conn:
        previous = msg_store.replace_sent_document(conn, message_id, resigned, node.kek_ring)
        audit.append(
            conn,
            now=now,
            actor="gateway",
            kind="message.resigned",
            subjects={"message": message_id},
            details={
                "revoked": ", ".join(stale),
                "previous_sha256": previous.hex(),
                # Binds the chain to the document now stored: its proof of existence.
                "sha256": hashlib.sha256(resigned).hexdigest(),
            },
        )
    log.warning(
        "message %s signed again before delivery: %s revoked",
        message_id,
        ", ".join(stale),
        extra={"message_id": message_id},
    )
    return resigned, True


_RevokedKey = tuple[tuple[Any, ...], frozenset[tuple[str, str, int]]]
_REVOKED: weakref.WeakKeyDictionary[Node, tuple[_RevokedKey, dict[bytes, str]]] = (
    weakref.WeakKeyDictionary()
)
"""Per node, the last revoked set found and what it was found for: the manifests as read (the
key store reads a manifest again, as a new object, when its file's stat changes) and the
generations revoked by then. Certificates are read and parsed only when either changes."""


def _revoked_generations(node: Node, now: datetime) -> dict[bytes, str]:
    """Certificate (DER) → stem of this node's seal and official generations revoked by
    ``now``: one ``stat`` per manifest, and no file read while the manifests and the revoked
    generations stay the same."""
    official = node.config.keys.official
    keys = [(KeyRole.SEAL, "")] + ([(KeyRole.OFFICIAL, official)] if official else [])
    manifests = tuple(node.keys.generations(key_role, name) for key_role, name in keys)
    revoked = frozenset(
        (str(key_role), name, generation.number)
        for (key_role, name), manifest in zip(keys, manifests, strict=True)
        for generation in manifest.generations
        if generation.revoked_at is not None and generation.revoked_at <= now
    )
    if not revoked:
        return {}
    cached = _REVOKED.get(node)
    if (
        cached is not None
        and cached[0][1] == revoked
        and all(a is b for a, b in zip(cached[0][0], manifests, strict=True))
    ):
        return cached[1]
    found: dict[bytes, str] = {}
    for key_role, name, number in sorted(revoked):
        der = _certificate_der(node.keys.cert_path(key_role, name, number))
        if der:
            found[der] = node.keys.stem(key_role, name, number)
    _REVOKED[node] = ((manifests, revoked), found)
    return found


def _certificate_der(path: Path) -> bytes:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return b""
    return x509.load_pem_x509_certificate(text).public_bytes(serialization.Encoding.DER)


def record_answer(
    node: Node,
    claim: outbox_store.Claim,
    sent: bytes,
    answer: bytes,
    claimed: Answer,
    *,
    transport_status: int | None = None,
) -> Delivered:
    """Check the peer's signed answer to a delivery and record it.

    A Receipt must name our message and the SHA-256 of what we sent; a Rejection our message.
    Both are verified like any document: signature on the one parsed tree, the seal pinned by
    the directory, the schema. Anything else is a failed attempt, retried."""
    now = node.clock()
    try:
        root = parse_untrusted(answer)
    except DocumentRejected:
        return record_failure(node, claim, "RECEIPT_INVALID", retryable=True)
    verified = verify_envelope(
        root, node.trust, at=now, expected_sender=claim.destination, require_official=False
    )
    if not verified.report.passed:
        return record_failure(node, claim, "RECEIPT_SIGNATURE_INVALID", retryable=True)
    try:
        check_pinned_seal(node.index, claim.destination, verified.report)
    except DocumentRejected:
        return record_failure(node, claim, "RECEIPT_SEAL_NOT_IN_DIRECTORY", retryable=True)
    if validate(root, node.registry):
        return record_failure(node, claim, "RECEIPT_INVALID", retryable=True)
    header = read_header(root)
    fields = body_fields(root)
    acknowledged = fields.get(
        "ReceivedMessageId" if claimed is Answer.RECEIPT else "RejectedMessageId"
    )
    if (
        header.kind != claimed.value
        or header.recipient != node.body_id
        or acknowledged != claim.message_id
        # In reply to the message it answers; that it names the message's conversation is
        # checked where the conversation is locked (_store_answer).
        or header.in_reply_to != claim.message_id
        or (
            claimed is Answer.RECEIPT
            and fields.get("ReceivedSha256") != hashlib.sha256(sent).hexdigest()
        )
    ):
        return record_failure(node, claim, "RECEIPT_MISMATCH", retryable=True)
    if header.created > now + MAX_CLOCK_SKEW:
        # Its Created is when the term starts (a Receipt: CIS Art. 12): an answer from the
        # future would move the due date, as a document from the future would on receipt.
        return record_failure(node, claim, CLOCK_SKEW, retryable=True)
    accepted = claimed is Answer.RECEIPT
    code = None if accepted else fields.get("Code", "REJECTED")[:64]
    try:
        _store_answer(
            node, claim, header, root, answer, verified.report, code, now, transport_status
        )
    except ConcurrentChange:
        # Another process moved the conversation between our lock and our write (a
        # protocol error, not a race we lose): nothing was recorded; the row goes out again
        # and the peer answers the replay with the same receipt.
        return record_failure(node, claim, TRY_AGAIN, retryable=True)
    except AnswerRefused:
        return record_failure(node, claim, "RECEIPT_MISMATCH", retryable=True)
    if accepted:
        return Delivered(claim.message_id, DeliveryResult.DELIVERED)
    return Delivered(claim.message_id, DeliveryResult.REJECTED, code)


class AnswerRefused(Exception):
    """A peer's signed answer that cannot be kept as it is — it names another conversation than
    the message it answers, or its own MessageId is stored here with other bytes: nothing of it
    is recorded (its unit rolls back) and the delivery is tried again."""


def _store_answer(
    node: Node,
    claim: outbox_store.Claim,
    header: Header,
    root: etree._Element,
    answer: bytes,
    report: Any,
    code: str | None,
    now: datetime,
    transport_status: int | None,
) -> None:
    # Applying a Receipt or Rejection to the machine is cheap and signs nothing: it is decided
    # inside the write, on the conversation as locked there (no snapshot, no second read).
    def write(conn: Connection) -> None:
        ours = msg_store.get(conn, claim.message_id)
        if ours is None or ours.header.conversation_id != header.conversation_id:
            # The answer moves the conversation its header names: a peer's answer naming
            # another one (of ours, with it or with another body) would move that one.
            raise AnswerRefused
        stored, state = load_state(conn, header.conversation_id, for_update=True)
        if stored is not None:
            current = state or machine.new_conversation(header.conversation_id, header.agreement)
            event = event_of(header, root, role(header.sender, stored.requesting_party))
            try:
                step = machine.apply(current, event)
            except machine.DuplicateMessage:
                step = machine.Step(current, ())
            store_step(
                conn,
                node.calendars,
                header,
                step,
                stored,
                stored.requesting_party,
                stored.requested_party,
                now,
            )
        inserted = msg_store.insert_received(
            conn, message_header(header), answer, node.kek_ring, now
        )
        if inserted is msg_store.ReceiveOutcome.CONFLICT:
            # Its MessageId is taken here by other bytes: the answer cannot be kept, and an
            # answer not kept proves nothing (the delivery is not done without it).
            raise AnswerRefused
        if inserted is msg_store.ReceiveOutcome.INSERTED:
            record_verification(
                conn, header.message_id, report, ReportPurpose.RECEIPT, now, node.kek_ring
            )
            receipt_store.record(
                conn,
                message_id=claim.message_id,
                receipt_message_id=header.message_id,
                direction=msg_store.Direction.IN,
                outcome=(
                    receipt_store.ReceiptOutcome.ACCEPTED
                    if code is None
                    else receipt_store.ReceiptOutcome.REJECTED
                ),
                code=code,
                at=now,
            )
        if code is None:
            outbox_store.mark_delivered(conn, claim, now, http_status=transport_status)
        else:
            outbox_store.mark_failed(conn, claim, now, code, None, transport_status)
        audit.append(
            conn,
            now=now,
            actor="gateway",
            kind="message.delivered" if code is None else "message.rejected-by-peer",
            subjects={"message": claim.message_id, "receipt": header.message_id},
            details={"peer": claim.destination, "code": code or ""},
        )
        crash_point("record.write")

    node.committer.run(write, key=claim.message_id)
    crash_point("record.committed")


def record_failure(
    node: Node,
    claim: outbox_store.Claim,
    code: str,
    *,
    retryable: bool,
    transport_status: int | None = None,
    retry_after: float | None = None,
    busy: bool = False,
    random: Callable[[], float] | None = None,
) -> Delivered:
    """A failed attempt: schedule the next by the retry policy, or give up (dead letter).

    ``busy``: the peer said it is overloaded (and when to come back, ``retry_after``): that is
    no failure to back off from."""
    now = node.clock()
    rand = random or system_random()
    with node.store.read() as conn:
        created = outbox_store.created_at(conn, claim.outbox_id)
    decision = next_attempt(
        failures=claim.attempt,
        created_at=created or now,
        now=now,
        random=rand,
        permanent=not retryable,
    )
    if isinstance(decision, DeadLetter):
        next_at = None
    elif busy and retry_after is not None:
        # Spread a little so that several workers do not return together.
        next_at = now + timedelta(seconds=retry_after + rand() * RATE_LIMIT_SPREAD_SECONDS)
    else:
        next_at = decision.at
        if retry_after:
            next_at = max(next_at, now + timedelta(seconds=retry_after))
    with node.store.transaction() as conn:
        outbox_store.mark_failed(conn, claim, now, code[:64], next_at, transport_status)
        audit.append(
            conn,
            now=now,
            actor="gateway",
            kind="delivery.failed" if next_at else "delivery.dead-letter",
            subjects={"message": claim.message_id},
            details={"peer": claim.destination, "code": code[:64]},
        )
    outcome = DeliveryResult.RETRY if next_at else DeliveryResult.FAILED
    return Delivered(claim.message_id, outcome, code)

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

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from cryptography import x509
from lxml import etree
from sqlalchemy.engine import Connection

from gateway.crashpoints import crash_point
from gateway.crypto.keystore import KeyStoreError, SigningKey
from gateway.crypto.recipient import encrypt_for
from gateway.crypto.xades import sign_envelope, verify_envelope
from gateway.exchange import conversation as machine
from gateway.exchange.inbound import TRY_AGAIN, check_pinned_seal, event_of, reject, role
from gateway.exchange.recording import (
    ConcurrentChange,
    LateAnswer,
    check_unchanged,
    late_answer_warning,
    load_state,
    message_header,
    record_verification,
    refused_request_facts,
    store_step,
)
from gateway.exchange.retry import DeadLetter, next_attempt, system_random
from gateway.exchange.submission import Draft, Plan, draft_of, plan_submission
from gateway.model.directory import CertificateRole
from gateway.model.envelope import Header
from gateway.model.limits import MAX_MESSAGE_BYTES
from gateway.model.problems import DocumentRejected, Problem
from gateway.store import audit
from gateway.store import conversations as conv_store
from gateway.store import idempotency as idem_store
from gateway.store import messages as msg_store
from gateway.store import outbox as outbox_store
from gateway.store import receipts as receipt_store
from gateway.store.reports import ReportPurpose
from gateway.xml.convert import to_bytes
from gateway.xml.header import read_header
from gateway.xml.parsing import parse_untrusted
from gateway.xml.validate import validate

if TYPE_CHECKING:
    from gateway.exchange.node import Node

log = logging.getLogger(__name__)

ENV = "{urn:cis-exchange:envelope:1}"

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


def submit(
    node: Node,
    document: dict[str, Any],
    *,
    actor: str,
    idempotency: idem_store.IdempotencyKey | None = None,
) -> tuple[Header, list[Problem]]:
    """Turn the case system's JSON into a signed document and queue it; return its header
    and the warnings. Raises DocumentRejected or ProtocolError, storing nothing. With
    ``idempotency`` the key and the answer are stored in the same transaction (KeyTaken if a
    submission with that key was stored meanwhile: nothing of this one is kept)."""
    now = node.clock()
    draft = draft_of(document)
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
        )
        official = _official_for(node, plan, now)
        signed = to_bytes(sign_envelope(plan.root, official, _seal_for(node, now), now))
        _check_size(signed)
        crash_point("submit.signed")
        try:
            late = _store_submitted(node, plan, stored, signed, actor, now, idempotency)
        except ConcurrentChange:
            continue
        except msg_store.MessageAlreadyStored:
            raise _already_stored(plan) from None
        crash_point("submit.committed")
        return plan.header, _warnings(plan, late)
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


def _check_size(signed: bytes) -> None:
    """Refuse now what every peer would refuse (413) on each delivery until the dead letter."""
    if len(signed) <= MAX_SUBMITTED_BYTES:
        return
    raise DocumentRejected(
        [
            Problem(
                code="MESSAGE_TOO_LARGE",
                path="/Envelope",
                message_ru=f"Подписанный документ занимает {len(signed)} байт, а узлы принимают "
                f"не больше {MAX_SUBMITTED_BYTES} байт: получатель его не примет.",
                message_en=f"the signed document is {len(signed)} bytes; peers accept at most "
                f"{MAX_SUBMITTED_BYTES}",
                remedy_ru="Разделите вложения между несколькими документами переписки "
                "(например, ответ и дополнительная информация) или уменьшите файлы.",
            )
        ]
    )


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


def _official_for(node: Node, plan: Plan, now: datetime) -> SigningKey | None:
    """The official's key when the kind needs it: never send a document half-signed
    (CIS Art. 11.3): without a usable official's key the submission is refused, clearly."""
    if not plan.signed_by_official:
        return None
    try:
        return node.keys.official(node.config.keys.official or None, at=now)
    except KeyStoreError as exc:
        raise reject(
            "OFFICIAL_KEY_UNAVAILABLE",
            f"Документ не может быть подписан уполномоченным лицом: его ключ недоступен ({exc}).",
            f"the official's key cannot sign now: {exc}",
            "Активируйте действующее поколение ключа уполномоченного лица "
            "(gateway keys list / keys activate) и отправьте документ снова.",
            "CIS Art. 11.3; SC Art. 5.1",
        ) from None


def _seal_for(node: Node, now: datetime) -> SigningKey:
    """The seal generation active now; none (revoked, not yet replaced) refuses the
    submission clearly instead of failing inside: nothing is stored, the case system resubmits
    once a new generation is active (docs/key-rotation.md, emergency)."""
    try:
        return node.seal_at(now)
    except KeyStoreError as exc:
        raise reject(
            "SEAL_KEY_UNAVAILABLE",
            f"Документ не может быть скреплён печатью органа: ключ печати недоступен ({exc}).",
            f"the body's seal cannot sign now: {exc}",
            "Активируйте новое поколение ключа печати (gateway keys list / keys activate seal) "
            "и отправьте документ снова.",
            "CIS Art. 11.3",
        ) from None


def _store_submitted(
    node: Node,
    plan: Plan,
    snapshot: conv_store.Conversation | None,
    signed: bytes,
    actor: str,
    now: datetime,
    idempotency: idem_store.IdempotencyKey | None,
) -> LateAnswer | None:
    header = plan.header

    def write(conn: Connection) -> LateAnswer | None:
        stored = check_unchanged(conn, header, snapshot)
        late = store_step(
            conn, node.calendars, header, plan.step, stored, plan.requesting, plan.requested, now
        )
        msg_store.insert_sent(conn, message_header(header), signed, node.kek_ring, now)
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
            answer = submitted_answer(
                header, str(plan.step.conversation.state), _warnings(plan, late)
            )
            idem_store.record(conn, idempotency, answer, now)
        crash_point("submit.write")
        return late

    return node.committer.run(write, key=header.message_id)


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
        document = msg_store.read_document(conn, claim.message_id, node.kek_ring)
        stored = msg_store.get(conn, claim.message_id)
        conversation = conv_store.get(conn, stored.header.conversation_id) if stored else None
    confidential = bool(stored and stored.header.confidential) or bool(
        conversation and conversation.confidential
    )
    if not confidential:
        return Outgoing(body.endpoint, document, document)
    certificates = [
        x509.load_der_x509_certificate(c.der)
        for c in body.certificates
        if c.role is CertificateRole.ENCRYPTION
    ]
    if not certificates:
        raise reject(
            "NO_ENCRYPTION_CERTIFICATE",
            f"В справочнике органов нет сертификата шифрования {claim.destination}.",
            f"the directory lists no encryption certificate for {claim.destination}",
            "Запросите у депозитария справочник с сертификатом шифрования органа.",
            "CIS Art. 16; SC Art. 8",
        )
    return Outgoing(body.endpoint, encrypt_for(document, certificates), document)


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
    fields = _answer_fields(root)
    acknowledged = fields.get(
        "ReceivedMessageId" if claimed is Answer.RECEIPT else "RejectedMessageId"
    )
    if (
        header.kind != claimed.value
        or header.recipient != node.body_id
        or acknowledged != claim.message_id
        or (
            claimed is Answer.RECEIPT
            and fields.get("ReceivedSha256") != hashlib.sha256(sent).hexdigest()
        )
    ):
        return record_failure(node, claim, "RECEIPT_MISMATCH", retryable=True)
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
    if accepted:
        return Delivered(claim.message_id, DeliveryResult.DELIVERED)
    return Delivered(claim.message_id, DeliveryResult.REJECTED, code)


def _answer_fields(root: etree._Element) -> dict[str, str]:
    body = root.find(f"{ENV}Body")
    element = body[0] if body is not None and len(body) else None
    if element is None:
        return {}
    return {etree.QName(c).localname: (c.text or "").strip() for c in element}


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

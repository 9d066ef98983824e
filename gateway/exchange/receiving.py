"""The receive shell: one document from a peer, parsed once, judged, stored, receipted.

::

    decrypt (CMS) → parse once → verify both signatures on that tree → schema (lxml)
      → envelope checks (sender, recipient, pinned seal, official, content)
      → snapshot read → judge (pure) → sign the Receipt (before any write lock)
      → one write transaction: conversation unchanged? store, receipt, report, audit → commit

All the CPU work (C14N, signatures, schema, the Receipt's signature) happens before ``BEGIN``;
the write transaction only writes. When another writer moved the conversation between the
snapshot and the write, the decision is taken again on a new snapshot (optimistic concurrency).

The outcome is typed (:class:`ReceiveOutcome`); the web layer maps it to HTTP.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from cryptography import x509
from lxml import etree
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from gateway.crashpoints import crash_point
from gateway.crypto.recipient import RecipientEncryptionError, decrypt_with_any, is_encrypted
from gateway.crypto.segments import PART_KEY_BYTES, SegmentOpener, sealed_size
from gateway.crypto.xades import verify_envelope
from gateway.exchange import documents, inbound, machine_codec
from gateway.exchange.attachments import StagedPart
from gateway.exchange.inbound import Accept, Received, Refuse, Replay, Snapshot
from gateway.exchange.recording import (
    ConcurrentChange,
    LateAnswer,
    message_header,
    record_verification,
    refused_request_facts,
    store_step,
)
from gateway.model.envelope import Header, Urgency
from gateway.model.problems import DocumentRejected, Problem
from gateway.store import attachments as attachment_store
from gateway.store import audit
from gateway.store import conversations as conv_store
from gateway.store import messages as msg_store
from gateway.store import receipts as receipt_store
from gateway.store.attachments import AttachmentMeta, SealedKey
from gateway.store.reports import ReportPurpose
from gateway.xml.header import read_header
from gateway.xml.parsing import parse_untrusted
from gateway.xml.validate import validate

if TYPE_CHECKING:
    from gateway.exchange.node import Node

log = logging.getLogger(__name__)

DECISION_ATTEMPTS = 3
"""Times a document is judged again when its conversation moved under it; beyond that the
sender is told to retry (a conversation does not move thrice in a few milliseconds unless
something is wrong)."""


class Disposition(StrEnum):
    """What became of a received document (the web layer maps each to its HTTP status)."""

    ACCEPTED = "accepted"
    """Stored; the body is our signed Receipt."""
    REPLAYED = "replayed"
    """Stored before with the same bytes; the body is the same Receipt."""
    REFUSED = "refused"
    """Invalid; the body is a signed Rejection (or a plain code when nobody can be addressed)."""
    CONFLICT = "conflict"
    """Valid but it does not fit the conversation; the body is a signed Rejection."""
    UNREADABLE = "unreadable"
    """Not even an envelope; the body is a plain code."""
    TRY_AGAIN = "try-again"
    """A transient refusal: the sender must retry later."""


@dataclass(frozen=True, slots=True)
class ReceiveOutcome:
    disposition: Disposition
    body: bytes
    content_type: str
    code: str = ""
    """The refusal's stable code (empty when accepted)."""
    agreement: str = ""
    kind: str = ""
    """Of the accepted document (codes, for metrics)."""
    late: bool = False
    """An answer after the due date without a delay notice (recorded as ``answer.late``)."""


XML = "application/xml"
TEXT = "text/plain"


def parts_problem(
    header: Header, parts: Sequence[StagedPart], *, sealed: bool = False
) -> Problem | None:
    """The parts must be exactly the signed list, in order: same count, sizes and digests.
    ``sealed`` (an encrypted delivery): each part must be listed sealed (``env:Sealed``) and
    come as that many bytes of segments; its digest is checked once opened
    (:func:`opened_parts`)."""
    listed = header.attachments
    if len(parts) != len(listed):
        return _mismatch(
            "/Envelope/Header/Attachments",
            f"the header lists {len(listed)} attachments; the delivery carried {len(parts)}",
        )
    for number, (ref, part) in enumerate(zip(listed, parts, strict=True), start=1):
        path = f"/Envelope/Header/Attachments/Attachment[{number}]"
        if sealed != (ref.sealing is not None):
            return _mismatch(
                path,
                f"part {number}: an encrypted delivery's parts are listed sealed (env:Sealed), "
                "a plain delivery's are not",
            )
        if sealed:
            if part.size != sealed_size(ref.size):
                return _mismatch(
                    path,
                    f"part {number} is {part.size} bytes of segments; {ref.size} signed bytes "
                    f"seal to {sealed_size(ref.size)}",
                )
            continue
        if ref.size != part.size or ref.sha256 != part.sha256.hex():
            return _mismatch(
                f"/Envelope/Header/Attachments/Attachment[{number}]",
                f"part {number} is {part.size} bytes with SHA-256 {part.sha256.hex()}; the "
                f"signed header says {ref.size} bytes, {ref.sha256}",
            )
    return None


def part_openers(node: Node, payload: bytes) -> list[SegmentOpener | None]:
    """For a confidential document, read before its parts stream in: per listed part, what
    opens its segments as the document claims (part key unwrapped with our encryption keys,
    prefix, id, size), so that each is opened and hashed in the pass that stores it. Nothing
    here is trusted: :func:`opened_parts` compares what opened each part with the signed
    header once it is verified. Empty when the document cannot be read (:func:`receive`
    refuses it then, with its own code); None for a part whose key does not unwrap."""
    try:
        header = _claimed_header(parse_untrusted(_decrypt(node, payload)))
    except (DocumentRejected, RecipientEncryptionError):
        return []
    if header is None:
        return []
    keys = _decryption_keys(node)
    openers: list[SegmentOpener | None] = []
    for ref in header.attachments:
        sealing, part_key = ref.sealing, None
        if sealing is not None:
            with contextlib.suppress(RecipientEncryptionError):
                part_key = decrypt_with_any(sealing.wrapped_key, keys)
        if sealing is None or part_key is None or len(part_key) != PART_KEY_BYTES:
            openers.append(None)
            continue
        openers.append(SegmentOpener(part_key, sealing.prefix, sealing.sealed_as, ref.size))
    return openers


def opened_parts(
    node: Node, header: Header, parts: Sequence[StagedPart]
) -> list[SealedKey] | Problem:
    """Each sealed part checked: its part key unwrapped with our encryption keys (as the
    document was), and every segment found authenticated, in order, under exactly that key,
    prefix and id, its plaintext of the signed size and SHA-256 — as opened while the part was
    stored (:func:`part_openers`; nothing is read back)."""
    keys = _decryption_keys(node)
    opened = []
    for number, (ref, part) in enumerate(zip(header.attachments, parts, strict=True), start=1):
        sealing = ref.sealing
        assert sealing is not None
        path = f"/Envelope/Header/Attachments/Attachment[{number}]/Sealed/WrappedKey"
        try:
            part_key = decrypt_with_any(sealing.wrapped_key, keys)
        except RecipientEncryptionError as error:
            return _key_unreadable(path, f"part {number}: {error}")
        if len(part_key) != PART_KEY_BYTES:
            return _key_unreadable(path, f"part {number}: a key of {len(part_key)} bytes")
        found = part.opened
        signed = (part_key, sealing.prefix, sealing.sealed_as, ref.size)
        if found is None or (found.key, found.prefix, found.sealed_as, found.size) != signed:
            # Only if our encryption keys changed while the part streamed in: let the sender
            # try again rather than refuse it for good.
            return Problem(
                code=inbound.TRY_AGAIN,
                path=path,
                message_ru="Вложение не удалось открыть при приёме: повторите доставку.",
                message_en=f"part {number} was not opened with the signed key as it arrived",
                remedy_ru="Отправка будет повторена автоматически.",
            )
        if found.failure is not None:
            return _mismatch(
                path.removesuffix("/Sealed/WrappedKey"), f"part {number}: {found.failure}"
            )
        assert found.sha256 is not None
        if found.sha256.hex() != ref.sha256:
            return _mismatch(
                path.removesuffix("/Sealed/WrappedKey"),
                f"part {number} opens to SHA-256 {found.sha256.hex()}; the signed header says "
                f"{ref.sha256}",
            )
        opened.append(
            SealedKey(
                part_key, sealing.prefix, sealing.sealed_as, ref.size, bytes.fromhex(ref.sha256)
            )
        )
    return opened


def _key_unreadable(path: str, en: str) -> Problem:
    return Problem(
        code="ATTACHMENT_KEY_UNREADABLE",
        path=path,
        message_ru="Ключ вложения конфиденциального документа не расшифровывается ключом "
        "шифрования получателя: документ не принят, ничего не сохранено.",
        message_en=en,
        remedy_ru="Отправитель должен зашифровать ключ вложения для действующего сертификата "
        "шифрования получателя из справочника органов и отправить документ снова.",
        article="CIS Art. 16; SC Art. 8",
    )


def _mismatch(path: str, en: str) -> Problem:
    return Problem(
        code="ATTACHMENT_MISMATCH",
        path=path,
        message_ru="Вложения доставки не совпадают с подписанным перечнем (размер или "
        "SHA-256): документ не принят, ничего не сохранено.",
        message_en=en,
        remedy_ru="Отправитель должен отправить документ снова; если повторяется — "
        "вложение изменено в пути или в хранилище отправителя.",
    )


def receive(
    node: Node, tls_body: str, payload: bytes, parts: Sequence[StagedPart] = ()
) -> ReceiveOutcome:
    """Process one document a peer sent; always answers, never raises for the peer's faults.
    ``parts``: its attachments, staged; linked to the message if it is accepted (the caller
    discards them otherwise)."""
    now = node.clock()
    encrypted = is_encrypted(payload)
    try:
        if encrypted:
            payload = _decrypt(node, payload)
        root = parse_untrusted(payload)
    except (DocumentRejected, RecipientEncryptionError) as rejected:
        problem = (
            rejected.problems[0] if isinstance(rejected, DocumentRejected) else rejected.problem()
        )
        _audit_refusal(node, tls_body, None, problem, now)
        return ReceiveOutcome(Disposition.UNREADABLE, problem.code.encode(), TEXT, problem.code)
    claimed = _claimed_header(root)
    try:
        received = _verified(node, tls_body, root, payload, encrypted, now, claimed)
    except DocumentRejected as rejected:
        return _refused(node, tls_body, claimed, Refuse(rejected.problems[0]), now)
    mismatch = parts_problem(received.header, parts, sealed=encrypted and bool(parts))
    if mismatch is not None:
        return _refused(node, tls_body, claimed, Refuse(mismatch), now)
    sealed: list[SealedKey] = []
    if encrypted and parts:
        found = opened_parts(node, received.header, parts)
        if isinstance(found, Problem):
            return _refused(node, tls_body, claimed, Refuse(found), now)
        sealed = found
    crash_point("receive.verified")
    for _ in range(DECISION_ATTEMPTS):
        snapshot = _snapshot(node, received.header)
        receipt_json = documents.receipt_json(
            received.header,
            document_sha256=received.sha256.hex(),
            received_at=now,
            sender=node.body_id,
            now=now,
        )
        verdict = inbound.judge(
            received,
            snapshot,
            node.index,
            body_id=node.body_id,
            receipt_message_id=receipt_json["header"]["MessageId"],
            now=now,
            calendars=node.calendars,
        )
        if isinstance(verdict, Replay):
            return _replay(node, verdict)
        if isinstance(verdict, Refuse):
            return _refused(node, tls_body, claimed, verdict, now)
        # Built from the header of a document that passed the schema: valid by construction.
        receipt = node.sign_machine_document(receipt_json, now, schema_valid=True)
        crash_point("receipt.signed")
        try:
            late = _store_accepted(
                node, received, snapshot, verdict, receipt_json, receipt, now, parts, sealed
            )
        except ConcurrentChange:
            continue
        except IntegrityError:
            # A concurrent first delivery of the same message stored it meanwhile (on
            # PostgreSQL the other transaction's new conversation or message row): decide
            # again; the new snapshot sees it and answers as to a replay, with its receipt.
            continue
        except OperationalError as error:
            # A deadlock between two processes' batches, or the database restarting: nothing
            # of this unit was committed; decide again, then tell the sender to retry.
            log.warning("storing a received document failed: %s", type(error.orig).__name__)
            continue
        crash_point("receive.committed")
        return ReceiveOutcome(
            Disposition.ACCEPTED,
            receipt,
            XML,
            agreement=received.header.agreement,
            kind=received.header.kind,
            late=late is not None,
        )
    return _refused(node, tls_body, claimed, Refuse(ConcurrentChange().problems[0]), now)


def _decrypt(node: Node, cms: bytes) -> bytes:
    return decrypt_with_any(cms, _decryption_keys(node))


def _decryption_keys(node: Node) -> list[tuple[Any, x509.Certificate]]:
    return [(k.private_key, k.certificate) for k in node.keys.decryption_keys()]


def _verified(
    node: Node,
    tls_body: str,
    root: etree._Element,
    payload: bytes,
    encrypted: bool,
    now: datetime,
    claimed: Header | None,
) -> Received:
    """Signatures, schema and the envelope's own checks, all on the one parsed tree.
    ``claimed``: the header as read from that tree before (not read again)."""
    # The transport's identity is compared with the Sender below, with its own code
    # (SENDER_MISMATCH); the signature check binds signer body and Sender.
    verified = verify_envelope(root, node.trust, at=now, require_official=False)
    if not verified.report.passed:
        raise inbound.signature_failure(verified.report)
    problems = validate(root, node.registry)
    if problems:
        raise DocumentRejected(problems)
    received = Received(
        tls_body=tls_body,
        header=claimed if claimed is not None else read_header(root),
        root=root,
        report=verified.report,
        payload=payload,
        sha256=hashlib.sha256(payload).digest(),
        encrypted=encrypted,
    )
    inbound.check_envelope(received, node.index, node.body_id)
    return received


def _snapshot(node: Node, header: Header) -> Snapshot:
    with node.store.read() as conn:
        read = conv_store.receive_snapshot(conn, header.message_id, header.conversation_id)
        request = None
        if header.kind == "Refusal" and read.conversation is not None:
            request = refused_request_facts(conn, header.conversation_id, node.kek_ring)
    return Snapshot(
        stored_sha256=read.stored_sha256,
        receipt_message_id=read.receipt_message_id,
        conversation=read.conversation,
        state=machine_codec.loads(read.machine) if read.machine else None,
        request=request,
    )


def _store_accepted(
    node: Node,
    received: Received,
    snapshot: Snapshot,
    verdict: Accept,
    receipt_json: dict[str, object],
    receipt: bytes,
    now: datetime,
    parts: Sequence[StagedPart] = (),
    sealed: Sequence[SealedKey] = (),
) -> LateAnswer | None:
    header = received.header
    receipt_header = _receipt_header(receipt_json)

    def write(conn: Connection) -> LateAnswer | None:
        late = store_step(
            conn,
            node.calendars,
            header,
            verdict.step,
            snapshot.conversation,
            verdict.requesting,
            verdict.requested,
            now,
            opening=(node.kek_ring, received.root),
        )
        outcome = msg_store.insert_received(
            conn, message_header(header), received.payload, node.kek_ring, now
        )
        if outcome is not msg_store.ReceiveOutcome.INSERTED:
            raise ConcurrentChange  # another process stored it first: decide again
        if parts:
            message_key = msg_store.data_key(conn, header.message_id, node.kek_ring)
            attachment_store.link(
                conn,
                header.message_id,
                message_key,
                [p.attachment_id for p in parts],
                node.kek_ring,
                [AttachmentMeta(a.name, a.media_type, a.language) for a in header.attachments],
                sealed,
            )
        record_verification(
            conn, header.message_id, received.report, ReportPurpose.RECEIPT, now, node.kek_ring
        )
        msg_store.insert_sent(conn, message_header(receipt_header), receipt, node.kek_ring, now)
        receipt_store.record(
            conn,
            message_id=header.message_id,
            receipt_message_id=receipt_header.message_id,
            direction=msg_store.Direction.OUT,
            outcome=receipt_store.ReceiptOutcome.ACCEPTED,
            at=now,
        )
        audit.append(
            conn,
            now=now,
            actor=f"peer:{received.tls_body}",
            kind="message.received",
            subjects={"message": header.message_id, "conversation": header.conversation_id},
            details={
                "kind": header.kind,
                "agreement": header.agreement,
                "indication": str(received.report.indication),
                "sha256": received.sha256.hex(),
            },
        )
        if verdict.warnings:
            # Accepted with a warning the operator must see (a requested term that lapsed in
            # transit: the agreement's term applies, CIS Art. 12 para. 2).
            audit.append(
                conn,
                now=now,
                actor="gateway",
                kind="message.warnings",
                subjects={"message": header.message_id, "conversation": header.conversation_id},
                details={"codes": " ".join(p.code for p in verdict.warnings)},
            )
        crash_point("receive.write")
        return late

    # Committed together with other receives (one transaction, a savepoint each); the receipt
    # goes back only after this unit's commit.
    return node.committer.run(write, key=header.message_id)


def _receipt_header(receipt_json: dict[str, object]) -> Header:
    """The Receipt's header from the JSON it was built from: no parse of our own document."""
    fields = receipt_json["header"]
    assert isinstance(fields, dict)
    return Header(
        message_id=fields["MessageId"],
        conversation_id=fields["ConversationId"],
        in_reply_to=fields["InReplyTo"],
        agreement=fields["Agreement"],
        kind=fields["Kind"],
        sender=fields["Sender"],
        recipient=fields["Recipient"],
        created=datetime.fromisoformat(fields["Created"].replace("Z", "+00:00")),
        confidential=bool(fields["Confidential"]),
        urgency=Urgency(fields["Urgency"]),
        requested_deadline=None,
        language=fields["Language"],
    )


def _replay(node: Node, verdict: Replay) -> ReceiveOutcome:
    with node.store.read() as conn:
        document = msg_store.read_document(conn, verdict.receipt_message_id, node.kek_ring)
    return ReceiveOutcome(Disposition.REPLAYED, document, XML)


def _refused(
    node: Node, tls_body: str, claimed: Header | None, verdict: Refuse, now: datetime
) -> ReceiveOutcome:
    problem = verdict.problem
    _audit_refusal(node, tls_body, claimed, problem, now)
    if verdict.transient:
        # Transient (a concurrent change, or this node's trust behind the sender's): the
        # sender must retry, and a signed Rejection would end its delivery for good.
        return ReceiveOutcome(Disposition.TRY_AGAIN, problem.code.encode(), TEXT, problem.code)
    disposition = Disposition.CONFLICT if verdict.conflict else Disposition.REFUSED
    rejection = _rejection(node, claimed, problem, tls_body, now) if claimed else None
    if rejection is None:
        return ReceiveOutcome(disposition, problem.code.encode(), TEXT, problem.code)
    return ReceiveOutcome(disposition, rejection, XML, problem.code)


def _rejection(
    node: Node, claimed: Header, problem: Problem, tls_body: str, now: datetime
) -> bytes | None:
    """Our signed Rejection of the claimed document; None when the claimed header is too broken
    to answer in the agreement's terms (an agreement or kind the schema does not know)."""
    try:
        return node.sign_machine_document(
            documents.rejection_json(
                claimed, problem, sender=node.body_id, now=now, recipient=tls_body
            ),
            now,
        )
    except (DocumentRejected, KeyError, ValueError):
        return None


def _audit_refusal(
    node: Node, tls_body: str, claimed: Header | None, problem: Problem, now: datetime
) -> None:
    subjects = _claimed_id(claimed)
    log.info(
        "rejected a document from %s: %s",
        tls_body,
        problem.code,
        extra={"peer": tls_body, "message_id": subjects.get("message")},
    )
    # Counted per peer, code and minute, not one audit row each (gateway.exchange.refusals).
    node.refusals.record(f"peer:{tls_body}", problem.code, now, subjects=subjects)


def _claimed_id(claimed: Header | None) -> dict[str, str]:
    """The message id the refused document claims, as an audit subject — only when it is a
    UUID: the header is unverified, and a megabyte "id" must neither reach the audit trail nor
    make the refusal fail (fuzzing found a 5,000-character one: 500 INTERNAL_ERROR)."""
    if claimed is None:
        return {}
    claimed_id = claimed.message_id
    try:
        well_formed = isinstance(claimed_id, str) and len(claimed_id) == 36
        well_formed = well_formed and bool(uuid.UUID(claimed_id))
    except ValueError:
        well_formed = False
    return {"message": claimed_id} if well_formed else {}


def _claimed_header(root: etree._Element) -> Header | None:
    """The header as the document claims it, before verification: used only to address a
    signed Rejection, never to process anything."""
    try:
        return read_header(root)
    except (ValueError, TypeError, KeyError):
        return None


__all__ = ["Disposition", "ReceiveOutcome", "receive"]

"""Proof of existence from the node's own records (issue #19).

A signature claims its signing time; only proof that the document existed at some moment
keeps it valid after its signer's certificate is revoked (even "superseded") or expires. An
RFC 3161 timestamp is such proof when a TSA is configured. Without one, the node still holds
its own: the signed **receipt** of the exchange.

- A message we sent and the peer accepted: the peer's receipt, sealed by the peer and verified
  when it arrived (its report is recorded), names our message and the SHA-256 of exactly what
  we sent. The receipt's recorded time is when the node had that proof.
- A message we received: the receipt we sealed and sent back names its SHA-256; it was
  recorded in the same transaction that stored the message.
- Any message: the audit event that stored it (``message.submitted`` / ``message.received``)
  names its SHA-256, and the first signed audit checkpoint at or after that event proves the
  chain up to it — the event included — existed at the checkpoint's time. The lookup trusts
  no row for that: the checkpoint's statement must be signed by one of this body's seal
  generations, and the stored events from the storing one to the signed head must be intact
  and end in the signed hash; the time is the signed one.

The earliest proof held is used (the earlier, the more revocations it outlasts).

The receipt must name the message and the SHA-256 of the stored document; anything else proves
nothing and is ignored (the document then stays INDETERMINATE after a revocation).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.engine import Connection

from gateway.crypto.at_rest import AtRestError
from gateway.crypto.keys.generations import Signer
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.report import ExistenceProof
from gateway.crypto.statements import CHECKPOINT_FORMAT, verify_statement
from gateway.crypto.timestamps import timestamped_before
from gateway.crypto.trust import TrustList
from gateway.exchange.inbound import body_fields
from gateway.model.problems import DocumentRejected
from gateway.store import audit as audit_store
from gateway.store import messages as msg_store
from gateway.store import outbox as outbox_store
from gateway.store import receipts as receipt_store
from gateway.store.messages import Direction
from gateway.xml.header import read_header
from gateway.xml.parsing import parse_untrusted

DS = "{http://www.w3.org/2000/09/xmldsig#}"


def proof_of_existence(
    conn: Connection,
    message_id: str,
    document_sha256: bytes,
    keys: KekRing,
    stored_at: datetime | None = None,
    seal_signers: Sequence[Signer] = (),
    trust: TrustList | None = None,
) -> ExistenceProof | None:
    """The node's earliest proof that the document with ``document_sha256`` existed (its
    receipt; with ``stored_at`` and this body's ``seal_signers``, every generation, the
    signed audit checkpoint covering the event that stored it — a compromised seal's only by
    its TSA timestamp, judged under ``trust``), or None when the node holds none for it."""
    chain = (
        _chain_proof(conn, message_id, document_sha256, stored_at, seal_signers, trust)
        if stored_at and seal_signers
        else None
    )
    proofs = [
        proof
        for proof in (_receipt_proof(conn, message_id, document_sha256, keys), chain)
        if proof is not None
    ]
    return min(proofs, key=lambda proof: proof.time, default=None)


def _receipt_proof(
    conn: Connection, message_id: str, document_sha256: bytes, keys: KekRing
) -> ExistenceProof | None:
    receipt = receipt_store.get(conn, message_id)
    if receipt is None or receipt.outcome is not receipt_store.ReceiptOutcome.ACCEPTED:
        return None
    try:
        document = msg_store.read_document(conn, receipt.receipt_message_id, keys)
        root = parse_untrusted(document)
        header = read_header(root)
    except (DocumentRejected, LookupError, AtRestError):
        # A purged, shredded or altered receipt proves nothing.
        return None
    fields = body_fields(root)
    named = fields.get("ReceivedSha256", "")
    if fields.get("ReceivedMessageId") != message_id or not hmac.compare_digest(
        named.lower(), document_sha256.hex()
    ):
        return None
    evidence = _evidence(receipt.receipt_message_id, header.sender, receipt.direction, receipt.at)
    return ExistenceProof(time=receipt.at, evidence=evidence)


STORING_EVENTS = frozenset({"message.submitted", "message.received", "message.resigned"})
CLOCK_DISORDER = timedelta(minutes=5)
"""How far apart the times of neighbouring audit events may lie out of order (several
processes append, each with its own reading of the clock)."""
EVENTS_SCANNED = 20_000
"""Events read at most after the search lands near the storing time (a busy minute's worth)."""


CHECKPOINTS_TRIED = 3
"""Checkpoints claiming to cover the event that are examined (a forged or broken one is
passed over for the next)."""
EVENTS_LINKED = 200_000
"""Events at most between the storing event and a checkpoint's head whose links are checked
per lookup (checkpoints are taken often enough that this is far more than a day's traffic)."""


def _chain_proof(
    conn: Connection,
    message_id: str,
    document_sha256: bytes,
    stored_at: datetime,
    seal_signers: Sequence[Signer],
    trust: TrustList | None,
) -> ExistenceProof | None:
    """The first signed checkpoint covering the audit event that stored this document."""
    event = _storing_event(conn, message_id, document_sha256.hex(), stored_at)
    if event is None:
        return None
    proven = event_proven(conn, event.seq, seal_signers, trust=trust)
    if proven is None:
        return None
    return ExistenceProof(
        time=proven.time,
        evidence=f"audit event {event.seq} ({event.kind}, naming the document's SHA-256) "
        f"covered by {proven.evidence}",
    )


@dataclass(frozen=True, slots=True)
class EventProof:
    time: datetime
    """The signed time of the checkpoint: the event existed then."""
    evidence: str


def event_proven(
    conn: Connection,
    event_seq: int,
    seal_signers: Sequence[Signer],
    before: datetime | None = None,
    trust: TrustList | None = None,
) -> EventProof | None:
    """The first signed audit checkpoint that covers the audit event ``event_seq`` (the stored
    events from it to the signed head intact and ending in the signed hash), made before
    ``before`` when given; None when the node holds none. A checkpoint of a generation revoked
    for key compromise counts only by its TSA timestamp, valid under ``trust`` and earlier than
    the revocation (its own time is the key holder's word)."""
    # Passed over in the query, so that a compromised seal's many checkpoints do not use up
    # the few examined (the signature check below refuses them anyway) — but for those a TSA
    # dated, when there is trust to judge the TSA by.
    compromised = [s.certificate.public_bytes(Encoding.DER) for s in seal_signers if s.compromised]
    for checkpoint in audit_store.checkpoints_covering(
        conn, event_seq, CHECKPOINTS_TRIED, compromised, unless_timestamped=trust is not None
    ):
        signed = _signed_head(checkpoint, seal_signers, trust)
        if signed is None:
            continue
        seq, digest, at = signed
        if (
            (before is not None and at >= before)
            or seq < event_seq
            or not audit_store.chain_reaches(conn, event_seq, seq, digest, EVENTS_LINKED)
        ):
            continue
        return EventProof(
            at, f"the signed audit checkpoint {checkpoint.checkpoint_id} of {at.isoformat()}"
        )
    return None


def _signed_head(
    checkpoint: audit_store.StoredCheckpoint,
    seal_signers: Sequence[Signer],
    trust: TrustList | None,
) -> tuple[int, bytes, datetime] | None:
    """``(seq, hash, time)`` as this body's seal signed them, or None: the row's own columns
    can be edited apart from the signed statement, so only the statement counts. The time is
    the statement's, or for a compromised seal's checkpoint its TSA's (None without one)."""
    check = verify_statement(
        checkpoint.statement, checkpoint.signature, checkpoint.certificate, seal_signers
    )
    if check.ok:
        proven_at = check.signed_at
    elif check.compromised_at is not None:
        proven_at = timestamped_before(
            checkpoint.timestamp, checkpoint.signature, check.compromised_at, trust
        )
    else:
        return None
    if proven_at is None:
        return None
    try:
        signed = json.loads(checkpoint.statement)
        if signed.get("format") != CHECKPOINT_FORMAT:
            return None
        return (int(signed["seq"]), bytes.fromhex(signed["hash"]), proven_at)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _storing_event(
    conn: Connection, message_id: str, sha256_hex: str, stored_at: datetime
) -> audit_store.AuditEvent | None:
    """The event that stored the message: found by bisecting the chain on time (events are in
    seq order, their times nearly so), then reading forward a bounded stretch."""
    last, _ = audit_store.head(conn)
    low, high = 1, last + 1
    since = stored_at - CLOCK_DISORDER
    while low < high:
        middle = (low + high) // 2
        event = audit_store.event_at(conn, middle)
        if event is None or event.at < since:
            low = middle + 1
        else:
            high = middle
    after, end = low - 1, min(last, low - 1 + EVENTS_SCANNED)
    until = stored_at + CLOCK_DISORDER
    while after < end:
        page = audit_store.events_in_range(conn, after_seq=after, up_to_seq=end)
        if not page:
            return None
        for event in page:
            if event.at > until:
                return None
            if (
                event.kind in STORING_EVENTS
                and event.subjects.get("message") == message_id
                and event.details.get("sha256") == sha256_hex
            ):
                return event
        after = page[-1].seq
    return None


def _evidence(receipt_id: str, sealed_by: str, direction: Direction, at: datetime) -> str:
    whose = "the peer's" if direction is Direction.IN else "our"
    return (
        f"{whose} receipt {receipt_id} sealed by {sealed_by}, naming the document's SHA-256, "
        f"recorded {at.isoformat()}"
    )


def pending_signed_by(conn: Connection, certificate_der: bytes, keys: KekRing) -> int:
    """How many documents waiting in the outbox carry a signature by ``certificate_der``: after
    its revocation peers cannot tell when they were signed (no receipt yet), so they would
    answer INDETERMINATE / REVOKED_NO_POE. Read before revoking a generation as superseded."""
    count = 0
    for message_id in outbox_store.pending_message_ids(conn):
        try:
            root = parse_untrusted(msg_store.read_document(conn, message_id, keys))
        except (DocumentRejected, LookupError, AtRestError):
            continue
        if any(
            _der(element.text) == certificate_der for element in root.iter(f"{DS}X509Certificate")
        ):
            count += 1
    return count


def _der(text: str | None) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except binascii.Error:
        return b""

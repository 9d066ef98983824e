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

The receipt must name the message and the SHA-256 of the stored document; anything else proves
nothing and is ignored (the document then stays INDETERMINATE after a revocation).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import datetime

from lxml import etree
from sqlalchemy.engine import Connection

from gateway.crypto.at_rest import AtRestError, KekRing
from gateway.crypto.report import ExistenceProof
from gateway.model.problems import DocumentRejected
from gateway.model.profiles import ENVELOPE_NAMESPACE
from gateway.store import messages as msg_store
from gateway.store import outbox as outbox_store
from gateway.store import receipts as receipt_store
from gateway.store.messages import Direction
from gateway.xml.header import read_header
from gateway.xml.parsing import parse_untrusted

ENV = f"{{{ENVELOPE_NAMESPACE}}}"
DS = "{http://www.w3.org/2000/09/xmldsig#}"


def proof_of_existence(
    conn: Connection, message_id: str, document_sha256: bytes, keys: KekRing
) -> ExistenceProof | None:
    """The node's proof that the document with ``document_sha256`` existed (its receipt), or
    None when the node holds none for it."""
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
    fields = _receipt_fields(root)
    named = fields.get("ReceivedSha256", "")
    if fields.get("ReceivedMessageId") != message_id or not hmac.compare_digest(
        named.lower(), document_sha256.hex()
    ):
        return None
    evidence = _evidence(receipt.receipt_message_id, header.sender, receipt.direction, receipt.at)
    return ExistenceProof(time=receipt.at, evidence=evidence)


def _evidence(receipt_id: str, sealed_by: str, direction: Direction, at: datetime) -> str:
    whose = "the peer's" if direction is Direction.IN else "our"
    return (
        f"{whose} receipt {receipt_id} sealed by {sealed_by}, naming the document's SHA-256, "
        f"recorded {at.isoformat()}"
    )


def _receipt_fields(root: etree._Element) -> dict[str, str]:
    body = root.find(f"{ENV}Body")
    element = body[0] if body is not None and len(body) else None
    if element is None:
        return {}
    return {etree.QName(c).localname: (c.text or "").strip() for c in element}


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

"""Documents the node itself writes: the header of an outgoing message, receipts, rejections.

Everything is built as the JSON form (it mirrors the XSD, docs/documents.md) and converted by
:mod:`gateway.xml.convert`, so the schema stays the single source of truth.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.model.envelope import Header
from gateway.model.ids import time_ordered_uuid
from gateway.model.problems import Problem

REJECTION_REASON_LIMIT = 900
"""Rejection reasons are cut here: enough to say what is wrong, never a copy of the document."""


HEADER_ORDER = (
    "MessageId",
    "ConversationId",
    "InReplyTo",
    "Agreement",
    "Kind",
    "Sender",
    "Recipient",
    "Created",
    "Confidential",
    "Urgency",
    "RequestedDeadline",
    "Language",
    "Attachments",
)
"""``<env:Header>``'s sequence in envelope.xsd."""


def new_message_id() -> str:
    """A message or conversation id: time-ordered (:mod:`gateway.model.ids` says why)."""
    return time_ordered_uuid()


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def complete_header(
    header: dict[str, Any],
    *,
    sender: str,
    now: datetime,
    opens_conversation: bool,
) -> dict[str, Any]:
    """Fill what the node decides for an outgoing document; keep what the case system gave.

    The sender is always this node (a case system cannot speak for another body); ids and the
    creation time are made here unless given (a case system may pre-allocate ids to correlate).
    """
    out = dict(header)
    out["Sender"] = sender
    out.setdefault("MessageId", new_message_id())
    if opens_conversation:
        out.setdefault("ConversationId", new_message_id())
    out.setdefault("Created", _iso(now))
    out.setdefault("Urgency", "normal")
    out.setdefault("Language", "ru")
    out.setdefault("Confidential", False)
    # The XSD's sequence fixes the order; xmlschema encodes a mapping in its given order.
    return {name: out[name] for name in HEADER_ORDER if name in out} | {
        k: v for k, v in out.items() if k not in HEADER_ORDER
    }


def _reply_header(
    to: Header, *, kind: str, sender: str, now: datetime, recipient: str | None = None
) -> dict[str, Any]:
    return {
        "MessageId": new_message_id(),
        "ConversationId": to.conversation_id,
        "InReplyTo": to.message_id,
        "Agreement": to.agreement,
        "Kind": kind,
        "Sender": sender,
        "Recipient": recipient or to.sender,
        "Created": _iso(now),
        "Confidential": to.confidential,
        "Urgency": "normal",
        "Language": "ru",
    }


def receipt_json(
    to: Header, *, document_sha256: str, received_at: datetime, sender: str, now: datetime
) -> dict[str, Any]:
    """The Receipt acknowledging ``to``: its id and the SHA-256 of its signed bytes."""
    return {
        "header": _reply_header(to, kind="Receipt", sender=sender, now=now),
        "body": {
            "Receipt": {
                "ReceivedMessageId": to.message_id,
                "ReceivedSha256": document_sha256,
                "Received": _iso(received_at),
            }
        },
    }


def rejection_json(
    to: Header, problem: Problem, *, sender: str, now: datetime, recipient: str | None = None
) -> dict[str, Any]:
    """A Rejection of ``to``: a stable code and a reason that names the rule, not the data.

    ``recipient`` overrides the header's sender: a document refused before its signature was
    verified is answered to the peer the TLS connection proved, not to whom it claims to be."""
    return {
        "header": _reply_header(to, kind="Rejection", sender=sender, now=now, recipient=recipient),
        "body": {
            "Rejection": {
                "Code": problem.code[:64],
                "ReasonRu": problem.message_ru[:REJECTION_REASON_LIMIT] or problem.code,
                "ReasonEn": problem.message_en[:REJECTION_REASON_LIMIT] or problem.code,
                "RejectedMessageId": to.message_id,
            }
        },
    }

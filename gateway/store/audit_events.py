"""Every kind of audit event, with what it records: the one list of them.

:func:`gateway.store.audit.append` refuses a kind that is not here (a programming error), so a
new event cannot be written before it is described; the console's Russian labels
(``gateway.web.console.labels.AUDIT_EVENT_LABELS``) are tested to have exactly these keys, and
the table in docs/purge-and-audit.md («The audit trail») is generated from this mapping::

    python -m gateway.store.audit_doc            # rewrite the table in the doc
    python -m gateway.store.audit_doc --check    # exit 1 when the doc differs

A kind no longer written stays listed (older trails hold it, the console still names it) and in
:data:`RETIRED_EVENTS`, which ``append`` refuses too.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "AUDIT_EVENTS",
    "RETIRED_EVENTS",
    "WRITTEN_EVENTS",
    "check_kind",
    "events_table",
]

AUDIT_EVENTS: Mapping[str, str] = MappingProxyType(
    {
        "access.denied": "A request refused for want of a role: the role needed, what was asked.",
        "answer.late": (
            "An answer sent or received after the request's due date with no delay notice "
            "(CIS Art. 12 para. 3): due date, answer date, days late."
        ),
        "attachment.discarded": (
            "An uploaded file no submission took, deleted by the one who uploaded it (a form "
            "refused after its file came in)."
        ),
        "attachment.expired": (
            "An uploaded file no submission took within a day, deleted by the outbox-retry "
            "job's sweep (docs/attachments.md)."
        ),
        "attachment.uploaded": (
            "A file uploaded to be sent beside a document, stored encrypted: its size and "
            "SHA-256; a received file taken in again to be returned with a refusal (CIS Art. 13) "
            "names that message."
        ),
        "attachment.verified": "The signatures of a signed PDF attachment checked on request.",
        "audit.checkpoint": "The chain head signed by the body's seal and stored as a checkpoint.",
        "audit.exported": (
            "A range of the trail exported for a supervisor: how many events, from and to which, "
            "whether purposes were opened."
        ),
        "audit.purposes.read": (
            "The sealed purposes of reads opened for an auditor: how many opened, how many not."
        ),
        "audit.verified": (
            "The trail verified (chain, checkpoints, purge reports, tombstones): the outcome and "
            "where it breaks."
        ),
        "console.account_locked": (
            "A console account locked for a while after repeated failed sign-ins."
        ),
        "console.audit_verified": (
            "Retired: the console's chain check before it recorded audit.verified (older trails)."
        ),
        "console.csrf_refused": (
            "A console form refused for want of a valid form token: route, reason, address."
        ),
        "console.purpose_refused": (
            "A console user without the role to read a confidential conversation tried to state "
            "a purpose for it."
        ),
        "console.purpose_stated": (
            "A purpose of reading stated on the console for a conversation (its digest only)."
        ),
        "console.sign_in_failed": "A failed console sign-in: the name given, why, from where.",
        "console.signed_in": "A console sign-in: the user's roles and address.",
        "console.signed_out": "A console sign-out.",
        "conversation.read": (
            "A confidential conversation's list of documents read, with the stated purpose "
            "(sealed)."
        ),
        "conversations.reindexed": (
            "The conversations' search index rebuilt: how many conversations."
        ),
        "deadline.answered-late": (
            "The operator told, once, of a late answer (answer.late) by the deadline-reminders job."
        ),
        "deadline.paused": "The request's term paused (the reason and article).",
        "deadline.reminder": (
            "A reminder of a request's due date, near or passed: days left, whose party, urgency."
        ),
        "deadline.resumed": "The request's term resumed after a pause.",
        "deadline.started": "The request's term started running (its article).",
        "deadline.stopped": "The request's term ended (its outcome).",
        "delivery.dead-letter": (
            "Delivery of a document given up after its last failed attempt: the error code."
        ),
        "delivery.failed": (
            "A failed attempt to deliver a document to the recipient's node (the error code); "
            "another follows."
        ),
        "directory.imported": "A signed version of the directory of bodies installed.",
        "disclosure.records.read": (
            "The records of disclosures of received documents read (by document or by "
            "recipient): counts only."
        ),
        "disclosure.refused": (
            "A disclosure of a received document to a third party refused (CIS Art. 9): the "
            "code and article."
        ),
        "document.disclosed": (
            "A received document disclosed to a third party (CIS Art. 9): the legal ground."
        ),
        "document.read": "A document's content read, with the stated purpose (sealed).",
        "document.reverified": (
            "A stored document's signatures verified again on request: the new indication."
        ),
        "hold.placed": "A legal hold placed on a conversation: it is not purged while held.",
        "hold.released": "A legal hold on a conversation released, with the reason.",
        "kek.destroyed": "A key-encryption key (KEK) destroyed: what it sealed is unreadable.",
        "kek.rewrap.finished": (
            "Data keys re-wrapped under the KEK in force by hand: how many, whether all."
        ),
        "kek.rotated": "A new key-encryption key (KEK) created and put in force.",
        "key.activated": "A generation of a signing or encryption key put in force.",
        "key.certificate.imported": "A certificate imported for a generation of a key.",
        "key.expiring": "A key's certificate expires soon or has expired: days left.",
        "key.publication.exported": (
            "The body's certificates exported for publication in the directory."
        ),
        "key.revoked": "A generation of a key revoked: the reason, when, the CRL serial.",
        "key.rewrapped": (
            "One batch of data keys, period keys and secrets re-wrapped under the KEK in force."
        ),
        "key.rotated": "A new generation of a signing or encryption key created.",
        "message.delivered": "A document accepted by the recipient's node (its Receipt came).",
        "message.purged": (
            "Retired: one purged document per event, before purge.tombstones (older trails)."
        ),
        "message.received": (
            "A document received from a peer and stored: kind, agreement, signature "
            "indication, SHA-256."
        ),
        "message.rejected": (
            "A document a peer sent, refused by the receive pipeline: the refusal code."
        ),
        "message.rejected-by-peer": (
            "A document the recipient's node refused (its Rejection came): the code."
        ),
        "message.resent": (
            "A document submitted as the resend of one refused or given up: links the two."
        ),
        "message.resigned": (
            "A document waiting in the outbox signed again, its signer's key revoked: the old "
            "and new SHA-256."
        ),
        "message.submitted": (
            "A document submitted by the case system, signed and queued for delivery: kind, "
            "agreement, SHA-256."
        ),
        "message.warnings": (
            "A received document accepted with warnings the operator must see: their codes."
        ),
        "operator.notified": (
            "The conversation's rules told an operator to know or act: a code, whose operator."
        ),
        "original.not-sent": (
            "A paper original due by post not marked sent within its term (reminder)."
        ),
        "original.received": "A document's paper original marked received by post.",
        "original.sent": "A document's paper original marked sent by post: date, tracking.",
        "peer.refused": (
            "A peer's request refused at the endpoint before the receive pipeline (unknown "
            "peer, too large): the code."
        ),
        "proceeding.closed": "The enforcement proceeding of a conversation marked closed.",
        "purge.batch": (
            "A batch of tombstones a purge run wrote, bound by their digest and per-row tags."
        ),
        "purge.failed": "A purge run ended with an error: counts, its code, the report's hash.",
        "purge.finished": "A purge run completed: counts and its signed report's SHA-256.",
        "purge.started": "A purge run started: its policy set and that set's SHA-256.",
        "purge.tombstones": (
            "Retired: 64 tombstones per event, listed by id, before purge.batch (older trails)."
        ),
        "refusals.summary": (
            "Refusals of one code by one peer in one minute after the first (which has its own "
            "event): their count."
        ),
        "reminder.scheduled": (
            "The conversation's rules scheduled a reminder: date, whose operator, code."
        ),
        "retention.period_key_destroyed": (
            "A retention period key destroyed by the purge: the week's purged documents are "
            "unreadable in every copy (crypto-shredding)."
        ),
        "retention.policy_changed": (
            "The retention policy set changed: old and new SHA-256, any below the minimum."
        ),
        "token.created": "A local API access token issued: label, roles, expiry.",
        "token.revoked": "A local API access token revoked.",
        "user.added": "A console user added, with roles.",
        "user.disabled": "A console user disabled.",
    }
)
"""Event code (``kind``) → one line of what the event records, in code order."""

RETIRED_EVENTS: frozenset[str] = frozenset(
    {"console.audit_verified", "message.purged", "purge.tombstones"}
)
"""Kinds older trails hold and the code no longer writes (verified and shown, never appended)."""

WRITTEN_EVENTS: frozenset[str] = frozenset(AUDIT_EVENTS) - RETIRED_EVENTS
"""The kinds :func:`gateway.store.audit.append` accepts."""


def check_kind(kind: str) -> None:
    """Raise ValueError unless ``kind`` is an event code the code may write now."""
    if kind in WRITTEN_EVENTS:
        return
    if kind in RETIRED_EVENTS:
        raise ValueError(f"audit kind {kind!r} is retired: it is no longer written")
    raise ValueError(
        f"audit kind {kind!r} is not registered: describe it in "
        "gateway.store.audit_events.AUDIT_EVENTS (and label it in the console)"
    )


def events_table() -> str:
    """The Markdown table of every event code and what it records."""
    lines = ["| event | records |", "|---|---|"]
    lines += [f"| `{kind}` | {text} |" for kind, text in sorted(AUDIT_EVENTS.items())]
    return "\n".join(lines) + "\n"

"""One in-memory LocalService for the local API's and the console's tests: a double of our own seam
(gateway.exchange.service.LocalService; the node's is gateway.exchange.local_service).

It is honest where the web layer depends on it: submitted documents go through the real
conversion, schema validation and content rules (gateway.xml, gateway.rules), so a
DocumentRejected carries the problems the node would report; roles and purposes are enforced by
the node's own table (gateway.exchange.service.ACCESS, through access_refusal): a confidential
conversation — its list of messages as much as its documents — is read only by a
``confidential-reader`` who states a purpose, every document's content needs one, and each such
read is recorded in :attr:`reads` (CIS Art. 9.1); each PermissionDenied in :attr:`denied`.
It does not sign: the "signed XML" is the converted document's bytes, enough to check that the
API and the console return them byte-exact.

It declares the protocol as its base, so mypy (``[tool.mypy] files``) reports a method the
protocol gained and the double lacks, and tests/doubles/test_local_service.py compares every
method's signature with the protocol's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from gateway.exchange.attachments import AttachmentCheck, AttachmentCheckRefused, PartTooLarge
from gateway.exchange.conversation import DuplicateMessage, State
from gateway.exchange.conversation import Role as PartyRole
from gateway.exchange.inbound import reject
from gateway.exchange.sending import ResendRefused
from gateway.exchange.service import (
    ACCESS,
    Action,
    Actor,
    ConversationFilter,
    ConversationSummary,
    ConversationView,
    LocalService,
    MessageSummary,
    MessageView,
    NotFound,
    Page,
    PermissionDenied,
    PurposeRequired,
    SubmitResult,
    access_refusal,
    may_at_all,
)
from gateway.exchange.submission import draft_of
from gateway.model.envelope import Header
from gateway.model.problems import DocumentRejected, Problem, Severity
from gateway.rules.content import check_content
from gateway.store.attachments import AttachmentMeta
from gateway.xml.convert import json_to_xml, to_bytes
from gateway.xml.header import read_header
from gateway.xml.validate import validate

FAKE_PDF = b"%PDF-1.7\n% rendition stand-in\n%%EOF\n"
WORKING_DAYS_LEFT = 12
"""Every conversation's view says this many (the term's arithmetic is gateway.rules.clock's)."""
VERIFIED = {"indication": "TOTAL_PASSED", "signatures": []}
"""The report of a document accepted through :meth:`LocalServiceDouble.submit` or ``receive``."""


@dataclass(frozen=True)
class Stored:
    summary: MessageSummary
    header: dict[str, Any]
    body: dict[str, Any] | None
    xml: bytes
    receipt: bytes | None = None
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Read:
    """One read the node would write to its audit trail with its stated purpose."""

    actor: str
    action: str
    target: str
    purpose: str | None


class LocalServiceDouble(LocalService):
    """The seam over dicts; seeded by :meth:`add_conversation`, :meth:`add_message` (no
    validation) or :meth:`receive` / :meth:`submit` (the real conversion and rules)."""

    def __init__(self, now: datetime, tokens: dict[str, Actor] | None = None) -> None:
        self.now = now
        self.tokens = dict(tokens or {})
        self.conversations: dict[str, ConversationSummary] = {}
        self.messages: dict[str, Stored] = {}
        self.urgent: set[str] = set()
        """Conversations whose request was sent as urgent (SC Art. 5.2)."""
        self.calls: list[str] = []
        """The seam's methods called, in order."""
        self.reads: list[Read] = []
        self.denied: list[tuple[str, str]] = []
        self.submitted: list[dict[str, Any]] = []
        self.uploads: dict[str, tuple[AttachmentMeta, bytes]] = {}
        """Uploads not sent yet, by id; a submission that names them moves them to
        :attr:`sent_uploads`."""
        self.sent_uploads: dict[str, tuple[AttachmentMeta, bytes]] = {}
        self.received_files: dict[tuple[str, int], tuple[AttachmentMeta, bytes]] = {}
        """The files beside received messages, by message id and number (seeded by tests)."""
        self.upload_limit = 2 * 1024**3

    # --- the seam -----------------------------------------------------------------------------

    async def authenticate_token(self, token: str) -> Actor | None:
        return self.tokens.get(token)

    async def submit(
        self, document: dict[str, Any], *, actor: Actor, idempotency_key: str | None = None
    ) -> SubmitResult:
        self.calls.append("submit")
        self._need(actor, Action.SUBMIT)
        listed = self._listed_uploads(document)
        signed = {"header": {**document["header"], **listed}, "body": document.get("body")}
        stored, warnings = self._accept(signed, direction="out", receipt=None)
        self.submitted.append(document)
        for attachment_id in draft_of(document).attachment_ids:
            self.sent_uploads[attachment_id] = self.uploads.pop(attachment_id)
        return SubmitResult(
            stored.summary.message_id,
            stored.summary.conversation_id,
            self.conversations[stored.summary.conversation_id].state,
            tuple(w.to_json() for w in warnings),
        )

    async def upload_attachment(
        self, meta: AttachmentMeta, chunks: AsyncIterator[bytes], *, actor: Actor
    ) -> dict[str, Any]:
        """Kept in memory (a double's files are small), up to :attr:`upload_limit`."""
        self.calls.append("upload_attachment")
        self._need(actor, Action.SUBMIT)
        content = bytearray()
        async for chunk in chunks:
            content += chunk
            if len(content) > self.upload_limit:
                raise PartTooLarge(self.upload_limit)
        attachment_id = str(uuid.uuid4())
        self.uploads[attachment_id] = (meta, bytes(content))
        digest = hashlib.sha256(content).hexdigest()
        return {"attachment_id": attachment_id, "size": len(content), "sha256": digest}

    async def return_attachment(
        self, message_id: str, number: int, *, actor: Actor, purpose: str | None
    ) -> dict[str, Any]:
        """A seeded received file copied into :attr:`uploads` (access as reading the message)."""
        self.calls.append("return_attachment")
        self._need(actor, Action.SUBMIT)
        self._readable(message_id, actor, purpose, "attachment")
        if (message_id, number) not in self.received_files:
            raise NotFound(f"attachment {number} of message {message_id}")
        meta, content = self.received_files[message_id, number]
        attachment_id = str(uuid.uuid4())
        self.uploads[attachment_id] = (meta, content)
        digest = hashlib.sha256(content).hexdigest()
        return {"attachment_id": attachment_id, "size": len(content), "sha256": digest}

    async def discard_upload(self, attachment_id: str, *, actor: Actor) -> None:
        self.calls.append("discard_upload")
        self._need(actor, Action.SUBMIT)
        self.uploads.pop(attachment_id, None)

    def _listed_uploads(self, document: dict[str, Any]) -> dict[str, Any]:
        """The signed header's list of the uploads a submission names, as the node writes it
        (so the schema and the language rule judge it); unknown ids refused as the node does."""
        items = []
        for said in draft_of(document).attachments:
            if said.attachment_id not in self.uploads:
                raise reject("ATTACHMENT_UNKNOWN", "Вложение не найдено.", "no such upload", "")
            meta, content = self.uploads[said.attachment_id]
            item: dict[str, Any] = {"Name": meta.name, "Title": said.title}
            item["MediaType"] = meta.media_type
            item |= {"Language": meta.language, "TranslationOf": said.translation_of}
            item |= {"RegisterExtract": said.register_extract or None, "Size": len(content)}
            item["Sha256"] = hashlib.sha256(content).hexdigest()
            items.append({k: v for k, v in item.items() if v is not None})
        return {"Attachments": {"Attachment": items}} if items else {}

    async def resend(
        self, message_id: str, document: dict[str, Any] | None, *, actor: Actor
    ) -> SubmitResult:
        """Refused: the double records no delivery outcome (resending is tested on a running
        node, tests/web/api/test_local_api_resend.py)."""
        self.calls.append("resend")
        self._need(actor, Action.SUBMIT)
        raise ResendRefused(
            "NOT_RESENDABLE",
            f"message {message_id} was not refused for good",
            f"Сообщение {message_id} не отклонено окончательно.",
        )

    async def list_conversations(
        self, filters: ConversationFilter, *, after: str | None, limit: int, actor: Actor
    ) -> Page:
        self.calls.append("list_conversations")
        self._need(actor, Action.LIST_CONVERSATIONS)
        items = sorted(
            (c for c in self.conversations.values() if _matches(c, filters)),
            key=lambda c: (c.opened_at, c.conversation_id),
            reverse=True,
        )
        if after is not None:
            opened, conversation_id = json.loads(base64.urlsafe_b64decode(after))
            key = (datetime.fromisoformat(opened), conversation_id)
            items = [c for c in items if (c.opened_at, c.conversation_id) < key]
        page = tuple(items[:limit])
        next_cursor = None
        if len(items) > limit:
            last = page[-1]
            raw = json.dumps([last.opened_at.isoformat(), last.conversation_id]).encode()
            next_cursor = base64.urlsafe_b64encode(raw).decode()
        return Page(page, next_cursor)

    async def conversation(
        self, conversation_id: str, *, actor: Actor, purpose: str | None
    ) -> ConversationView:
        self.calls.append("conversation")
        if not may_at_all(actor, Action.READ_CONVERSATION):
            self._need(actor, Action.READ_CONVERSATION)
        summary = self.conversations.get(conversation_id)
        if summary is None:
            raise NotFound(conversation_id)
        self._may_read(
            actor,
            summary.confidential,
            purpose,
            "conversation",
            conversation_id,
            Action.READ_CONVERSATION,
        )
        messages = sorted(
            (
                m.summary
                for m in self.messages.values()
                if m.summary.conversation_id == conversation_id
            ),
            key=lambda m: m.created,
        )
        summary = replace(summary, urgent=conversation_id in self.urgent)
        return ConversationView(summary, tuple(messages), working_days_left=WORKING_DAYS_LEFT)

    async def message(self, message_id: str, *, actor: Actor, purpose: str | None) -> MessageView:
        self.calls.append("message")
        stored = self._readable(message_id, actor, purpose, "message")
        receipt = {"present": True} if stored.receipt else None
        return MessageView(stored.summary, stored.header, stored.body, stored.report, receipt)

    async def reverify(
        self, message_id: str, *, actor: Actor, purpose: str | None
    ) -> dict[str, Any]:
        """The recorded report becomes the message's (as the node does)."""
        self.calls.append("reverify")
        stored = self._readable(message_id, actor, purpose, "reverify")
        report = {
            "indication": "TOTAL_PASSED",
            "signatures": [
                {"role": "seal", "indication": "TOTAL_PASSED", "sub_indication": None},
                {
                    "role": "official",
                    "indication": "TOTAL_PASSED",
                    "sub_indication": None,
                    "existence_evidence": "the peer's receipt R-1 sealed by KZ-MJ",
                },
            ],
            "recorded_at": "2027-03-01T09:30:00+00:00",
            "recorded_for": "reverify",
        }
        self.messages[message_id] = replace(stored, report=report)
        return report

    async def verify_attachment(
        self, message_id: str, number: int, *, actor: Actor, purpose: str | None
    ) -> AttachmentCheck:
        """Refused as not a PDF: the double stores no files (verifying real PDF attachments is
        tested on running nodes, tests/integration/test_attachments.py)."""
        self.calls.append("verify_attachment")
        self._readable(message_id, actor, purpose, "verify_attachment")
        raise AttachmentCheckRefused(
            AttachmentCheckRefused.NOT_PDF,
            f"attachment {number} of message {message_id} is not a PDF",
            f"Вложение {number} сообщения {message_id} — не PDF.",
        )

    async def message_xml(self, message_id: str, *, actor: Actor, purpose: str | None) -> bytes:
        self.calls.append("message_xml")
        return self._readable(message_id, actor, purpose, "xml").xml

    async def message_pdf(self, message_id: str, *, actor: Actor, purpose: str | None) -> bytes:
        self.calls.append("message_pdf")
        self._readable(message_id, actor, purpose, "pdf")
        return FAKE_PDF

    async def receipt_xml(
        self, message_id: str, *, actor: Actor, purpose: str | None = None
    ) -> bytes:
        self.calls.append("receipt_xml")
        stored = self._readable(message_id, actor, purpose, "receipt")
        if stored.receipt is None:
            raise NotFound(message_id)
        return stored.receipt

    async def counts_by_state(self, *, actor: Actor) -> dict[str, int]:
        self.calls.append("counts_by_state")
        self._need(actor, Action.COUNT_CONVERSATIONS)
        counts: dict[str, int] = {}
        for c in self.conversations.values():
            counts[c.state] = counts.get(c.state, 0) + 1
        return counts

    async def conversations_due(
        self, states: tuple[str, ...], *, due_by: date, limit: int, actor: Actor
    ) -> tuple[ConversationSummary, ...]:
        self.calls.append("conversations_due")
        self._need(actor, Action.LIST_CONVERSATIONS)
        due = sorted(
            (
                c
                for c in self.conversations.values()
                if c.state in states and c.deadline is not None and c.deadline <= due_by
            ),
            key=lambda c: (c.deadline or due_by, c.opened_at, c.conversation_id),
        )
        return tuple(due[:limit])

    async def originals(
        self, conversation_id: str, *, actor: Actor, purpose: str | None = None
    ) -> list[dict[str, Any]]:
        """None listed: the originals by post are tested against a real node
        (tests/integration/test_originals_by_post.py, tests/app/test_case_surfaces.py)."""
        self.calls.append("originals")
        self._need(actor, Action.RECORD_ORIGINAL)
        return []

    async def expiring_keys(self, *, actor: Actor) -> list[dict[str, Any]]:
        self.calls.append("expiring_keys")
        self._need(actor, Action.READ_KEY_EXPIRY)
        return []

    # --- seeding ------------------------------------------------------------------------------

    def receive(self, document: dict[str, Any], receipt: bytes) -> Stored:
        """Store ``document`` as received from a peer, with our receipt for it (validated)."""
        stored, _ = self._accept(document, direction="in", receipt=receipt)
        return stored

    def add_conversation(self, summary: ConversationSummary) -> None:
        self.conversations[summary.conversation_id] = summary

    def add_message(
        self,
        document: dict[str, Any],
        *,
        direction: str,
        delivery_state: str | None = None,
        verification: str = "TOTAL_PASSED",
        receipt: bytes | None = None,
    ) -> MessageSummary:
        """Store a document (JSON form) as received or sent; no validation, no report (its
        "XML" is the JSON's bytes)."""
        header = document["header"]
        summary = MessageSummary(
            message_id=header["MessageId"],
            conversation_id=header["ConversationId"],
            in_reply_to=header.get("InReplyTo"),
            direction=direction,
            kind=header["Kind"],
            sender=header["Sender"],
            recipient=header["Recipient"],
            created=datetime.fromisoformat(header["Created"]),
            stored_at=self.now,
            confidential=bool(header["Confidential"]),
            document_sha256="ab" * 32,
            delivery_state=delivery_state,
            verification=verification,
        )
        xml = json.dumps(document, ensure_ascii=False).encode()
        self.messages[summary.message_id] = Stored(summary, header, document["body"], xml, receipt)
        return summary

    # --- inside -------------------------------------------------------------------------------

    def _accept(
        self, document: dict[str, Any], *, direction: str, receipt: bytes | None
    ) -> tuple[Stored, list[Problem]]:
        """The real conversion and rules; a new conversation for an opening document, NotFound
        for a reply in a conversation not held; a Refusal refuses its conversation."""
        root = json_to_xml(document)
        problems = validate(root)
        if problems:
            raise DocumentRejected(problems)
        header = read_header(root)
        found = check_content(root, header)
        errors = [p for p in found if p.severity == Severity.ERROR]
        if errors:
            raise DocumentRejected(errors)
        if header.message_id in self.messages:
            raise DuplicateMessage(
                State.SUBMITTED, header.kind, PartyRole.REQUESTING, "message id already applied"
            )
        if header.conversation_id not in self.conversations and header.in_reply_to is not None:
            raise NotFound(header.conversation_id)
        summary = MessageSummary(
            message_id=header.message_id,
            conversation_id=header.conversation_id,
            in_reply_to=header.in_reply_to,
            direction=direction,
            kind=header.kind,
            sender=header.sender,
            recipient=header.recipient,
            created=header.created,
            stored_at=self.now,
            confidential=header.confidential,
            document_sha256="0" * 64,
            delivery_state="pending" if direction == "out" else None,
            verification="TOTAL_PASSED",
        )
        stored = Stored(
            summary, document["header"], document["body"], to_bytes(root), receipt, dict(VERIFIED)
        )
        self.messages[header.message_id] = stored
        self._update_conversation(header)
        return stored, [p for p in found if p.severity == Severity.WARNING]

    def _update_conversation(self, header: Header) -> None:
        existing = self.conversations.get(header.conversation_id)
        if existing is None:
            self.conversations[header.conversation_id] = ConversationSummary(
                conversation_id=header.conversation_id,
                agreement=header.agreement,
                requesting_party=header.sender,
                requested_party=header.recipient,
                opening_kind=header.kind,
                last_kind=header.kind,
                state=State.SUBMITTED.value,
                confidential=header.confidential,
                deadline=self.now.date() + timedelta(days=30),
                opened_at=self.now,
                updated_at=self.now,
            )
            return
        self.conversations[header.conversation_id] = replace(
            existing,
            state="refused" if header.kind == "Refusal" else existing.state,
            last_kind=header.kind,
            confidential=existing.confidential or header.confidential,
            updated_at=self.now,
        )

    def _refuse(self, actor: Actor, refusal: PermissionDenied | PurposeRequired) -> None:
        if isinstance(refusal, PermissionDenied):
            self.denied.append((actor.name, refusal.what))
        raise refusal

    def _need(self, actor: Actor, action: Action) -> None:
        refusal = access_refusal(actor, action)
        if refusal is not None:
            self._refuse(actor, refusal)

    def _readable(self, message_id: str, actor: Actor, purpose: str | None, what: str) -> Stored:
        if not may_at_all(actor, Action.READ_DOCUMENT):
            self._need(actor, Action.READ_DOCUMENT)
        stored = self.messages.get(message_id)
        if stored is None:
            raise NotFound(message_id)
        conversation = self.conversations.get(stored.summary.conversation_id)
        confidential = stored.summary.confidential or bool(
            conversation and conversation.confidential
        )
        self._may_read(actor, confidential, purpose, what, message_id, Action.READ_DOCUMENT)
        return stored

    def _may_read(
        self,
        actor: Actor,
        confidential: bool,
        purpose: str | None,
        what: str,
        target: str,
        action: Action,
    ) -> None:
        refusal = access_refusal(actor, action, confidential=confidential, purpose=purpose)
        if refusal is not None:
            self._refuse(actor, refusal)
        if ACCESS[action].needs_purpose(confidential):
            self.reads.append(Read(actor.name, what, target, purpose))


def _matches(c: ConversationSummary, f: ConversationFilter) -> bool:
    return (
        (f.agreement is None or c.agreement == f.agreement)
        and (f.body is None or f.body in {c.requesting_party, c.requested_party})
        and (f.state is None or c.state == f.state)
        and (f.kind is None or c.opening_kind == f.kind)
        and (
            f.deadline_before is None or (c.deadline is not None and c.deadline < f.deadline_before)
        )
        and (f.confidential is None or c.confidential == f.confidential)
    )


_PROTOCOL_COMPLETE: type[LocalService] = LocalServiceDouble
"""mypy refuses an abstract class here: a protocol method the double lacks fails the check."""

"""An in-memory LocalService for the local API's tests: a test double of our own seam.

It is honest where the HTTP mapping depends on it: documents go through the real conversion,
schema validation and content rules (gateway.xml, gateway.rules), so a 422 carries the real
problems; roles and purposes are enforced by the node's own table
(gateway.exchange.service.ACCESS, through access_refusal), each confidential read recorded with
its stated purpose (CIS Art. 9.1). It does not sign: the "signed" XML is the
converted document's bytes, which is enough to check that the API returns them byte-exact.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from gateway.exchange.conversation import DuplicateMessage, State
from gateway.exchange.conversation import Role as PartyRole
from gateway.exchange.service import (
    ACCESS,
    Action,
    Actor,
    ConversationFilter,
    ConversationSummary,
    ConversationView,
    MessageSummary,
    MessageView,
    NotFound,
    Page,
    SubmitResult,
    access_refusal,
    may_at_all,
)
from gateway.model.problems import DocumentRejected, Severity
from gateway.rules.content import check_content
from gateway.xml.convert import json_to_xml, to_bytes
from gateway.xml.header import read_header
from gateway.xml.validate import validate

FAKE_PDF = b"%PDF-1.7\n% rendition stand-in\n%%EOF\n"


@dataclass(frozen=True)
class Stored:
    summary: MessageSummary
    header: dict[str, Any]
    body: dict[str, Any]
    xml: bytes
    receipt: bytes | None
    report: dict[str, Any]


@dataclass(frozen=True)
class Read:
    """One entry of the double's audit trail."""

    actor: str
    action: str
    target: str
    purpose: str | None


class InMemoryService:
    """Implements gateway.exchange.service.LocalService over dicts."""

    def __init__(self, tokens: dict[str, Actor], now: datetime) -> None:
        self.tokens = dict(tokens)
        self.now = now
        self.conversations: dict[str, ConversationSummary] = {}
        self.messages: dict[str, Stored] = {}
        self.audit: list[Read] = []

    # --- the seam -----------------------------------------------------------------------------

    async def authenticate_token(self, token: str) -> Actor | None:
        return self.tokens.get(token)

    async def submit(
        self, document: dict[str, Any], *, actor: Actor, idempotency_key: str | None = None
    ) -> SubmitResult:
        _need(actor, Action.SUBMIT)
        stored, warnings = self._accept(document, direction="out", receipt=None)
        return SubmitResult(
            message_id=stored.summary.message_id,
            conversation_id=stored.summary.conversation_id,
            state=self.conversations[stored.summary.conversation_id].state,
            warnings=tuple(w.to_json() for w in warnings),
        )

    async def list_conversations(
        self, filters: ConversationFilter, *, after: str | None, limit: int, actor: Actor
    ) -> Page:
        _need(actor, Action.LIST_CONVERSATIONS)
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
        if not may_at_all(actor, Action.READ_CONVERSATION):
            _need(actor, Action.READ_CONVERSATION)
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
        messages = tuple(
            m.summary
            for m in self.messages.values()
            if m.summary.conversation_id == conversation_id
        )
        return ConversationView(summary, messages, working_days_left=12)

    async def message(self, message_id: str, *, actor: Actor, purpose: str | None) -> MessageView:
        stored = self._readable(message_id, actor, purpose, "message")
        receipt = {"present": True} if stored.receipt else None
        return MessageView(stored.summary, stored.header, stored.body, stored.report, receipt)

    async def message_xml(self, message_id: str, *, actor: Actor, purpose: str | None) -> bytes:
        return self._readable(message_id, actor, purpose, "xml").xml

    async def message_pdf(self, message_id: str, *, actor: Actor, purpose: str | None) -> bytes:
        self._readable(message_id, actor, purpose, "pdf")
        return FAKE_PDF

    async def receipt_xml(
        self, message_id: str, *, actor: Actor, purpose: str | None = None
    ) -> bytes:
        stored = self._readable(message_id, actor, purpose, "receipt")
        if stored.receipt is None:
            raise NotFound(message_id)
        return stored.receipt

    async def disclose(
        self, message_id: str, *, recipient: str, category: str, purpose: str, actor: Actor
    ) -> dict[str, Any]:
        _need(actor, Action.DISCLOSE)
        raise NotFound(f"message {message_id}")

    async def expiring_keys(self, *, actor: Actor) -> list[dict[str, Any]]:
        _need(actor, Action.READ_KEY_EXPIRY)
        return []

    async def counts_by_state(self, *, actor: Actor) -> dict[str, int]:
        _need(actor, Action.COUNT_CONVERSATIONS)
        counts: dict[str, int] = {}
        for c in self.conversations.values():
            counts[c.state] = counts.get(c.state, 0) + 1
        return counts

    # --- seeding ------------------------------------------------------------------------------

    def receive(self, document: dict[str, Any], receipt: bytes) -> Stored:
        """Store ``document`` as received from a peer, with our receipt for it."""
        stored, _ = self._accept(document, direction="in", receipt=receipt)
        return stored

    # --- inside -------------------------------------------------------------------------------

    def _accept(
        self, document: dict[str, Any], *, direction: str, receipt: bytes | None
    ) -> tuple[Stored, list[Any]]:
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
        xml = to_bytes(root)
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
            summary,
            document["header"],
            document["body"],
            xml,
            receipt,
            {"indication": "TOTAL_PASSED", "signatures": []},
        )
        self.messages[header.message_id] = stored
        self._update_conversation(header)
        return stored, [p for p in found if p.severity == Severity.WARNING]

    def _update_conversation(self, header: Any) -> None:
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
        else:
            self.conversations[header.conversation_id] = replace(
                existing,
                last_kind=header.kind,
                confidential=existing.confidential or header.confidential,
                updated_at=self.now,
            )

    def _readable(self, message_id: str, actor: Actor, purpose: str | None, action: str) -> Stored:
        if not may_at_all(actor, Action.READ_DOCUMENT):
            _need(actor, Action.READ_DOCUMENT)
        stored = self.messages.get(message_id)
        if stored is None:
            raise NotFound(message_id)
        confidential = (
            stored.summary.confidential
            or self.conversations[stored.summary.conversation_id].confidential
        )
        self._may_read(actor, confidential, purpose, action, message_id, Action.READ_DOCUMENT)
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
            raise refusal
        if ACCESS[action].needs_purpose(confidential):
            self.audit.append(Read(actor.name, what, target, purpose))


def _need(actor: Actor, action: Action) -> None:
    refusal = access_refusal(actor, action)
    if refusal is not None:
        raise refusal


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

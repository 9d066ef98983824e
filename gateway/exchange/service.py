"""What the local side (API, console, CLI) may ask of a node: the seam between web and exchange.

The node implements :class:`LocalService`; the local API and the console call only this. Views
are plain frozen dataclasses, so the web layer never touches the store or the crypto directly.

Roles (issue "Confidentiality"): ``operator`` works conversations; ``confidential-reader`` may
read confidential documents (each read recorded with its stated purpose, CIS Art. 9.1);
``administrator`` manages keys, directory, users, holds; ``auditor`` reads the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol

from gateway.model.problems import GatewayError


class Role(StrEnum):
    OPERATOR = "operator"
    CONFIDENTIAL_READER = "confidential-reader"
    ADMINISTRATOR = "administrator"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks: a user of the console or a token of the case system."""

    name: str
    roles: frozenset[Role]

    def has(self, role: Role) -> bool:
        return role in self.roles


class NotFound(GatewayError):
    """No such conversation or message (or the actor may not know it exists)."""


class PermissionDenied(GatewayError):
    """The actor lacks a role; the message names the role needed. Always audited."""

    def __init__(self, needed: Role, what: str) -> None:
        self.needed = needed
        super().__init__(f"{what} needs the role {needed}")


class InvalidCursor(GatewayError):
    """The ``after`` cursor is not one of ours; start again from the first page."""


class PurposeRequired(GatewayError):
    """Reading a confidential document needs a stated purpose (CIS Art. 9.1)."""


@dataclass(frozen=True, slots=True)
class SubmitResult:
    message_id: str
    conversation_id: str
    state: str
    """The conversation's state after the message was accepted for sending."""
    warnings: tuple[dict[str, str], ...] = ()
    """Problems of severity warning (e.g. the Kazakh reservation on Art. 6 a)), as JSON."""


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    agreement: str | None = None
    body: str | None = None
    """Either party's body id."""
    state: str | None = None
    kind: str | None = None
    """The opening kind."""
    deadline_before: date | None = None
    confidential: bool | None = None


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    conversation_id: str
    agreement: str
    requesting_party: str
    requested_party: str
    opening_kind: str
    last_kind: str
    state: str
    confidential: bool
    deadline: date | None
    opened_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[ConversationSummary, ...]
    next_cursor: str | None
    """Opaque keyset cursor for the next page; None on the last page."""


@dataclass(frozen=True, slots=True)
class MessageSummary:
    message_id: str
    conversation_id: str
    in_reply_to: str | None
    direction: str
    """``in`` (received) or ``out`` (sent)."""
    kind: str
    sender: str
    recipient: str
    created: datetime
    stored_at: datetime
    confidential: bool
    document_sha256: str
    delivery_state: str | None
    """For sent messages: ``pending``, ``delivered``, ``failed``; None for received ones."""
    verification: str | None
    """The ETSI indication recorded for the document's signatures (at receipt, or at the last
    explicit re-verification); None for a document this node signed and sent."""
    purged: bool = False


@dataclass(frozen=True, slots=True)
class ConversationView:
    summary: ConversationSummary
    messages: tuple[MessageSummary, ...]
    working_days_left: int | None = None


@dataclass(frozen=True, slots=True)
class MessageView:
    summary: MessageSummary
    header: dict[str, Any]
    body: dict[str, Any] | None
    """The body as JSON (mirrors the XSD); None when purged."""
    report: dict[str, Any] = field(default_factory=dict)
    receipt: dict[str, Any] | None = None
    delivery_attempts: tuple[dict[str, Any], ...] = ()


class LocalService(Protocol):
    """Implemented by the node; called by the local API, the console and the CLI."""

    async def authenticate_token(self, token: str) -> Actor | None: ...

    async def submit(self, document: dict[str, Any], *, actor: Actor) -> SubmitResult:
        """Convert (JSON mirrors the XSD), validate, apply the rules, sign, store and queue."""
        ...

    async def list_conversations(
        self, filters: ConversationFilter, *, after: str | None, limit: int, actor: Actor
    ) -> Page: ...

    async def conversation(
        self, conversation_id: str, *, actor: Actor, purpose: str | None
    ) -> ConversationView: ...

    async def message(self, message_id: str, *, actor: Actor, purpose: str | None) -> MessageView:
        """Raises PurposeRequired / PermissionDenied for confidential documents as needed."""
        ...

    async def message_xml(self, message_id: str, *, actor: Actor, purpose: str | None) -> bytes:
        """The signed document exactly as it went on the wire."""
        ...

    async def message_pdf(self, message_id: str, *, actor: Actor, purpose: str | None) -> bytes:
        """The signed PDF rendition (PAdES, body's seal)."""
        ...

    async def receipt_xml(self, message_id: str, *, actor: Actor) -> bytes: ...

    async def counts_by_state(self, *, actor: Actor) -> dict[str, int]: ...

    async def disclose(
        self, message_id: str, *, recipient: str, category: str, purpose: str, actor: Actor
    ) -> dict[str, Any]:
        """Disclose a document as the agreements allow (CIS Art. 9.2–9.3; SC Art. 8.2), or raise
        ``DisclosureRefused`` naming the article; needs confidential-reader; recorded."""
        ...

    async def expiring_keys(self, *, actor: Actor) -> list[dict[str, Any]]:
        """Keys in use whose certificates end within 30 days (administrator or auditor)."""
        ...

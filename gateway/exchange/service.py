"""What the local side (API, console, CLI) may ask of a node: the seam between web and exchange.

The node implements :class:`LocalService`; the local API and the console call this, and the use
cases of :mod:`gateway.app` for the acts every surface shares with the command line (holds,
tokens, users, keys; a proceeding closed, an original's marks, a disclosure). Views are plain
frozen dataclasses, so the web layer never touches the store or the crypto directly.

Roles (issue "Confidentiality"): ``operator`` works conversations; ``confidential-reader`` may
read confidential documents (each read recorded with its stated purpose, CIS Art. 9.1);
``administrator`` manages keys, directory, users, holds; ``auditor`` reads the audit trail.

Who may do what is one table, :data:`ACCESS` (action -> roles; for a confidential subject the
roles that may read it, a stated purpose being required). The node
(:class:`gateway.exchange.local_service.LocalNodeService`) and the application layer enforce it
with :func:`access_refusal` and :func:`raise_refusal`; the console asks :func:`may` to decide
what to offer; the local API's route table names each route's action, and
``docs/local-api.md``'s role table is generated from both (``gateway.web.local_api.roles_table``,
checked by a test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from gateway.model.problems import GatewayError
from gateway.store import Store, audit
from gateway.store.attachments import AttachmentMeta
from gateway.store.conversations import ConversationFilter

__all__ = ["ConversationFilter"]  # the list's filter is the store's: one class from API to SQL

if TYPE_CHECKING:
    from gateway.exchange.attachments import AttachmentCheck


ACTOR_CHARS = 64
"""The audit trail's actor column holds a code of at most 64 characters."""


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

    @property
    def code(self) -> str:
        """The name as the audit trail records it (at most :data:`ACTOR_CHARS` characters)."""
        return self.name[:ACTOR_CHARS]


class NotFound(GatewayError):
    """No such conversation or message (or the actor may not know it exists)."""


class PermissionDenied(GatewayError):
    """The actor lacks a role; the message names the role needed. Always audited."""

    def __init__(self, needed: Role, what: str) -> None:
        self.needed = needed
        self.what = what
        super().__init__(f"{what} needs the role {needed}")


class InvalidCursor(GatewayError):
    """The ``after`` cursor is not one of ours; start again from the first page."""


class IdempotencyKeyReused(GatewayError):
    """The submission's ``Idempotency-Key`` was given, within its time, to a different body:
    nothing is stored (a new document needs a new key)."""


class PurposeRequired(GatewayError):
    """Reading a document's content, or a confidential conversation, needs a stated purpose
    (CIS Art. 9.1)."""


class Action(StrEnum):
    """What an actor asks to do; :data:`ACCESS` says who may."""

    SUBMIT = "submit"
    """Submit a document (the API's POST /messages, the console's forms)."""
    LIST_CONVERSATIONS = "list-conversations"
    COUNT_CONVERSATIONS = "count-conversations"
    READ_CONVERSATION = "read-conversation"
    """One conversation with its messages' kinds, times, parties and digests."""
    READ_DOCUMENT = "read-document"
    """A message's fields, its signed XML, PDF, verification report or receipt."""
    DISCLOSE = "disclose"
    CLOSE_PROCEEDING = "close-proceeding"
    """Mark a conversation's proceeding closed: its retention clock starts (CIS Art. 9.6)."""
    RECORD_ORIGINAL = "record-original"
    """Mark a document's original sent by post (with its tracking number) or received (CIS
    Art. 10 para. 1)."""
    READ_KEY_EXPIRY = "read-key-expiry"
    OPEN_ADMINISTRATION = "open-administration"
    """The console's administration index."""
    READ_CONFIGURATION = "read-configuration"
    """The console's key, directory, retention and legal-hold pages."""
    READ_AUDIT = "read-audit"
    """The console's audit trail page and its chain verification."""
    LIST_HOLDS = "list-holds"
    """Legal holds on purging (CIS Art. 9.6): the API's GET /holds, the console's holds page,
    ``gateway holds list``."""
    MANAGE_HOLDS = "manage-holds"
    """Place or release a legal hold (gateway.app.admin)."""
    MANAGE_TOKENS = "manage-tokens"
    """Add, list or revoke the local API's tokens (gateway.app.admin)."""
    MANAGE_KEYS = "manage-keys"
    """Rotate, activate, revoke or publish a key generation; rotate a KEK, re-wrap, destroy
    (gateway.app.keys; gateway.app.acts says which surface offers which)."""
    MANAGE_USERS = "manage-users"
    """Add, disable or list the console's users (gateway.app.users)."""
    IMPORT_DIRECTORY = "import-directory"
    """Install a new signed directory of bodies (gateway.app.directory)."""
    RUN_PURGE = "run-purge"
    """Run the retention purge now, besides its nightly run (gateway.app.purge)."""


@dataclass(frozen=True, slots=True)
class Access:
    """Who may take one action."""

    roles: tuple[Role, ...]
    """Any one of these allows it; the first is the role a refusal names."""
    confidential: tuple[Role, ...] | None = None
    """When the subject is confidential (CIS Art. 16; SC Art. 8): these roles instead, and
    only with a stated purpose (CIS Art. 9.1), each read audited. None: confidentiality does
    not change who may."""
    what: str = ""
    """The action in words, for refusals and the audit trail."""
    purpose_always: bool = False
    """True: a stated purpose is needed whatever the subject's confidentiality (CIS Art. 9.1:
    information is used only for the purposes it was provided for; every document is personal
    data). False: only a confidential subject needs one."""

    @property
    def purpose_for_confidential(self) -> bool:
        return self.confidential is not None

    def needs_purpose(self, confidential: bool) -> bool:
        return self.purpose_always or (confidential and self.purpose_for_confidential)


ACCESS: Mapping[Action, Access] = MappingProxyType(
    {
        Action.SUBMIT: Access((Role.OPERATOR,), what="submitting a document"),
        Action.LIST_CONVERSATIONS: Access((Role.OPERATOR,), what="listing conversations"),
        Action.COUNT_CONVERSATIONS: Access((Role.OPERATOR,), what="counting conversations"),
        Action.READ_CONVERSATION: Access(
            (Role.OPERATOR,), (Role.CONFIDENTIAL_READER,), "reading a conversation"
        ),
        Action.READ_DOCUMENT: Access(
            (Role.OPERATOR,),
            (Role.CONFIDENTIAL_READER,),
            "reading a document",
            purpose_always=True,
        ),
        Action.DISCLOSE: Access((Role.CONFIDENTIAL_READER,), what="disclosing a document"),
        Action.CLOSE_PROCEEDING: Access((Role.OPERATOR,), what="marking a proceeding closed"),
        Action.RECORD_ORIGINAL: Access((Role.OPERATOR,), what="recording an original by post"),
        Action.READ_KEY_EXPIRY: Access(
            (Role.ADMINISTRATOR, Role.AUDITOR), what="reading key expiry"
        ),
        Action.OPEN_ADMINISTRATION: Access(
            (Role.ADMINISTRATOR, Role.AUDITOR), what="administration"
        ),
        Action.READ_CONFIGURATION: Access((Role.ADMINISTRATOR,), what="reading configuration"),
        Action.READ_AUDIT: Access((Role.AUDITOR,), what="reading the audit trail"),
        Action.LIST_HOLDS: Access((Role.ADMINISTRATOR,), what="listing legal holds"),
        Action.MANAGE_HOLDS: Access((Role.ADMINISTRATOR,), what="placing or releasing holds"),
        Action.MANAGE_TOKENS: Access((Role.ADMINISTRATOR,), what="managing API tokens"),
        Action.MANAGE_KEYS: Access((Role.ADMINISTRATOR,), what="managing keys"),
        Action.MANAGE_USERS: Access((Role.ADMINISTRATOR,), what="managing console users"),
        Action.IMPORT_DIRECTORY: Access((Role.ADMINISTRATOR,), what="importing the directory"),
        Action.RUN_PURGE: Access((Role.ADMINISTRATOR,), what="running the purge"),
    }
)
"""The one table of who may do what: the node enforces it, the console and the docs follow it."""


def _roles_for(action: Action, confidential: bool) -> tuple[Role, ...]:
    access = ACCESS[action]
    if confidential and access.confidential is not None:
        return access.confidential
    return access.roles


def may(actor: Actor, action: Action, *, confidential: bool = False) -> bool:
    """True when ``actor``'s roles allow ``action`` (on a confidential subject: given a
    purpose). For offering a link or a form; the node decides with :func:`access_refusal`."""
    return any(actor.has(role) for role in _roles_for(action, confidential))


def may_at_all(actor: Actor, action: Action) -> bool:
    """True when ``actor`` may take ``action`` on some subject (confidential or not): checked
    before a subject is looked up, so that whether it exists tells an outsider nothing."""
    return may(actor, action) or may(actor, action, confidential=True)


def access_refusal(
    actor: Actor, action: Action, *, confidential: bool = False, purpose: str | None = None
) -> PermissionDenied | PurposeRequired | None:
    """None when ``actor`` may take ``action`` now; else the refusal to raise with
    :func:`raise_refusal` (which audits a :class:`PermissionDenied`)."""
    access = ACCESS[action]
    roles = _roles_for(action, confidential)
    if not any(actor.has(role) for role in roles):
        what = f"{access.what} (confidential)" if confidential else access.what
        return PermissionDenied(roles[0], what)
    if access.needs_purpose(confidential) and not (purpose and purpose.strip()):
        subject = "a confidential subject" if confidential else "a document's content"
        return PurposeRequired(
            f"{access.what}: {subject} is read only for a stated purpose "
            "(CIS Art. 9.1); give it in X-Purpose"
        )
    return None


class AccessLog(Protocol):
    """Where a refused access is recorded: the node, or the application layer's context."""

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...


def raise_refusal(
    log: AccessLog, actor: Actor, refusal: PermissionDenied | PurposeRequired | None, subject: str
) -> None:
    """Raise the refusal :func:`access_refusal` gave ``actor`` (a missing role first recorded in
    ``log``'s store: ``access.denied``, in a transaction of its own); return when there is
    none. ``subject``: what was asked for (an id), or empty."""
    if refusal is None:
        return
    if isinstance(refusal, PermissionDenied):
        with log.store.transaction() as conn:
            audit.append(
                conn,
                now=log.clock(),
                actor=actor.code,
                kind="access.denied",
                subjects={"subject": subject} if subject else {},
                details={"needed": str(refusal.needed), "what": refusal.what[:64]},
            )
    raise refusal


@dataclass(frozen=True, slots=True)
class SubmitResult:
    message_id: str
    conversation_id: str
    state: str
    """The conversation's state after the message was accepted for sending."""
    warnings: tuple[dict[str, str], ...] = ()
    """Problems of severity warning (e.g. the Kazakh reservation on Art. 6 a)), as JSON."""
    replayed: bool = False
    """The answer given before to the same ``Idempotency-Key`` and body: nothing new stored.
    Not part of the answer's body (the API says it in a header)."""


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
    proceeding_closed_at: datetime | None = None
    """When the case system marked the proceeding closed (CIS Art. 9.6)."""
    urgent: bool = False
    """Its request was sent as urgent (SC Art. 5.2)."""
    case_number: str | None = None
    """The proceeding's number from the opening document (CIS); None when it has none."""
    debtor: str | None = None
    """The debtor, masked for the list (gateway.rules.listing): «Фамилия И. О.» or an
    organisation's name; None when the document names none."""
    hidden: bool = False
    """Confidential and the caller lacks confidential-reader: case number and debtor are
    withheld (CIS Art. 16; SC Art. 8.1)."""


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[ConversationSummary, ...]
    next_cursor: str | None
    """Opaque keyset cursor for the next page; None on the last page."""


@dataclass(frozen=True, slots=True)
class LateFlag:
    """An answer made after the due date with no delay notice covering it (CIS Art. 12
    para. 3; SC Art. 6.1): accepted, and flagged on both sides."""

    due: date
    answered_on: date
    """The answer's creation date in the requested party's zone."""
    days_late: int
    working_days: bool
    """The unit of ``days_late``: working days (CIS) or calendar days (SC)."""


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
    late: LateFlag | None = None
    """Set on a late answer (gateway.store.late_answers)."""


@dataclass(frozen=True, slots=True)
class ConversationView:
    summary: ConversationSummary
    messages: tuple[MessageSummary, ...]
    working_days_left: int | None = None
    """In the term's unit, from the requested party's today (gateway.rules.clock)."""
    deadline_why: str | None = None
    """Which calendar, zone and pauses fixed the due date."""

    @property
    def urgent(self) -> bool:
        """The request was sent as urgent (SC Art. 5.2): the summary's."""
        return self.summary.urgent


@dataclass(frozen=True, slots=True)
class MessageView:
    summary: MessageSummary
    header: dict[str, Any]
    body: dict[str, Any] | None
    """The body as JSON (mirrors the XSD); None when purged."""
    report: dict[str, Any] = field(default_factory=dict)
    receipt: dict[str, Any] | None = None
    delivery_attempts: tuple[dict[str, Any], ...] = ()
    tombstone: dict[str, Any] | None = None
    """For a purged message (CIS Art. 9.6): when, under which policy and in which run it was
    destroyed; the summary keeps its kind, parties, dates and SHA-256. None otherwise."""
    resent_as: str | None = None
    """The message that replaced this one after the peer refused it (a resend), if any."""
    resent_from: str | None = None
    """The refused message this one replaced, if it is a resend."""
    attachment_checks: tuple[dict[str, Any], ...] = ()
    """The latest recorded verification of each signed PDF attachment someone asked to verify:
    ``number``, ``sha256``, ``checked_at``, ``checked_by`` and either the verdict
    (``indication``, ``sub_indication``, ``signers``, ``signatures``) or ``refused`` (its
    code)."""


class LocalService(Protocol):
    """Implemented by the node; called by the local API, the console and the CLI. The acts of
    :mod:`gateway.app` (an administrator's; an operator's case acts: a proceeding closed, an
    original's marks, a disclosure) are not here: the servers call those use cases, as the
    command line does."""

    async def authenticate_token(self, token: str) -> Actor | None: ...

    async def submit(
        self, document: dict[str, Any], *, actor: Actor, idempotency_key: str | None = None
    ) -> SubmitResult:
        """Convert (JSON mirrors the XSD), validate, apply the rules, sign, store and queue.
        With ``idempotency_key`` the first answer to that key and body is given again
        (``replayed``) and nothing is stored twice; another body is IdempotencyKeyReused."""
        ...

    async def list_conversations(
        self, filters: ConversationFilter, *, after: str | None, limit: int, actor: Actor
    ) -> Page: ...

    async def conversation(
        self, conversation_id: str, *, actor: Actor, purpose: str | None
    ) -> ConversationView: ...

    async def message(self, message_id: str, *, actor: Actor, purpose: str | None) -> MessageView:
        """Raises PurposeRequired / PermissionDenied for confidential documents as needed."""

    async def resend(
        self, message_id: str, document: dict[str, Any] | None, *, actor: Actor
    ) -> SubmitResult:
        """Send a document the peer refused for good (or gave up delivering) again, as a new
        message linked to it: ``document`` corrected, or None for the same content."""
        ...

    async def reverify(
        self, message_id: str, *, actor: Actor, purpose: str | None
    ) -> dict[str, Any]:
        """Verify the stored document's signatures again now and record the result; the
        report as recorded. Same access as reading the document."""
        ...

    async def verify_attachment(
        self, message_id: str, number: int, *, actor: Actor, purpose: str | None
    ) -> AttachmentCheck:
        """Verify the signed PDF attachment ``number`` streamed from the store and record the
        verdict; ``AttachmentCheckRefused`` for a file not a PDF, unsigned or damaged. Same
        access as downloading the file."""
        ...

    async def upload_attachment(
        self, meta: AttachmentMeta, chunks: AsyncIterator[bytes], *, actor: Actor
    ) -> dict[str, Any]:
        """Stream a file into the node (hashed and encrypted as it comes): its
        ``attachment_id``, ``size`` and ``sha256``, to list in a submission's
        ``attachments``. Over the node's limit: :class:`PartTooLarge`; a broken or oversized
        upload leaves nothing."""
        ...

    async def return_attachment(
        self, message_id: str, number: int, *, actor: Actor, purpose: str | None
    ) -> dict[str, Any]:
        """A received message's file ``number`` taken in again as an upload (as
        :meth:`upload_attachment` answers), to send back with a refusal (CIS Art. 13); same
        access as downloading it. ``AttachmentDamaged`` when it does not read back as signed."""
        ...

    async def discard_upload(self, attachment_id: str, *, actor: Actor) -> None:
        """Delete an upload no submission took (a form refused after its file was streamed
        in), recorded as ``attachment.discarded`` in the same transaction; one already sent
        stays with its message, and nothing is recorded for it (nor for an id already gone)."""
        ...

    async def message_xml(self, message_id: str, *, actor: Actor, purpose: str | None) -> bytes:
        """The signed document exactly as it went on the wire."""
        ...

    async def message_pdf(self, message_id: str, *, actor: Actor, purpose: str | None) -> bytes:
        """The signed PDF rendition (PAdES, body's seal)."""
        ...

    async def receipt_xml(
        self, message_id: str, *, actor: Actor, purpose: str | None = None
    ) -> bytes:
        """Our signed receipt of a message (or the peer's of ours); in a confidential
        conversation it needs what reading the message needs."""
        ...

    async def counts_by_state(self, *, actor: Actor) -> dict[str, int]: ...

    async def conversations_due(
        self, states: tuple[str, ...], *, due_by: date, limit: int, actor: Actor
    ) -> tuple[ConversationSummary, ...]:
        """Conversations in ``states`` due on or before ``due_by``, soonest due first, across
        states (the overview's near-deadline list)."""
        ...

    async def originals(
        self, conversation_id: str, *, actor: Actor, purpose: str | None = None
    ) -> list[dict[str, Any]]:
        """The conversation's documents that have an original by post, with what is recorded
        of it (dates and tracking only: no content). A confidential conversation's needs what
        reading its list of messages needs (confidential-reader, ``purpose``; audited)."""
        ...

    async def expiring_keys(self, *, actor: Actor) -> list[dict[str, Any]]:
        """Keys in use whose certificates end within 30 days (administrator or auditor)."""
        ...

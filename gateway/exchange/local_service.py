"""The node as the local side sees it: :class:`gateway.exchange.service.LocalService`.

Every call runs the node's synchronous work in the executor (DESIGN: no blocking work on the
event loop). Roles are enforced here, once, for the API and the console alike, by the one table
:data:`gateway.exchange.service.ACCESS`:

* reading a conversation or a document needs ``operator`` — every document is personal data
  (CIS Art. 9.4);
* reading a confidential conversation (its list of messages: kinds, times, parties, digests)
  or any of its documents needs ``confidential-reader`` and a stated purpose (CIS Art. 9.1,
  16; SC Art. 8);
* reading any document's content (its fields, signed XML, PDF, receipt, a re-verification)
  needs a stated purpose, confidential or not (CIS Art. 9.1); every such read is an audit
  event with the purpose sealed in it (``gateway.store.read_purposes``);
* submitting needs ``operator``.
A refusal is itself audited.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from gateway.crypto.at_rest import DecryptionFailed
from gateway.crypto.keys.generations import expiring_keys
from gateway.crypto.keys.keystore import KeyRole
from gateway.crypto.xades import verify_envelope
from gateway.exchange import listing, machine_codec, sending
from gateway.exchange.attachments import (
    AttachmentCheck,
    AttachmentCheckRefused,
    AttachmentDamaged,
    PartTooLarge,
    StagedPart,
    append_stream,
    begin_upload,
    read_stream,
    stage_stream,
    upload_state,
    verify_pdf_in_place,
)
from gateway.exchange.existence import proof_of_existence
from gateway.exchange.node import Node
from gateway.exchange.recording import ConcurrentChange, clock_facts, record_verification
from gateway.exchange.sending import ResendRefused, opens_conversation
from gateway.exchange.service import (
    Action,
    Actor,
    ConversationFilter,
    ConversationSummary,
    ConversationView,
    IdempotencyKeyReused,
    InvalidCursor,
    LateFlag,
    MessageSummary,
    MessageView,
    NotFound,
    Page,
    Role,
    SubmitResult,
    access_refusal,
    may_at_all,
    raise_refusal,
)
from gateway.rules.clock import days_left, due_date
from gateway.store import attachments as attachment_store
from gateway.store import audit, machines, read_purposes, reports, tokens
from gateway.store import conversations as conv_store
from gateway.store import idempotency as idem_store
from gateway.store import late_answers as late_store
from gateway.store import messages as msg_store
from gateway.store import originals as originals_store
from gateway.store import outbox as outbox_store
from gateway.store import purge as purge_store
from gateway.store import receipts as receipt_store
from gateway.store import resends as resend_store
from gateway.store.attachments import AttachmentInfo, AttachmentMeta
from gateway.store.reports import ReportPurpose
from gateway.xml.convert import xml_to_json
from gateway.xml.parsing import parse_untrusted

T = TypeVar("T")

PRUNE_EVERY = timedelta(minutes=10)
"""How often a submission with an Idempotency-Key also deletes the keys past their time: one
indexed delete now and then keeps the table at a day's keys without a job of its own."""


def _request_sha256(document: dict[str, Any]) -> str:
    """The digest a key is bound to: of the document's canonical JSON (keys sorted, no
    whitespace), so the same document sent again matches whatever its formatting."""
    canonical = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class LocalNodeService:
    """Implements :class:`~gateway.exchange.service.LocalService` over a :class:`Node`."""

    def __init__(self, node: Node, executor: Executor) -> None:
        self.node = node
        self.executor = executor
        self._keys_pruned: datetime | None = None

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    # --- auth ------------------------------------------------------------------------------

    async def authenticate_token(self, token: str) -> Actor | None:
        def find() -> Actor | None:
            now = self.node.clock()
            with self.node.store.read() as conn:
                found = tokens.find(conn, token, now)
            if found is None:
                return None
            if tokens.needs_use_mark(found, now):  # the last use, to the minute
                with self.node.store.transaction() as conn:
                    tokens.mark_used(conn, found.token_id, now)
            roles = frozenset(Role(s) for s in found.scopes if s in Role._value2member_map_)
            return Actor(name=f"token:{found.label}", roles=roles)

        return await self._run(find)

    def _check(
        self,
        actor: Actor,
        action: Action,
        *,
        subject: str = "",
        confidential: bool = False,
        purpose: str | None = None,
    ) -> None:
        """Raise the refusal :data:`ACCESS` gives (a missing role audited), or return."""
        refusal = access_refusal(actor, action, confidential=confidential, purpose=purpose)
        raise_refusal(self.node, actor, refusal, subject)

    def _check_at_all(self, actor: Actor, action: Action, subject: str = "") -> None:
        """Before a subject is looked up: refuse an actor who may not take ``action`` on any
        subject, so that a 404 never tells an outsider that an id exists."""
        if not may_at_all(actor, action):
            self._check(actor, action, subject=subject)

    async def _allow(self, actor: Actor, action: Action, subject: str = "") -> None:
        await self._run(self._check, actor, action, subject=subject)

    # --- submit ----------------------------------------------------------------------------

    async def submit(
        self, document: dict[str, Any], *, actor: Actor, idempotency_key: str | None = None
    ) -> SubmitResult:
        key = None
        if idempotency_key is not None:
            key = idem_store.IdempotencyKey(actor.code, idempotency_key, _request_sha256(document))

        def submit() -> SubmitResult:
            self._check(actor, Action.SUBMIT)
            if key is not None:
                remembered = self._remembered(key)
                if remembered is not None:
                    return remembered
            try:
                submitted = sending.submit(self.node, document, actor=actor.code, idempotency=key)
            except idem_store.KeyTaken:
                # The same key's submission was stored while this one was being signed.
                remembered = self._remembered(key) if key is not None else None
                if remembered is None:
                    raise ConcurrentChange from None
                return remembered
            # The answer just stored with the key, word for word what a retry will get.
            return _submit_result(submitted.answer(), replayed=False)

        # One hand-off to the executor for the check, the submission and the read: a database
        # call must not block the event loop (DESIGN.md), and each hand-off costs a wake-up.
        return await self._run(submit)

    def _remembered(self, key: idem_store.IdempotencyKey) -> SubmitResult | None:
        """The answer kept for ``key`` (replayed), None if there is none; a kept key of another
        body is IdempotencyKeyReused. Expired keys are pruned here, at most every PRUNE_EVERY."""
        now = self.node.clock()
        self._prune_keys(now)
        with self.node.store.read() as conn:
            found = idem_store.find(conn, key, now)
        if found is None:
            return None
        if found.request_sha256 != key.request_sha256:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used for a different document within the last "
                f"{idem_store.KEY_TTL.total_seconds() / 3600:.0f} hours; nothing was stored: "
                "send a new document with a new key"
            )
        return _submit_result(found.answer, replayed=True)

    def _prune_keys(self, now: datetime) -> None:
        if self._keys_pruned is not None and now - self._keys_pruned < PRUNE_EVERY:
            return
        self._keys_pruned = now
        with self.node.store.transaction() as conn:
            idem_store.prune(conn, now)

    async def resend(
        self, message_id: str, document: dict[str, Any] | None, *, actor: Actor
    ) -> SubmitResult:
        def resend() -> SubmitResult:
            self._check(actor, Action.SUBMIT)
            source = document if document is not None else self._as_submitted(message_id)
            submitted = sending.submit(self.node, source, actor=actor.code, resending=message_id)
            return _submit_result(submitted.answer(), replayed=False)

        return await self._run(resend)

    def _as_submitted(self, message_id: str) -> dict[str, Any]:
        """A stored document of ours in the JSON a case system submits: what the node filled
        in (id, sender, creation time) left for the node to fill again. Nothing is shown."""
        try:
            with self.node.store.read() as conn:
                document = msg_store.read_document(conn, message_id, self.node.kek_ring)
                stored = msg_store.get(conn, message_id)
        except LookupError:
            raise ResendRefused(
                "NOT_RESENDABLE",
                f"message {message_id} is not stored (never sent, or purged)",
                f"Сообщение {message_id} не хранится (не отправлялось или уничтожено).",
            ) from None
        converted = xml_to_json(parse_untrusted(document), self.node.registry)
        node_fills = {"MessageId", "Sender", "Created"}
        if stored is not None and opens_conversation(stored):
            node_fills.add("ConversationId")  # its conversation was closed by the refusal
        header = {k: v for k, v in converted["header"].items() if k not in node_fills}
        return {"header": header, "body": converted["body"]}

    # --- reading -----------------------------------------------------------------------------

    async def list_conversations(
        self, filters: ConversationFilter, *, after: str | None, limit: int, actor: Actor
    ) -> Page:
        await self._allow(actor, Action.LIST_CONVERSATIONS)

        def page() -> Page:
            try:
                cursor = conv_store.Cursor.decode(after) if after else None
            except ValueError as exc:
                raise InvalidCursor(str(exc)) from None
            reader = actor.has(Role.CONFIDENTIAL_READER)
            confidential = filters.confidential
            if filters.search and not reader:
                # A hit would tell that a confidential conversation is about this debtor or
                # case (CIS Art. 16; SC Art. 8.1): a search covers only what the user may read.
                if confidential:
                    return Page(items=(), next_cursor=None)
                confidential = False
            with self.node.store.read() as conn:
                tags = None
                if filters.search:
                    tags = listing.search_tags(conn, self.node.kek_ring, filters.search)
                store_filter = replace(filters, confidential=confidential, tags=tags)
                result = conv_store.list_page(conn, store_filter, cursor, limit)
                shown = self._listings(conn, result.items, actor)
            return Page(
                items=tuple(_summary(c, shown.get(c.conversation_id)) for c in result.items),
                next_cursor=result.next_cursor.encode() if result.next_cursor else None,
            )

        return await self._run(page)

    def _listings(
        self, conn: Any, items: Iterable[conv_store.Conversation], actor: Actor
    ) -> dict[str, listing.Listing]:
        return listing.listings(
            conn,
            self.node.kek_ring,
            items,
            may_read_confidential=actor.has(Role.CONFIDENTIAL_READER),
        )

    async def conversations_due(
        self, states: tuple[str, ...], *, due_by: date, limit: int, actor: Actor
    ) -> tuple[ConversationSummary, ...]:
        await self._allow(actor, Action.LIST_CONVERSATIONS)

        def due() -> tuple[ConversationSummary, ...]:
            with self.node.store.read() as conn:
                items = conv_store.due_by(conn, states, due_by, limit)
                shown = self._listings(conn, items, actor)
            return tuple(_summary(c, shown.get(c.conversation_id)) for c in items)

        return await self._run(due)

    async def counts_by_state(self, *, actor: Actor) -> dict[str, int]:
        await self._allow(actor, Action.COUNT_CONVERSATIONS)

        def counts() -> dict[str, int]:
            with self.node.store.read() as conn:
                return dict(conv_store.count_by_state(conn))

        return await self._run(counts)

    async def originals(
        self, conversation_id: str, *, actor: Actor, purpose: str | None = None
    ) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            self._check(actor, Action.RECORD_ORIGINAL, subject=conversation_id)
            with self.node.store.read() as conn:
                stored = conv_store.get(conn, conversation_id)
            if stored is None:
                raise NotFound(f"conversation {conversation_id}")
            if stored.confidential:
                # The list names the conversation's messages (ids, kinds, times): read only as
                # its list of messages is (confidential-reader, a stated purpose, audited).
                self._check(
                    actor,
                    Action.READ_CONVERSATION,
                    subject=conversation_id,
                    confidential=True,
                    purpose=purpose,
                )
            reading = self.node.store.transaction if stored.confidential else self.node.store.read
            with reading() as conn:
                found = [
                    r.to_json() for r in originals_store.of_conversations(conn, [conversation_id])
                ]
                self._record_conversation_read(conn, actor, stored, purpose)
            return found

        return await self._run(run)

    async def expiring_keys(self, *, actor: Actor) -> list[dict[str, Any]]:
        await self._allow(actor, Action.READ_KEY_EXPIRY)

        def expiring() -> list[dict[str, Any]]:
            return [k.to_json() for k in expiring_keys(self.node.keys, self.node.clock())]

        return await self._run(expiring)

    async def conversation(
        self, conversation_id: str, *, actor: Actor, purpose: str | None
    ) -> ConversationView:
        def view() -> ConversationView:
            self._check_at_all(actor, Action.READ_CONVERSATION, conversation_id)
            with self.node.store.read() as conn:
                stored = conv_store.get(conn, conversation_id)
            if stored is None:
                raise NotFound(f"conversation {conversation_id}")
            # Its list of messages (kinds, times, parties, digests) is the conversation's
            # content too: a confidential one is shown only as a confidential document is.
            self._check(
                actor,
                Action.READ_CONVERSATION,
                subject=conversation_id,
                confidential=stored.confidential,
                purpose=purpose,
            )
            # A confidential read is recorded in the transaction that reads, as for documents.
            reading = self.node.store.transaction if stored.confidential else self.node.store.read
            with reading() as conn:
                stored_messages = msg_store.list_for_conversation(conn, conversation_id)
                facts = _SummaryFacts.read(
                    conn, conversation_id, [m.header.message_id for m in stored_messages]
                )
                purged = purge_store.tombstones_of(conn, conversation_id)
                shown = self._listings(conn, [stored], actor).get(conversation_id)
                messages = tuple(
                    sorted(
                        [
                            *(_message_summary(m, facts) for m in stored_messages),
                            *(_tombstone_summary(t) for t in purged),
                        ],
                        key=lambda summary: (summary.created, summary.message_id),
                    )
                )
                self._record_conversation_read(conn, actor, stored, purpose)
            left, why = self._deadline_facts(stored)
            return ConversationView(_summary(stored, shown), messages, left, why)

        return await self._run(view)

    def _deadline_facts(self, stored: conv_store.Conversation) -> tuple[int | None, str | None]:
        """Days left by the one legal clock (the requested party's zone, calendar and unit)
        and the line saying which calendar, zone and pauses fixed the due date."""
        if stored.deadline is None:
            return None, None
        calendars = self.node.calendars
        with self.node.store.read() as conn:
            text = machines.get(conn, stored.conversation_id)
        state = machine_codec.loads(text) if text else None
        now = self.node.clock()
        due = (
            due_date(clock_facts(state, stored.requested_party), calendars, now)
            if state is not None
            else None
        )
        # A paused term's due date moves on day by day: count from today's, not the stored one
        # (written at the conversation's last step).
        current = due.due if due is not None else stored.deadline
        left = days_left(stored.agreement, stored.requested_party, current, now, calendars)
        return left, due.why if due is not None else None

    def _read_document(
        self, message_id: str, actor: Actor, purpose: str | None
    ) -> tuple[msg_store.StoredMessage, bytes]:
        """The signed bytes, after the role and purpose checks; every read is audited."""
        self._check_at_all(actor, Action.READ_DOCUMENT, message_id)
        with self.node.store.read() as conn:
            stored = msg_store.get(conn, message_id)
            conversation = conv_store.get(conn, stored.header.conversation_id) if stored else None
        if stored is None:
            raise NotFound(f"message {message_id}")
        confidential = stored.header.confidential or bool(
            conversation and conversation.confidential
        )
        self._check(
            actor,
            Action.READ_DOCUMENT,
            subject=message_id,
            confidential=confidential,
            purpose=purpose,
        )
        with self.node.store.transaction() as conn:
            document = msg_store.read_document(conn, message_id, self.node.kek_ring)
            self._append_read(
                conn, actor, "document.read", {"message": message_id}, confidential, purpose
            )
        return stored, document

    def _record_conversation_read(
        self, conn: Any, actor: Actor, stored: conv_store.Conversation, purpose: str | None
    ) -> None:
        """A confidential conversation's list of messages was read: audited with its purpose."""
        if stored.confidential:
            self._append_read(
                conn,
                actor,
                "conversation.read",
                {"conversation": stored.conversation_id},
                True,
                purpose,
            )

    def _append_read(
        self,
        conn: Any,
        actor: Actor,
        kind: str,
        subjects: dict[str, str],
        confidential: bool,
        purpose: str | None,
    ) -> None:
        """Record a read with its stated purpose: the purpose's digest and its text sealed
        under the KEK ring inside the chained event (gateway.store.read_purposes), so an
        auditor can read it and nobody can change it unnoticed."""
        name = actor.code
        details: dict[str, str | bool] = {"confidential": confidential}
        details.update(
            read_purposes.purpose_details(
                purpose or "", self.node.kek_ring, kind=kind, actor=name, subjects=subjects
            )
        )
        audit.append(
            conn,
            now=self.node.clock(),
            actor=name,
            kind=kind,
            subjects=subjects,
            details=details,
        )

    async def message(self, message_id: str, *, actor: Actor, purpose: str | None) -> MessageView:
        def view() -> MessageView:
            try:
                stored, document = self._read_document(message_id, actor, purpose)
            except NotFound:
                return self._purged_view(message_id, actor)
            converted = xml_to_json(parse_untrusted(document), self.node.registry)
            with self.node.store.read() as conn:
                summary = _message_summary(
                    stored, _SummaryFacts.read(conn, stored.header.conversation_id, [message_id])
                )
                receipt = receipt_store.get(conn, message_id)
                attempts = _attempts(conn, message_id)
                recorded = reports.latest_report(conn, message_id, self.node.kek_ring)
                checks = (
                    tuple(
                        {"number": number, **check}
                        for number, check in attachment_store.recorded_checks(
                            conn, message_id, self.node.kek_ring
                        ).items()
                    )
                    if converted["header"].get("Attachments")
                    else ()
                )
                resent_as = resend_store.resent_as(conn, message_id)
                resent_from = resend_store.resent_from(conn, message_id)
            return MessageView(
                summary=summary,
                header=converted["header"],
                body=converted["body"],
                report=_report_view(recorded),
                attachment_checks=checks,
                receipt=(
                    {
                        "receipt_message_id": receipt.receipt_message_id,
                        "outcome": receipt.outcome.value,
                        "code": receipt.code,
                        "at": receipt.at.isoformat(),
                    }
                    if receipt
                    else None
                ),
                delivery_attempts=attempts,
                resent_as=resent_as,
                resent_from=resent_from,
            )

        return await self._run(view)

    def _purged_view(self, message_id: str, actor: Actor) -> MessageView:
        """A purged message is shown as its tombstone, never as a 404 or a gap (CIS Art. 9.6:
        what was destroyed, when and under which policy stays on record)."""
        with self.node.store.read() as conn:
            tombstone = purge_store.get_tombstone(conn, message_id)
        if tombstone is None:
            raise NotFound(f"message {message_id}")
        # A tombstone holds no personal data (kind, bodies, dates, digest): it is metadata, as
        # a conversation's list of messages is: a reader's role is enough, no purpose needed,
        # whatever the conversation's confidentiality was.
        self._check(actor, Action.READ_CONVERSATION, subject=message_id)
        return MessageView(
            summary=_tombstone_summary(tombstone),
            header={
                "MessageId": tombstone.message_id,
                "ConversationId": tombstone.conversation_id,
                "Agreement": tombstone.agreement,
                "Kind": tombstone.kind,
                "Sender": tombstone.sender,
                "Recipient": tombstone.recipient,
                "Created": tombstone.created.isoformat(),
            },
            body=None,
            tombstone={
                "purged_at": tombstone.purged_at.isoformat(),
                "policy": tombstone.policy,
                "purge_run_id": tombstone.purge_run_id,
            },
        )

    async def reverify(
        self, message_id: str, *, actor: Actor, purpose: str | None
    ) -> dict[str, Any]:
        """Verify a stored document's signatures again, now, with the trust and revocation
        lists in force now; the result is recorded beside the report of its receipt (views
        keep showing what was recorded; nothing re-verifies behind the reader's back)."""

        def run() -> dict[str, Any]:
            stored, document = self._read_document(message_id, actor, purpose)
            now = self.node.clock()
            with self.node.store.read() as conn:
                # The node's own proof that the document existed (receipt, audit
                # checkpoint): a revocation or expiry after it leaves the signatures valid.
                existence = proof_of_existence(
                    conn,
                    message_id,
                    stored.document_sha256,
                    self.node.kek_ring,
                    stored.stored_at,
                    self.node.keys.signers(KeyRole.SEAL),
                    self.node.trust,
                )
            verified = verify_envelope(
                parse_untrusted(document),
                self.node.trust,
                at=now,
                expected_sender=stored.header.sender,
                require_official=False,
                existence=existence,
            )
            with self.node.store.transaction() as conn:
                record_verification(
                    conn,
                    message_id,
                    verified.report,
                    ReportPurpose.REVERIFY,
                    now,
                    self.node.kek_ring,
                )
                audit.append(
                    conn,
                    now=now,
                    actor=actor.code,
                    kind="document.reverified",
                    subjects={"message": message_id},
                    details={"indication": str(verified.report.indication)},
                )
                recorded = reports.latest_report(conn, message_id, self.node.kek_ring)
            return _report_view(recorded)

        return await self._run(run)

    async def message_xml(self, message_id: str, *, actor: Actor, purpose: str | None) -> bytes:
        _, document = await self._run(self._read_document, message_id, actor, purpose)
        return document

    async def message_pdf(self, message_id: str, *, actor: Actor, purpose: str | None) -> bytes:
        def pdf() -> bytes:
            _, document = self._read_document(message_id, actor, purpose)
            return self.node.render(document)

        return await self._run(pdf)

    # --- attachments (docs/attachments.md) ---------------------------------------------------

    async def upload_attachment(
        self, meta: AttachmentMeta, chunks: AsyncIterator[bytes], *, actor: Actor
    ) -> dict[str, Any]:
        """Stream an upload into the store (hashed and sealed as it comes); its id, size and
        SHA-256 for the submission that sends it. A broken or oversized upload leaves nothing."""
        await self._allow(actor, Action.SUBMIT)
        limit = self.node.config.limits.max_attachment_bytes
        staged = await stage_stream(
            self.node.store,
            self.node.kek_ring,
            meta,
            chunks,
            limit=limit,
            now=self.node.clock(),
            executor=self.executor,
        )

        await self._record_upload(staged, actor)
        return {
            "attachment_id": staged.attachment_id,
            "size": staged.size,
            "sha256": staged.sha256.hex(),
        }

    async def return_attachment(
        self, message_id: str, number: int, *, actor: Actor, purpose: str | None
    ) -> dict[str, Any]:
        """The received message's file ``number`` taken in again as an upload, to travel back
        with a refusal (CIS Art. 13: the refusal goes "одновременно с возвратом документов"):
        streamed from the store into a new upload under its own key, never held whole, with
        the received file's name, type and language. Reading it is audited as downloading it
        is; the copy is recorded ``attachment.uploaded`` naming the message it came from. A
        copy whose digest differs from the signed one (the store damaged) is deleted and
        raises :class:`AttachmentDamaged`."""
        await self._allow(actor, Action.SUBMIT)
        opened = await self._run(self._open_part, message_id, number, actor, purpose)
        info = opened.info
        meta = AttachmentMeta(info.meta.name, info.meta.media_type, language=info.meta.language)
        try:
            staged = await stage_stream(
                self.node.store,
                self.node.kek_ring,
                meta,
                read_stream(self.node.store, opened, self.executor),
                limit=info.size,
                now=self.node.clock(),
                executor=self.executor,
            )
        except (DecryptionFailed, PartTooLarge):
            raise AttachmentDamaged(message_id, number) from None  # stage_stream kept nothing
        if staged.sha256 != info.sha256 or staged.size != info.size:
            await self.discard_upload(staged.attachment_id, actor=actor)
            raise AttachmentDamaged(message_id, number)
        await self._record_upload(staged, actor, came_from=message_id)
        return {
            "attachment_id": staged.attachment_id,
            "size": staged.size,
            "sha256": staged.sha256.hex(),
        }

    async def discard_upload(self, attachment_id: str, *, actor: Actor) -> None:
        """Delete the upload unless a submission took it, and record ``attachment.discarded``
        in the same transaction (by the actor who asks, as its ``attachment.uploaded``); an id
        already gone, unknown or sent with a message deletes and records nothing."""
        await self._allow(actor, Action.SUBMIT)

        def delete() -> None:
            with self.node.store.transaction() as conn:
                for deleted in attachment_store.discard(conn, [attachment_id]):
                    audit.append(
                        conn,
                        now=self.node.clock(),
                        actor=actor.code,
                        kind="attachment.discarded",
                        subjects={"attachment": deleted},
                    )

        # Shielded, as any discard: a request cancelled meanwhile still leaves no file behind.
        await asyncio.shield(self._run(delete))

    async def _record_upload(
        self, staged: StagedPart, actor: Actor, *, came_from: str | None = None
    ) -> None:
        subjects = {"attachment": staged.attachment_id}
        if came_from is not None:
            subjects["message"] = came_from  # a received file returned (CIS Art. 13)

        def record() -> None:
            with self.node.store.transaction() as conn:
                audit.append(
                    conn,
                    now=self.node.clock(),
                    actor=actor.code,
                    kind="attachment.uploaded",
                    subjects=subjects,
                    details={"size": staged.size, "sha256": staged.sha256.hex()},
                )

        await self._run(record)

    async def begin_upload(
        self, meta: AttachmentMeta, length: int, *, actor: Actor
    ) -> dict[str, Any]:
        """A resumable upload of ``length`` bytes (docs/attachments.md): its id, to send the
        file's parts to with :meth:`append_upload`. Over the node's limit: :class:`PartTooLarge`."""
        await self._allow(actor, Action.SUBMIT)
        limit = self.node.config.limits.max_attachment_bytes
        if length > limit:
            raise PartTooLarge(limit)
        state = await begin_upload(
            self.node.store,
            self.node.kek_ring,
            meta,
            length,
            now=self.node.clock(),
            executor=self.executor,
        )
        return _upload_json(state)

    async def upload_status(self, attachment_id: str, *, actor: Actor) -> dict[str, Any]:
        """Where a resumable upload stands: the next part starts at its ``offset``."""
        await self._allow(actor, Action.SUBMIT)
        try:
            state = await self._run(upload_state, self.node.store, attachment_id)
        except attachment_store.AttachmentNotFound as exc:
            raise NotFound(str(exc)) from None
        return _upload_json(state)

    async def append_upload(
        self, attachment_id: str, offset: int, chunks: AsyncIterator[bytes], *, actor: Actor
    ) -> dict[str, Any]:
        """Store a resumable upload's next part, from ``offset``; the part that reaches the
        declared length completes it (audited ``attachment.uploaded`` as a one-request upload
        is). Raises ``UploadOffsetMismatch`` (the part starts elsewhere than the stored bytes
        end, or the upload is complete) and :class:`PartTooLarge` (past the declared length)."""
        await self._allow(actor, Action.SUBMIT)
        try:
            state, staged = await append_stream(
                self.node.store,
                self.node.kek_ring,
                attachment_id,
                offset,
                chunks,
                executor=self.executor,
            )
        except attachment_store.AttachmentNotFound as exc:
            raise NotFound(str(exc)) from None
        if staged is not None:
            await self._record_upload(staged, actor)
        return _upload_json(state)

    async def open_attachment(
        self, message_id: str, number: int, *, actor: Actor, purpose: str | None
    ) -> tuple[AttachmentInfo, Callable[[int], AsyncGenerator[bytes, None]]]:
        """The message's attachment ``number`` (1-based, the signed list's order) and what
        streams its bytes from a given offset (0: the whole file; more: a download resumed);
        same access and audit as reading the document itself."""

        opened = await self._run(self._open_part, message_id, number, actor, purpose)

        def read_from(start: int) -> AsyncGenerator[bytes, None]:
            return read_stream(self.node.store, opened, self.executor, start)

        return opened.info, read_from

    async def verify_attachment(
        self, message_id: str, number: int, *, actor: Actor, purpose: str | None
    ) -> AttachmentCheck:
        """Verify every signature of the message's signed PDF attachment ``number``, in place
        (streamed from the store, never held whole), with the node's trust anchors and CRLs as
        they are now; the verdict is recorded (audit ``attachment.verified``, and in full sealed
        with the file's name under its part key), and the message's view shows the latest one
        per file. Same access as downloading the file. Raises
        ``AttachmentCheckRefused`` for a file that is not a PDF, is not signed or failed
        authentication in the store (recorded too)."""

        def run() -> AttachmentCheck:
            opened = self._open_part(message_id, number, actor, purpose)
            now = self.node.clock()
            details: dict[str, str | int | None] = {
                "number": number,
                "sha256": opened.info.sha256.hex(),
            }
            recorded: dict[str, Any] = {
                "sha256": opened.info.sha256.hex(),
                "checked_at": now.isoformat(),
                "checked_by": actor.code,
            }
            try:
                signatures = verify_pdf_in_place(self.node.store, opened, self.node.trust, now)
            except AttachmentCheckRefused as refused:
                details.update(indication=None, refused=refused.code)
                self._record_check(actor, opened, details, {**recorded, "refused": refused.code})
                raise
            check = AttachmentCheck(message_id, number, opened.info.sha256.hex(), now, signatures)
            sub = check.sub_indication
            signers = ",".join(sorted({s.signer_body_id for s in signatures}))[:256]
            details.update(
                indication=str(check.indication),
                sub_indication=str(sub) if sub else None,
                signatures=len(signatures),
                signers=signers,
            )
            self._record_check(
                actor, opened, details, {**check.to_json(), **recorded, "signers": signers}
            )
            return check

        return await self._run(run)

    def _open_part(
        self, message_id: str, number: int, actor: Actor, purpose: str | None
    ) -> attachment_store.Reader:
        """The reader of the message's attachment ``number`` (1-based, the signed list's
        order), after the same access check and audited read as the document itself."""
        self._read_document(message_id, actor, purpose)  # role, purpose, audited read
        with self.node.store.read() as conn:
            listed = attachment_store.parts_of(conn, message_id)
            if not 1 <= number <= len(listed):
                raise NotFound(f"attachment {number} of message {message_id}")
            return attachment_store.reader(conn, listed[number - 1][0], self.node.kek_ring)

    def _record_check(
        self,
        actor: Actor,
        opened: attachment_store.Reader,
        details: dict[str, str | int | None],
        check: dict[str, Any],
    ) -> None:
        """The audit event and the sealed verdict, in one transaction."""
        with self.node.store.transaction() as conn:
            attachment_store.record_check(conn, opened, check)
            audit.append(
                conn,
                now=self.node.clock(),
                actor=actor.code,
                kind=ATTACHMENT_VERIFIED,
                subjects={"message": str(opened.info.message_id)},
                details=details,
            )

    async def receipt_xml(
        self, message_id: str, *, actor: Actor, purpose: str | None = None
    ) -> bytes:
        def receipt() -> bytes:
            self._check_at_all(actor, Action.READ_DOCUMENT, message_id)
            with self.node.store.read() as conn:
                found = receipt_store.get(conn, message_id)
            if found is None:
                raise NotFound(f"receipt of {message_id}")
            # The receipt lies in the message's conversation: a confidential one needs the
            # reader's role and purpose, as the message itself does.
            _, document = self._read_document(found.receipt_message_id, actor, purpose)
            return document

        return await self._run(receipt)


@dataclass(frozen=True, slots=True)
class _SummaryFacts:
    """What message summaries show beside the messages' own rows, read in two queries for a
    whole conversation (never one per message)."""

    indications: dict[str, tuple[str, str | None]]
    deliveries: dict[str, str]
    late: dict[str, LateFlag]

    @classmethod
    def read(cls, conn: Any, conversation_id: str, message_ids: list[str]) -> _SummaryFacts:
        late = {
            row.message_id: LateFlag(row.due, row.answered_on, row.days_late, row.working_days)
            for row in late_store.of_conversations(conn, [conversation_id])
        }
        return cls(
            reports.report_indications(conn, message_ids),
            outbox_store.states_of(conn, message_ids),
            late,
        )


def _message_summary(m: msg_store.StoredMessage, facts: _SummaryFacts) -> MessageSummary:
    recorded = facts.indications.get(m.header.message_id)
    return MessageSummary(
        message_id=m.header.message_id,
        conversation_id=m.header.conversation_id,
        in_reply_to=m.header.in_reply_to,
        direction=m.direction.value,
        kind=m.header.kind,
        sender=m.header.sender,
        recipient=m.header.recipient,
        created=m.header.created,
        stored_at=m.stored_at,
        confidential=m.header.confidential,
        document_sha256=m.document_sha256.hex(),
        delivery_state=(
            facts.deliveries.get(m.header.message_id)
            if m.direction is msg_store.Direction.OUT
            else None
        ),
        verification=recorded[0] if recorded else None,
        late=facts.late.get(m.header.message_id),
    )


def _tombstone_summary(tombstone: purge_store.Tombstone) -> MessageSummary:
    return MessageSummary(
        message_id=tombstone.message_id,
        conversation_id=tombstone.conversation_id,
        in_reply_to=None,
        direction=tombstone.direction,
        kind=tombstone.kind,
        sender=tombstone.sender,
        recipient=tombstone.recipient,
        created=tombstone.created,
        stored_at=tombstone.stored_at,
        confidential=False,
        document_sha256=tombstone.document_sha256.hex(),
        delivery_state=None,
        verification=None,
        purged=True,
    )


ATTACHMENT_VERIFIED = "attachment.verified"
"""The audit event recording a signed PDF attachment's verification: codes only (number,
SHA-256, ETSI indication and sub-indication, signature count, signers' body ids, or the
refusal's code). The full verdict is kept sealed with the file's name and type
(``attachments.record_check``), and the message's view shows the latest one per file."""


def _report_view(recorded: reports.RecordedReport | None) -> dict[str, Any]:
    """The latest recorded report with when and why it was made; {} when none was (a document
    this node signed itself, or one stored before reports were recorded)."""
    if recorded is None:
        return {}
    return {
        **recorded.report,
        "recorded_at": recorded.recorded_at.isoformat(),
        "recorded_for": recorded.purpose.value,
    }


def _summary(
    c: conv_store.Conversation, shown: listing.Listing | None = None
) -> ConversationSummary:
    shown = shown or listing.Listing()
    return ConversationSummary(
        conversation_id=c.conversation_id,
        agreement=c.agreement,
        requesting_party=c.requesting_party,
        requested_party=c.requested_party,
        opening_kind=c.opening_kind,
        last_kind=c.last_kind,
        state=c.state,
        confidential=c.confidential,
        deadline=c.deadline,
        opened_at=c.opened_at,
        updated_at=c.updated_at,
        proceeding_closed_at=c.proceeding_closed_at,
        urgent=c.urgent,
        case_number=shown.case_number,
        debtor=shown.debtor,
        hidden=shown.hidden,
    )


def _attempts(conn: Any, message_id: str) -> tuple[dict[str, Any], ...]:
    rows = outbox_store.attempts_of(conn, message_id)
    return tuple(
        {
            "attempt": r.attempt,
            "started_at": _iso(r.started_at),
            "finished_at": _iso(r.finished_at),
            "outcome": r.outcome,
            "error_code": r.error_code,
            "http_status": r.http_status,
        }
        for r in rows
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _submit_result(answer: dict[str, Any], *, replayed: bool) -> SubmitResult:
    """A submission's answer (as :meth:`sending.Submitted.answer` makes and keeps it)."""
    return SubmitResult(
        message_id=answer["message_id"],
        conversation_id=answer["conversation_id"],
        state=answer["state"],
        warnings=tuple(answer["warnings"]),
        replayed=replayed,
    )


__all__ = ["LocalNodeService"]


def _upload_json(state: attachment_store.UploadState) -> dict[str, Any]:
    return {
        "attachment_id": state.attachment_id,
        "length": state.length,
        "offset": state.offset,
        "complete": state.complete,
        "sha256": state.sha256.hex() if state.sha256 is not None else None,
    }

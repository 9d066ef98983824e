"""A gateway node: the receive pipeline, submission and delivery, over one store.

Receive (a peer's document over mutual TLS, synchronous, answered with a signed receipt)::

    hardened parse → verify both signatures (trust from the directory, fail closed)
      → sender = TLS identity = signer's body; seal certificate pinned by the directory
      → recipient is this node → schema → content rules → agreement in force
      → deduplicate by message id → conversation state machine → store (encrypted) → Receipt

Every refusal is a signed ``Rejection`` with a stable code (HTTP 422), except when the document
cannot even be read as an envelope: then a plain code (HTTP 400), since there is nobody to
address a signed answer to.

Submit (the case system's JSON via the local API): convert → schema → rules → state machine →
sign (official + seal) → store and queue in the outbox in one transaction.

Deliver: claim due outbox rows → POST to the peer → verify its signed Receipt (it must name our
message id and the SHA-256 of the bytes we sent) → record; on failure retry with back-off; a
signed Rejection ends the attempt for good. At-least-once delivery plus the receiver's
deduplication gives exactly-once processing.

The pipeline's CPU work (C14N, signatures, schema) is synchronous and runs in an executor; the
aiohttp shells in :mod:`gateway.web` await it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from lxml import etree
from sqlalchemy.exc import IntegrityError

from gateway.config import NodeConfig
from gateway.crypto.at_rest import KekRing
from gateway.crypto.kek_rotation import load_kek_ring
from gateway.crypto.keystore import KeyStore, KeyStoreError, SigningKey
from gateway.crypto.pades import sign_pdf
from gateway.crypto.recipient import (
    RecipientEncryptionError,
    decrypt_with_any,
    encrypt_for,
    is_encrypted,
)
from gateway.crypto.rendition import render_pdf
from gateway.crypto.report import SubIndication, ValidationReport
from gateway.crypto.trust import TrustList
from gateway.crypto.xades import sign_document, verify_document
from gateway.exchange import conversation as machine
from gateway.exchange import documents, machine_codec
from gateway.exchange.directory import DirectoryIndex, UnknownBody
from gateway.exchange.directory_signing import verify_directory
from gateway.exchange.retry import DeadLetter, next_attempt, system_random
from gateway.model.directory import CertificateRole, Directory
from gateway.model.envelope import Header
from gateway.model.problems import DocumentRejected, Problem, Severity
from gateway.model.profiles import PROFILES, profile
from gateway.rules.agreement import PartiesContext, agreement_problems
from gateway.rules.calendars import calendar_for
from gateway.rules.content import check_content
from gateway.rules.deadlines import deadline_for
from gateway.store import Store, audit, machines, open_store
from gateway.store import conversations as conv_store
from gateway.store import messages as msg_store
from gateway.store import outbox as outbox_store
from gateway.store import receipts as receipt_store
from gateway.store.engine import migrate
from gateway.store.tables import outbox as outbox_table
from gateway.xml.convert import json_to_xml, to_bytes
from gateway.xml.header import read_header
from gateway.xml.parsing import parse_untrusted
from gateway.xml.schemas import SchemaRegistry, default_registry
from gateway.xml.validate import validate

log = logging.getLogger(__name__)

ENV = "{urn:cis-exchange:envelope:1}"

DELIVERY_LEASE = timedelta(minutes=2)
"""How long a worker holds an outbox row: well above one delivery's time limit, so a live worker
never loses its row, and short enough that a crashed worker's rows go out again soon."""

HTTP_TOO_MANY_REQUESTS = 429

RATE_LIMIT_SPREAD_SECONDS = 1.0
"""Jitter added to a peer's Retry-After, so workers told the same time do not return at once."""

DELIVERY_BATCH = 16
"""Rows a worker claims at once: enough to keep a keep-alive connection busy."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PeerAnswer:
    """What the peer endpoint sends back for one incoming document."""

    status: int
    body: bytes
    content_type: str
    agreement: str = ""
    kind: str = ""
    """Of the accepted document (codes, for metrics)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    endpoint: str
    wire: bytes
    """What goes over the connection: the signed document, or its CMS encryption."""
    signed: bytes
    """The signed document itself: the receipt's SHA-256 must be of these bytes."""


@dataclass(frozen=True, slots=True)
class Delivered:
    message_id: str
    outcome: str
    """``delivered``, ``rejected``, ``retry`` or ``failed``."""
    code: str | None = None


class Node:
    """One body's gateway node. Build it with :meth:`from_config`; close it with :meth:`close`."""

    def __init__(
        self,
        *,
        config: NodeConfig,
        keys: KeyStore,
        store: Store,
        kek_ring: KekRing,
        directory: Directory,
        clock: Callable[[], datetime] = utc_now,
        registry: SchemaRegistry | None = None,
    ) -> None:
        self.config = config
        self.body_id = config.node.body_id
        self.keys = keys
        self.store = store
        self.kek_ring = kek_ring
        self.clock = clock
        self.registry = registry or default_registry()
        keys.seal()  # fail at start, not at the first signature, when the seal is missing
        self._crls = _load_crls(config)
        self.directory = directory
        self.index = DirectoryIndex.of(directory)
        self.trust = self._trust_from(directory)

    @property
    def seal(self) -> SigningKey:
        """The seal generation active now: a scheduled switch or a revocation takes effect
        without restart (the key store re-reads its manifest when it changes)."""
        return self.keys.seal(at=self.clock())

    @property
    def official(self) -> SigningKey | None:
        return _official_or_none(self.keys, self.config.keys.official, self.clock())

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: NodeConfig, *, clock: Callable[[], datetime] = utc_now) -> Node:
        """Open keys, store (migrated) and the verified directory named by the configuration."""
        keys = KeyStore.from_config(config)
        ring = load_kek_ring(keys)
        config.node.data_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(config.database_url)
        migrate(store.engine)
        directory = load_directory(config, at=clock())
        return cls(
            config=config, keys=keys, store=store, kek_ring=ring, directory=directory, clock=clock
        )

    def close(self) -> None:
        self.store.dispose()
        self.keys.close()

    def _trust_from(self, directory: Directory) -> TrustList:
        """Trust anchors from the directory: each body's officials' CA (which also certifies
        its seal and TLS keys in the demo), restricted to certify that body only."""
        body_anchors: dict[str, list[Any]] = {}
        for body in directory.bodies:
            cas = [
                x509.load_der_x509_certificate(c.der)
                for c in body.certificates
                if c.role is CertificateRole.OFFICIALS_CA
            ]
            body_anchors[body.id] = cas
        anchors = {a.fingerprint(_SHA256): a for cas in body_anchors.values() for a in cas}
        return TrustList.from_certificates(
            list(anchors.values()),
            crls=self._crls,
            require_revocation=self.config.trust.require_revocation_check,
            body_anchors=body_anchors,
        )

    def reload_crls(self) -> None:
        """Re-read the configured CRLs (a certificate was revoked) and rebuild the trust."""
        self._crls = _load_crls(self.config)
        self.trust = self._trust_from(self.directory)

    def update_directory(self, directory: Directory) -> None:
        """Take a newer verified directory without restart (keys rotated, bodies added)."""
        self.directory = directory
        self.index = DirectoryIndex.of(directory)
        self.trust = self._trust_from(directory)

    # --- receive ----------------------------------------------------------------------------

    def receive(self, tls_body: str, payload: bytes) -> PeerAnswer:
        """Process one document a peer sent; always answers, never raises for the peer's faults."""
        now = self.clock()
        encrypted = is_encrypted(payload)
        try:
            if encrypted:
                payload = self._decrypt(payload)
            unverified = parse_untrusted(payload)
        except (DocumentRejected, RecipientEncryptionError) as rejected:
            problem = (
                rejected.problems[0]
                if isinstance(rejected, DocumentRejected)
                else rejected.problem()
            )
            self._audit_rejection(tls_body, None, problem, now)
            return PeerAnswer(400, problem.code.encode(), "text/plain")
        claimed = _claimed_header(unverified)
        try:
            header, root, report = self._verified(tls_body, payload, unverified, now)
            existing = self._already_received(header, payload)
            if existing is not None:
                return existing
            try:
                receipt = self._accept(tls_body, header, root, payload, report, now, encrypted)
            except (machine.DuplicateMessage, IntegrityError):
                # A concurrent delivery of the same message (a sender retrying while its first
                # attempt was still being processed) stored it meanwhile — seen as a duplicate
                # by the state machine, or on PostgreSQL as the other transaction's new
                # conversation row: answer as to a replay, with the same receipt. A Rejection
                # here would make the sender record as refused a message this node accepted.
                existing = self._already_received(header, payload)
                if existing is None:
                    raise
                return existing
        except DocumentRejected as rejected:
            problem = rejected.problems[0]
            self._audit_rejection(tls_body, claimed, problem, now)
            if problem.code == TRY_AGAIN:
                # Transient (a concurrent change): the sender must retry, and a signed
                # Rejection (409/422) ends its delivery for good. 503 is retried.
                return PeerAnswer(503, TRY_AGAIN.encode(), "text/plain")
            if claimed is None:
                return PeerAnswer(400, problem.code.encode(), "text/plain")
            return PeerAnswer(422, self._rejection(claimed, problem, tls_body, now), _XML)
        except machine.ProtocolError as error:
            problem = error.problem()
            self._audit_rejection(tls_body, claimed, problem, now)
            assert claimed is not None  # a protocol error comes after the header was read
            return PeerAnswer(409, self._rejection(claimed, problem, tls_body, now), _XML)
        return PeerAnswer(200, receipt, _XML, header.agreement, header.kind)

    def _verified(
        self, tls_body: str, payload: bytes, as_received: etree._Element, now: datetime
    ) -> tuple[Header, etree._Element, ValidationReport]:
        verified = verify_document(
            payload, self.trust, at=now, expected_sender=tls_body, require_official=False
        )
        report = verified.report
        if not report.passed:
            failure = report.first_failure
            sub = failure.sub_indication if failure else SubIndication.FORMAT_FAILURE
            raise _reject(
                f"SIGNATURE_{sub}",
                f"Подпись документа не прошла проверку: {sub}.",
                f"signature verification failed: {report.indication}/{sub}",
                "Подпишите документ действующим ключом органа и отправьте заново.",
                "CIS Art. 11.3; SC Art. 5.1",
            )
        # The shape is checked on the document as received (its signatures included); every
        # field is then read from what the seal covers, never from the received tree.
        problems = validate(as_received, self.registry)
        if problems:
            raise DocumentRejected(problems)
        root = verified.tree
        header = read_header(root)
        if header.sender != tls_body:
            raise _reject(
                "SENDER_MISMATCH",
                "Отправитель в документе не совпадает с органом, установившим соединение.",
                "the envelope's Sender is not the body the TLS connection authenticated",
                "Отправляйте документы только от своего органа.",
            )
        if header.recipient != self.body_id:
            raise _reject(
                "WRONG_RECIPIENT",
                f"Документ адресован {header.recipient}, а не этому узлу ({self.body_id}).",
                f"addressed to {header.recipient}, this node is {self.body_id}",
                "Отправьте документ на узел органа-получателя по справочнику органов.",
            )
        self._check_pinned_seal(header.sender, report)
        kind = profile(header.agreement).kinds.get(header.kind)
        official_signed = any(s.role == "official" and s.passed for s in report.signatures)
        if kind is not None and kind.signed_by_official and not official_signed:
            raise _reject(
                "SIGNATURE_OFFICIAL_MISSING",
                "Документ должен быть подписан уполномоченным лицом и скреплён печатью.",
                "the document needs the official's signature as well as the seal",
                "Подпишите документ подписью уполномоченного лица.",
                "CIS Art. 11.3; SC Art. 5.1",
            )
        content = [p for p in check_content(root, header) if p.severity is Severity.ERROR]
        if content:
            raise DocumentRejected(content)
        return header, root, report

    def _decrypt(self, cms: bytes) -> bytes:
        keys = [(k.private_key, k.certificate) for k in self.keys.decryption_keys()]
        return decrypt_with_any(cms, keys)

    @staticmethod
    def _check_encrypted_if_confidential(
        header: Header, stored: conv_store.Conversation | None, encrypted: bool
    ) -> None:
        """A confidential document (or any document of a confidential conversation) must come
        encrypted to this node: in clear it may have been read on its way (CIS Art. 16)."""
        if not encrypted and (header.confidential or (stored and stored.confidential)):
            raise _reject(
                "CONFIDENTIAL_NOT_ENCRYPTED",
                "Конфиденциальный документ получен незашифрованным.",
                "a confidential document arrived without encryption to this node",
                "Зашифруйте документ на сертификат шифрования получателя из справочника органов.",
                "CIS Art. 16; SC Art. 8.1",
            )

    def _check_pinned_seal(self, sender: str, report: ValidationReport) -> None:
        seal = next((s for s in report.signatures if s.role == "seal"), None)
        body = self.index.body(sender)
        pinned = {c.sha256 for c in body.certificates if c.role is CertificateRole.SEAL}
        if seal is None or not seal.chain or seal.chain[0].sha256 not in pinned:
            raise _reject(
                "SEAL_NOT_IN_DIRECTORY",
                "Сертификат печати отправителя отсутствует в справочнике органов.",
                "the sender's seal certificate is not the one the directory lists",
                "Опубликуйте сертификат печати через депозитария (новая версия справочника).",
                "CIS Art. 18",
            )

    def _already_received(self, header: Header, payload: bytes) -> PeerAnswer | None:
        """A replay: the same id and bytes → the same receipt again; other bytes → refused."""
        with self.store.read() as conn:
            stored = msg_store.get(conn, header.message_id)
            if stored is None:
                return None
            if stored.document_sha256 != hashlib.sha256(payload).digest():
                raise _reject(
                    "MESSAGE_ID_REUSED",
                    "Сообщение с таким идентификатором уже получено с другим содержанием.",
                    "a different document with this message id was received before",
                    "Создайте новый идентификатор сообщения (MessageId).",
                )
            receipt = receipt_store.get(conn, header.message_id)
            if receipt is None:  # stored but its receipt not yet: a concurrent first delivery
                raise _reject(
                    TRY_AGAIN, "Документ обрабатывается.", "being processed", "Повторите позже."
                )
            document = msg_store.read_document(conn, receipt.receipt_message_id, self.kek_ring)
        return PeerAnswer(200, document, _XML)

    def _accept(
        self,
        tls_body: str,
        header: Header,
        root: etree._Element,
        payload: bytes,
        report: ValidationReport,
        now: datetime,
        encrypted: bool,
    ) -> bytes:
        digest = hashlib.sha256(payload).hexdigest()
        receipt_doc = self._sign_json(
            documents.receipt_json(
                header, document_sha256=digest, received_at=now, sender=self.body_id, now=now
            ),
            official=None,
            now=now,
        )
        receipt_header = read_header(parse_untrusted(receipt_doc))
        with self.store.transaction() as conn:
            state, stored_conv = self._load_conversation(conn, header)
            self._check_encrypted_if_confidential(header, stored_conv, encrypted)
            requesting = stored_conv.requesting_party if stored_conv else header.sender
            requested = stored_conv.requested_party if stored_conv else header.recipient
            self._check_agreement(root, header, requesting, requested, stored_conv, now)
            role = _role(header.sender, requesting)
            step = machine.apply(state, _event(header, root, role))
            own_role = _role(self.body_id, requesting)
            ack = machine.apply(
                step.conversation,
                machine.Event(
                    kind="Receipt",
                    sender=own_role,
                    message_id=receipt_header.message_id,
                    at=now,
                    in_reply_to=header.message_id,
                ),
            )
            effects = (*step.effects, *ack.effects)
            self._store_conversation(
                conn, header, ack.conversation, stored_conv, requesting, requested, effects, now
            )
            outcome = msg_store.insert_received(
                conn, _message_header(header), payload, self.kek_ring, now
            )
            if outcome is not msg_store.ReceiveOutcome.INSERTED:
                # Another process stored it first (or a purged message was replayed): undo all.
                raise _reject(TRY_AGAIN, "Документ уже обработан.", "already processed", "")
            msg_store.insert_sent(
                conn, _message_header(receipt_header), receipt_doc, self.kek_ring, now
            )
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
                actor=f"peer:{tls_body}",
                kind="message.received",
                subjects={"message": header.message_id, "conversation": header.conversation_id},
                details={
                    "kind": header.kind,
                    "agreement": header.agreement,
                    "indication": str(report.indication),
                    "sha256": digest,
                },
            )
        return receipt_doc

    def _check_agreement(
        self,
        root: etree._Element,
        header: Header,
        requesting: str,
        requested: str,
        stored: conv_store.Conversation | None,
        now: datetime,
    ) -> None:
        problems = agreement_problems(
            root, header, self._parties(header.agreement, requesting, requested, stored), now.date()
        )
        errors = [p for p in problems if p.severity is Severity.ERROR and _blocks(p)]
        if errors:
            raise DocumentRejected(errors)

    def _parties(
        self,
        agreement: str,
        requesting: str,
        requested: str,
        stored: conv_store.Conversation | None,
    ) -> PartiesContext:
        participations, reservations = [], []
        for body_id in (requesting, requested):
            try:
                body = self.index.body(body_id)
            except UnknownBody:
                raise _reject(
                    "BODY_NOT_IN_DIRECTORY",
                    f"Орган {body_id} отсутствует в справочнике органов.",
                    f"{body_id} is not in the directory of bodies",
                    "Проверьте идентификатор органа; импортируйте актуальный справочник.",
                    "CIS Art. 18",
                ) from None
            participations += [p for p in body.participations if p.agreement == agreement]
            reservations += [r for r in body.reservations if r.agreement == agreement]
        return PartiesContext(
            requesting_body=requesting,
            requested_body=requested,
            participations=tuple(participations),
            reservations=tuple(reservations),
            conversation_started_on=stored.opened_at.date() if stored else None,
        )

    def _load_conversation(
        self, conn: Any, header: Header
    ) -> tuple[machine.Conversation, conv_store.Conversation | None]:
        stored = conv_store.get(conn, header.conversation_id, for_update=True)
        if stored is None:
            kind = profile(header.agreement).kinds.get(header.kind)
            if kind is None or not kind.opens_conversation:
                raise _reject(
                    "UNKNOWN_CONVERSATION",
                    "Беседа (ConversationId), к которой относится документ, неизвестна.",
                    "the conversation this document belongs to is unknown here",
                    "Укажите ConversationId запроса, на который вы отвечаете.",
                )
            return machine.new_conversation(header.conversation_id, header.agreement), None
        if stored.agreement != header.agreement:
            raise _reject(
                "AGREEMENT_MISMATCH",
                "Документ относится к другому соглашению, чем беседа.",
                "the document's agreement differs from its conversation's",
                "Укажите соглашение запроса.",
            )
        if header.sender not in (stored.requesting_party, stored.requested_party) or (
            self.body_id not in (stored.requesting_party, stored.requested_party)
        ):
            raise _reject(
                "UNKNOWN_CONVERSATION",
                "Беседа с таким идентификатором ведётся другими органами.",
                "the conversation belongs to other bodies",
                "Укажите ConversationId своей беседы.",
            )
        text = machines.get(conn, header.conversation_id)
        state = (
            machine_codec.loads(text)
            if text
            else machine.new_conversation(header.conversation_id, header.agreement)
        )
        return state, stored

    def _store_conversation(
        self,
        conn: Any,
        header: Header,
        state: machine.Conversation,
        stored: conv_store.Conversation | None,
        requesting: str,
        requested: str,
        effects: tuple[Any, ...],
        now: datetime,
    ) -> None:
        deadline = self._deadline(state, header.agreement, requested)
        closed_at = now if state.closed else None
        if stored is None:
            conv_store.open_conversation(
                conn,
                conversation_id=header.conversation_id,
                agreement=header.agreement,
                requesting_party=requesting,
                requested_party=requested,
                opening_kind=header.kind,
                state=state.state.value,
                confidential=header.confidential,
                deadline=deadline,
                now=now,
            )
            if state.closed:
                conv_store.transition(
                    conn,
                    header.conversation_id,
                    expected_state=state.state.value,
                    new_state=state.state.value,
                    now=now,
                    closed_at=closed_at,
                )
        else:
            moved = conv_store.transition(
                conn,
                header.conversation_id,
                expected_state=stored.state,
                new_state=state.state.value,
                now=now,
                last_kind=header.kind,
                deadline=deadline,
                # The flag of a request covers its whole conversation (CIS Art. 16; SC Art. 8.1).
                confidential=stored.confidential or header.confidential,
                closed_at=closed_at
                if state.closed and stored.closed_at is None
                else stored.closed_at,
            )
            if not moved:
                raise _reject(TRY_AGAIN, "Беседа изменена параллельно.", "concurrent change", "")
        machines.put(conn, header.conversation_id, machine_codec.dumps(state), now)
        for effect in effects:
            if isinstance(effect, machine.NotifyOperator):
                audit.append(
                    conn,
                    now=now,
                    actor="gateway",
                    kind="operator.notified",
                    subjects={"conversation": header.conversation_id},
                    details={"code": effect.code, "audience": str(effect.audience)},
                )

    def _deadline(self, state: machine.Conversation, agreement: str, requested: str) -> Any:
        """The due date: the agreement's rule counted from the request's receipt (CIS Art. 12:
        30 working days by the requested party's calendar; SC Art. 6.1: 30 days), shifted by
        the days the clock was paused while the requested party waited on the other side."""
        clock = state.clock
        if clock.started_at is None:
            return None
        calendar = calendar_for(
            requested[:2],
            extra_days_off=self.config.calendar.extra_days_off.get(requested[:2], ()),
            extra_working_days=self.config.calendar.extra_working_days.get(requested[:2], ()),
        )
        due = deadline_for(
            profile(agreement), clock.started_at.date(), calendar, state.requested_deadline
        ).due
        paused_days = sum(((p.until or self.clock()) - p.since).days for p in clock.pauses)
        return due + timedelta(days=paused_days)

    def _rejection(self, claimed: Header, problem: Problem, tls_body: str, now: datetime) -> bytes:
        try:
            return self._sign_json(
                documents.rejection_json(
                    claimed, problem, sender=self.body_id, now=now, recipient=tls_body
                ),
                official=None,
                now=now,
            )
        except DocumentRejected:
            # The claimed header was too broken to answer in the agreement's terms.
            return problem.code.encode()

    def _audit_rejection(
        self, tls_body: str, claimed: Header | None, problem: Problem, now: datetime
    ) -> None:
        log.info("rejected a document from %s: %s", tls_body, problem.code)
        with self.store.transaction() as conn:
            audit.append(
                conn,
                now=now,
                actor=f"peer:{tls_body}",
                kind="message.rejected",
                subjects={"message": claimed.message_id} if claimed else {},
                details={"code": problem.code},
            )

    # --- submit -----------------------------------------------------------------------------

    def submit(self, document: dict[str, Any], *, actor: str) -> tuple[Header, list[Problem]]:
        """Turn the case system's JSON into a signed document and queue it; return its header
        and the warnings. Raises DocumentRejected or ProtocolError, storing nothing."""
        now = self.clock()
        header_json, body = _split_submission(document)
        agreement_id = str(header_json.get("Agreement", ""))
        kind_name = str(header_json.get("Kind", ""))
        agreement = PROFILES.get(agreement_id)
        kind = agreement.kinds.get(kind_name) if agreement else None
        opens = bool(kind and kind.opens_conversation)
        with self.store.read() as conn:
            stored = (
                conv_store.get(conn, str(header_json.get("ConversationId")))
                if not opens and header_json.get("ConversationId")
                else None
            )
        completed = documents.complete_header(
            header_json, sender=self.body_id, now=now, opens_conversation=opens
        )
        if stored is not None:
            completed["Confidential"] = stored.confidential or bool(completed.get("Confidential"))
        root = json_to_xml({"header": completed, "body": body}, self.registry)
        problems = validate(root, self.registry)
        if problems:
            raise DocumentRejected(problems)
        header = read_header(root)
        problems = list(check_content(root, header))
        requesting = stored.requesting_party if stored else header.sender
        requested = stored.requested_party if stored else header.recipient
        if not opens and stored is None:
            raise _reject(
                "UNKNOWN_CONVERSATION",
                "Для ответа укажите ConversationId существующей беседы.",
                "a reply needs the ConversationId of an existing conversation",
                "Возьмите ConversationId из запроса, на который отвечаете.",
            )
        problems += agreement_problems(
            root, header, self._parties(header.agreement, requesting, requested, stored), now.date()
        )
        errors = [p for p in problems if p.severity is Severity.ERROR]
        if errors:
            raise DocumentRejected(errors)
        warnings = [p for p in problems if p.severity is Severity.WARNING]
        kind = profile(header.agreement).kind(header.kind)
        signed = sign_document(
            to_bytes(root),
            self.official if kind.signed_by_official else None,
            self.seal,
            now,
        )
        with self.store.transaction() as conn:
            state, stored = self._load_conversation_for_sending(conn, header)
            step = machine.apply(state, _event(header, root, _role(self.body_id, requesting)))
            self._store_conversation(
                conn, header, step.conversation, stored, requesting, requested, step.effects, now
            )
            msg_store.insert_sent(conn, _message_header(header), signed, self.kek_ring, now)
            outbox_store.enqueue(conn, header.message_id, header.recipient, now)
            audit.append(
                conn,
                now=now,
                actor=actor,
                kind="message.submitted",
                subjects={"message": header.message_id, "conversation": header.conversation_id},
                details={"kind": header.kind, "agreement": header.agreement},
            )
        return header, warnings

    def _load_conversation_for_sending(
        self, conn: Any, header: Header
    ) -> tuple[machine.Conversation, conv_store.Conversation | None]:
        stored = conv_store.get(conn, header.conversation_id, for_update=True)
        if stored is None:
            return machine.new_conversation(header.conversation_id, header.agreement), None
        text = machines.get(conn, header.conversation_id)
        state = (
            machine_codec.loads(text)
            if text
            else machine.new_conversation(header.conversation_id, header.agreement)
        )
        return state, stored

    def _sign_json(
        self, document: dict[str, Any], *, official: SigningKey | None, now: datetime
    ) -> bytes:
        if document["header"]["Kind"] in documents.MACHINE_KINDS:
            root = documents.machine_document_xml(document)
        else:
            root = json_to_xml(document, self.registry)
        problems = validate(root, self.registry)
        if problems:
            raise DocumentRejected(problems)
        return sign_document(to_bytes(root), official, self.seal, now)

    # --- renditions ---------------------------------------------------------------------------

    def render(self, document: bytes) -> bytes:
        """The signed PDF rendition of a stored document (PAdES, the body's seal): the
        "original" of CIS Art. 10. Costly (fonts, PAdES): never on the receive path."""
        pdf = render_pdf(document, generated_at=self.clock())
        signer = self.seal.pdf_signer()
        try:
            return sign_pdf(
                pdf, signer, reason="Электронная копия документа обмена", location=self.body_id
            )
        finally:
            session = getattr(signer, "pkcs11_session", None)
            if session is not None:
                session.close()

    # --- delivery ---------------------------------------------------------------------------

    def claim_due(self, worker_id: str, limit: int = DELIVERY_BATCH) -> list[outbox_store.Claim]:
        now = self.clock()
        with self.store.transaction() as conn:
            return outbox_store.claim_due(conn, worker_id, now, limit, DELIVERY_LEASE)

    def outgoing(self, claim: outbox_store.Claim) -> Outgoing:
        """What to send for a claim: the endpoint, the bytes for the wire and the signed
        document they carry. A confidential document (its own flag or its conversation's) is
        encrypted to the recipient's encryption certificates from the directory — sign, then
        encrypt — so only the recipient node reads it, even where TLS ends before it."""
        body = self.index.body(claim.destination)
        with self.store.read() as conn:
            document = msg_store.read_document(conn, claim.message_id, self.kek_ring)
            stored = msg_store.get(conn, claim.message_id)
            conversation = conv_store.get(conn, stored.header.conversation_id) if stored else None
        confidential = bool(stored and stored.header.confidential) or bool(
            conversation and conversation.confidential
        )
        if not confidential:
            return Outgoing(body.endpoint, document, document)
        certificates = [
            x509.load_der_x509_certificate(c.der)
            for c in body.certificates
            if c.role is CertificateRole.ENCRYPTION
        ]
        if not certificates:
            raise _reject(
                "NO_ENCRYPTION_CERTIFICATE",
                f"В справочнике органов нет сертификата шифрования {claim.destination}.",
                f"the directory lists no encryption certificate for {claim.destination}",
                "Запросите у депозитария справочник с сертификатом шифрования органа.",
                "CIS Art. 16; SC Art. 8",
            )
        return Outgoing(body.endpoint, encrypt_for(document, certificates), document)

    def record_receipt(
        self, claim: outbox_store.Claim, sent: bytes, answer: bytes, status: int
    ) -> Delivered:
        """Check the peer's signed answer to a delivery and record it.

        200 must carry a Receipt naming our message and the SHA-256 of what we sent; 409/422 a
        Rejection. Anything else (or a forged answer) is a failed attempt to retry."""
        now = self.clock()
        verified = verify_document(
            answer, self.trust, at=now, expected_sender=claim.destination, require_official=False
        )
        if not verified.report.passed:
            return self._retry(claim, "RECEIPT_SIGNATURE_INVALID", status)
        if validate(parse_untrusted(answer), self.registry):
            return self._retry(claim, "RECEIPT_INVALID", status)
        root = verified.tree
        header = read_header(root)
        body = root.find(f"{ENV}Body")[0]
        fields = {etree.QName(c).localname: (c.text or "").strip() for c in body}
        expected_kind = "Receipt" if status == 200 else "Rejection"
        acknowledged = fields.get("ReceivedMessageId" if status == 200 else "RejectedMessageId")
        if (
            header.kind != expected_kind
            or header.recipient != self.body_id
            or acknowledged != claim.message_id
            or (status == 200 and fields.get("ReceivedSha256") != hashlib.sha256(sent).hexdigest())
        ):
            return self._retry(claim, "RECEIPT_MISMATCH", status)
        with self.store.transaction() as conn:
            state, stored = self._load_conversation_for_sending(conn, header)
            if stored is not None:
                requesting = stored.requesting_party
                event = _event(header, root, _role(header.sender, requesting))
                try:
                    step = machine.apply(state, event)
                except machine.DuplicateMessage:
                    step = machine.Step(state, ())
                self._store_conversation(
                    conn,
                    header,
                    step.conversation,
                    stored,
                    requesting,
                    stored.requested_party,
                    step.effects,
                    now,
                )
            inserted = msg_store.insert_received(
                conn, _message_header(header), answer, self.kek_ring, now
            )
            if inserted is msg_store.ReceiveOutcome.INSERTED:
                receipt_store.record(
                    conn,
                    message_id=claim.message_id,
                    receipt_message_id=header.message_id,
                    direction=msg_store.Direction.IN,
                    outcome=(
                        receipt_store.ReceiptOutcome.ACCEPTED
                        if status == 200
                        else receipt_store.ReceiptOutcome.REJECTED
                    ),
                    code=None if status == 200 else fields.get("Code", "")[:64],
                    at=now,
                )
            if status == 200:
                outbox_store.mark_delivered(conn, claim, now, http_status=status)
            else:
                outbox_store.mark_failed(
                    conn, claim, now, fields.get("Code", "REJECTED")[:64], None, status
                )
            audit.append(
                conn,
                now=now,
                actor="gateway",
                kind="message.delivered" if status == 200 else "message.rejected-by-peer",
                subjects={"message": claim.message_id, "receipt": header.message_id},
                details={"peer": claim.destination, "status": status},
            )
        if status == 200:
            return Delivered(claim.message_id, "delivered")
        return Delivered(claim.message_id, "rejected", fields.get("Code"))

    def _retry(self, claim: outbox_store.Claim, code: str, status: int | None) -> Delivered:
        return self.record_failure(claim, code, retryable=True, status=status)

    def record_failure(
        self,
        claim: outbox_store.Claim,
        code: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        random: Callable[[], float] | None = None,
    ) -> Delivered:
        """A failed attempt: schedule the next by the retry policy, or give up (dead letter)."""
        now = self.clock()
        rand = random or system_random()
        with self.store.read() as conn:
            created = conn.execute(
                sa.select(outbox_table.c.created_at).where(outbox_table.c.id == claim.outbox_id)
            ).scalar_one_or_none()
        decision = next_attempt(
            failures=claim.attempt,
            created_at=created or now,
            now=now,
            random=rand,
            permanent=not retryable,
        )
        if isinstance(decision, DeadLetter):
            next_at = None
        elif status == HTTP_TOO_MANY_REQUESTS and retry_after is not None:
            # The peer is busy, not broken: come back when it says, spread a little so that
            # several workers do not return together; this is no failure to back off from.
            next_at = now + timedelta(seconds=retry_after + rand() * RATE_LIMIT_SPREAD_SECONDS)
        else:
            next_at = decision.at
            if retry_after:
                next_at = max(next_at, now + timedelta(seconds=retry_after))
        with self.store.transaction() as conn:
            outbox_store.mark_failed(conn, claim, now, code[:64], next_at, status)
            audit.append(
                conn,
                now=now,
                actor="gateway",
                kind="delivery.failed" if next_at else "delivery.dead-letter",
                subjects={"message": claim.message_id},
                details={"peer": claim.destination, "code": code[:64]},
            )
        return Delivered(claim.message_id, "retry" if next_at else "failed", code)


# --- helpers ---------------------------------------------------------------------------------

_XML = "application/xml"
TRY_AGAIN = "TRY_AGAIN"
"""Code of the transient refusals: answered 503, so that the sender retries."""
_SHA256 = hashes.SHA256()


def _blocks(problem: Problem) -> bool:
    """On receipt, only the agreement's not being in force refuses a document; a reservation
    (Art. 25) is a ground the requested body's operator may refuse on (Art. 13), not the
    gateway."""
    return problem.code.startswith("AGREEMENT_")


def _reject(code: str, ru: str, en: str, remedy: str, article: str = "") -> DocumentRejected:
    return DocumentRejected(
        [
            Problem(
                code=code,
                path="/Envelope",
                message_ru=ru,
                message_en=en,
                remedy_ru=remedy,
                article=article,
            )
        ]
    )


def _role(body_id: str, requesting: str) -> machine.Role:
    return machine.Role.REQUESTING if body_id == requesting else machine.Role.REQUESTED


_DECISIONS = {"proceed-without-confidentiality": "proceed"}


def _event(header: Header, root: etree._Element, role: machine.Role) -> machine.Event:
    body = root.find(f"{ENV}Body")
    element = body[0] if body is not None and len(body) else None
    fields: dict[str, str] = {}
    grounds: list[str] = []
    if element is not None:
        for child in element:
            name = etree.QName(child).localname
            text = (child.text or "").strip()
            if name == "Ground":
                grounds.append(text)
            fields.setdefault(name, text)
    expected = fields.get("ExpectedDate")
    decision = fields.get("Decision", "")
    return machine.Event(
        kind=header.kind,
        sender=role,
        message_id=header.message_id,
        at=header.created,
        in_reply_to=header.in_reply_to,
        grounds=", ".join(grounds) or fields.get("Reasons", "") or fields.get("Circumstances", ""),
        decision=_DECISIONS.get(decision, decision),
        expected_by=datetime.fromisoformat(expected).date() if expected else None,
        requested_deadline=header.requested_deadline,
    )


def _message_header(header: Header) -> msg_store.MessageHeader:
    return msg_store.MessageHeader(
        message_id=header.message_id,
        conversation_id=header.conversation_id,
        agreement=header.agreement,
        kind=header.kind,
        sender=header.sender,
        recipient=header.recipient,
        created=header.created,
        confidential=header.confidential,
        in_reply_to=header.in_reply_to,
    )


def _claimed_header(root: etree._Element) -> Header | None:
    """The header as the document claims it, before verification: used only to address a
    signed Rejection, never to process anything."""
    try:
        # No schema check here: the Rejection built from it is validated before it is signed,
        # and an unreadable header only means a plain-code answer.
        return read_header(root)
    except (ValueError, TypeError, KeyError):
        return None


def _split_submission(document: Any) -> tuple[dict[str, Any], Any]:
    if not isinstance(document, dict) or not isinstance(document.get("header"), dict):
        raise _reject(
            "JSON_SHAPE",
            "Документ должен быть объектом JSON с полями header и body.",
            'the document must be a JSON object {"header": {...}, "body": {...}}',
            "См. docs/documents.md: форма JSON документа.",
        )
    return dict(document["header"]), document.get("body")


def _official_or_none(keys: KeyStore, name: str, at: datetime) -> SigningKey | None:
    try:
        return keys.official(name or None, at=at)
    except KeyStoreError:  # a node that only seals (receipts) may have no official yet
        log.debug("no official key: documents an official must sign cannot be sent")
        return None


def _load_crls(config: NodeConfig) -> list[Any]:
    crls = []
    for path in config.trust.crl_files:
        data = path.read_bytes()
        crls.append(
            x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
        )
    return crls


def load_directory(config: NodeConfig, *, at: datetime) -> Directory:
    """The configured directory file, verified against the depositary's trust anchor."""
    from gateway.model.problems import ConfigurationError

    trust = config.trust
    if trust.directory_file is None or trust.depositary_ca_file is None:
        raise ConfigurationError(
            f"{config.path}: [trust] needs directory_file and depositary_ca_file (the signed "
            "directory of bodies and the depositary's CA certificate)"
        )
    depositary = TrustList.from_pem_files(trust.depositary_ca_file, require_revocation=False)
    return verify_directory(trust.directory_file.read_bytes(), depositary, at=at)


def signer_body(report: ValidationReport) -> str:
    """The body id of the seal's signer (for logs and views)."""
    seal = next((s for s in report.signatures if s.role == "seal"), None)
    return seal.signer_body_id if seal else ""


__all__ = ["Delivered", "Node", "PeerAnswer", "load_directory", "utc_now"]

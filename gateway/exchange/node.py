"""A gateway node: the context every exchange shell works in, built once and reloaded live.

``Node`` holds what the shells need — configuration, keys, the store, the KEK ring, the verified
directory with its trust list — and knows how to build itself (:meth:`Node.from_config`) and to
take a new directory or CRLs without restart. The work itself lives in modules of their own:

* :mod:`gateway.exchange.inbound` — the pure judge of a received document;
* :mod:`gateway.exchange.submission` — the pure planner of a submission;
* :mod:`gateway.exchange.receiving` — the receive shell (parse once, verify, judge, store);
* :mod:`gateway.exchange.sending` — the submit and delivery shells, typed delivery outcomes;
* :mod:`gateway.exchange.recording` — the one way a conversation's step is written.

The methods below that do work are one-line delegations, kept so that callers hold one object.
No HTTP status appears here: the web layer maps the typed outcomes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.config import NodeConfig
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.kek_ring import load_kek_ring
from gateway.crypto.keys.keystore import KeyRole, KeyStore, KeyStoreError, SigningKey
from gateway.crypto.pades import sign_pdf
from gateway.crypto.report import ValidationReport
from gateway.crypto.trust import TrustList
from gateway.crypto.xades import sign_envelope
from gateway.exchange import receiving, sending
from gateway.exchange.attachments import StagedPart
from gateway.exchange.directory import DirectoryIndex, UnknownBody
from gateway.exchange.directory_signing import verify_directory
from gateway.exchange.refusals import RefusalAudit
from gateway.model.directory import CertificateRole, Directory
from gateway.model.envelope import Header
from gateway.model.problems import DocumentRejected, Problem
from gateway.render.rendition import render_pdf
from gateway.rules.clock import Calendars
from gateway.store import Store, open_current_store
from gateway.store import outbox as outbox_store
from gateway.store.group_commit import GroupCommitter
from gateway.store.idempotency import IdempotencyKey
from gateway.xml.convert import json_to_xml, to_bytes
from gateway.xml.schemas import SchemaRegistry, default_registry
from gateway.xml.validate import validate

log = logging.getLogger(__name__)

DELIVERY_BATCH = 16
"""Rows a worker claims at once: enough to keep a keep-alive connection busy."""

_SHA256 = hashes.SHA256()


def utc_now() -> datetime:
    return datetime.now(UTC)


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
        self.calendars = self._calendars_from(directory)
        self.committer = GroupCommitter(store)
        """Received documents' writes, committed together under load (group commit)."""
        self.refusals = RefusalAudit(store, clock)
        """Peers' refused documents and requests, audited per peer, code and minute."""

    @property
    def seal(self) -> SigningKey:
        """The seal generation active now: a scheduled switch or a revocation takes effect
        without restart (the key store re-reads its manifest when it changes)."""
        return self.keys.seal(at=self.clock())

    def seal_at(self, at: datetime) -> SigningKey:
        """The seal generation active at ``at`` (the signing time of the document at hand)."""
        return self.keys.seal(at=at)

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: NodeConfig, *, clock: Callable[[], datetime] = utc_now) -> Node:
        """Open keys, store and the verified directory named by the configuration. A new store
        gets the schema; one at another revision is refused (:func:`gateway.store.open_current`:
        ``gateway serve`` upgrades it first, and says so)."""
        keys = KeyStore.from_config(config)
        store = None
        try:  # a failed start leaves no key file or database connection open
            ring = load_kek_ring(keys)
            config.node.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            store = open_current_store(config.database_url)
            directory = load_directory(config, at=clock())
        except BaseException:
            if store is not None:
                store.dispose()
            keys.close()
            raise
        return cls(
            config=config, keys=keys, store=store, kek_ring=ring, directory=directory, clock=clock
        )

    def close(self) -> None:
        try:
            self.refusals.flush(everything=True)
        except Exception as exc:  # a store already gone must not keep the node from closing
            log.error("refusal summaries not written at close: %s", type(exc).__name__)
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
        return TrustList(
            list(anchors.values()),
            crls=self._crls,
            require_revocation=self.config.trust.require_revocation_check,
            body_anchors=body_anchors,
        )

    def _calendars_from(self, directory: Directory) -> Calendars:
        """The one legal clock's calendars and zones (gateway.rules.clock): built once per
        directory, shared by the node, its services, console and jobs."""
        return Calendars.build(
            extra_days_off=self.config.calendar.extra_days_off,
            extra_working_days=self.config.calendar.extra_working_days,
            directory=directory,
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
        self.calendars = self._calendars_from(directory)

    # --- the work, delegated ------------------------------------------------------------------

    def receive(
        self, tls_body: str, payload: bytes, parts: Sequence[StagedPart] = ()
    ) -> receiving.ReceiveOutcome:
        return receiving.receive(self, tls_body, payload, parts)

    def submit(
        self,
        document: dict[str, Any],
        *,
        actor: str,
        resending: str | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> tuple[Header, list[Problem]]:
        submitted = sending.submit(
            self, document, actor=actor, resending=resending, idempotency=idempotency
        )
        return submitted.header, submitted.warnings

    def claim_due(self, worker_id: str, limit: int = DELIVERY_BATCH) -> list[outbox_store.Claim]:
        return sending.claim_due(self, worker_id, limit)

    def outgoing(self, claim: outbox_store.Claim) -> sending.Outgoing:
        return sending.outgoing(self, claim)

    def record_answer(
        self,
        claim: outbox_store.Claim,
        sent: bytes,
        answer: bytes,
        claimed: sending.Answer,
        *,
        transport_status: int | None = None,
    ) -> sending.Delivered:
        return sending.record_answer(
            self, claim, sent, answer, claimed, transport_status=transport_status
        )

    def record_failure(
        self, claim: outbox_store.Claim, code: str, **options: Any
    ) -> sending.Delivered:
        return sending.record_failure(self, claim, code, **options)

    def sign_machine_document(
        self, document: dict[str, Any], now: datetime, *, schema_valid: bool = False
    ) -> bytes:
        """Build, validate and seal one of the node's own Receipts or Rejections.

        ``schema_valid``: the caller vouches that ``document`` is valid by construction, and the
        schema check is skipped. Only a Receipt of a received document that passed the schema
        is (:func:`gateway.exchange.documents.receipt_json`: that document's header fields, ids
        and times the node makes, a SHA-256 in hex); tests/exchange/test_machine_documents.py
        validates the Receipt of every example kind of every agreement. A Rejection quotes a
        problem's text, and is always validated."""
        root = json_to_xml(document, self.registry)
        problems = () if schema_valid else validate(root, self.registry)
        if problems:
            raise DocumentRejected(problems)
        recipient = str(document.get("header", {}).get("Recipient", ""))
        return to_bytes(sign_envelope(root, None, self._machine_seal(recipient, now), now))

    def _machine_seal(self, recipient: str, at: datetime) -> SigningKey:
        """The seal for a Receipt or Rejection: of a suite the peer accepts when this body has
        one (a rotation's overlap); else the seal in force — the answer goes out regardless,
        and a peer that does not accept it says so with its own code."""
        try:
            suites = sending.common_suites(self.index, self.body_id, recipient)
            return self.keys.signing_key_for(KeyRole.SEAL, at=at, suites=suites)
        except (DocumentRejected, KeyStoreError, UnknownBody):
            return self.seal_at(at)

    # --- renditions ---------------------------------------------------------------------------

    def render(self, document: bytes) -> bytes:
        """The signed PDF rendition of a stored document (PAdES, the body's seal): the
        "original" of CIS Art. 10. Costly (fonts, PAdES): never on the receive path."""
        return signed_rendition(document, self.seal, self.body_id, self.clock())


def signed_rendition(
    document: bytes, seal: SigningKey, body_id: str, at: datetime, timestamper: Any = None
) -> bytes:
    """The PDF rendition of ``document`` signed PAdES with ``seal`` (B-T with a
    ``timestamper``, pyHanko's): what the local API serves and ``gateway render`` writes."""
    pdf = render_pdf(document, generated_at=at)
    signer = seal.pdf_signer()
    try:
        return sign_pdf(
            pdf,
            signer,
            reason="Электронная копия документа обмена",
            location=body_id,
            timestamper=timestamper,
        )
    finally:
        session = getattr(signer, "pkcs11_session", None)
        if session is not None:
            session.close()


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


__all__ = ["Node", "load_directory", "utc_now"]

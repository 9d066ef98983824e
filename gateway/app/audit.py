"""The audit trail as use cases: search it, verify it (chain, checkpoints, an exported segment),
export or show a range, sign a checkpoint, open the purposes stated for reads, and record the
console's own events.

``gateway audit``, the local API's ``/api/v1/audit/…`` and the console's audit page call these
functions; what they print or render is theirs. Reading the trail needs the ``auditor`` role
(:data:`Action.READ_AUDIT`); the command line's actor holds every role.

Audit events written here::

    audit.verified        details intact, events_checked, checkpoints_checked, broken_at,
                          tampering
    audit.exported        details events, from_seq, to_seq, purposes_decrypted
    audit.purposes.read   details command, opened, unreadable
    audit.checkpoint      (by :func:`gateway.app.audit_checkpoints.create_checkpoint`)
    console.*             the console's own events, as it names them (:func:`record`)
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from gateway.app.audit_checkpoints import (
    Checkpoint,
    CompromiseCover,
    TrailVerification,
    create_checkpoint,
    verify_trail,
)
from gateway.app.context import AppContext, require
from gateway.app.signing import timestamper
from gateway.crypto.keys.generations import Signer, always_in_force
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import KeyRole, KeyStore, SigningKey
from gateway.crypto.statements import crl_signers, verify_statement
from gateway.crypto.trust import TrustList
from gateway.exchange.service import Action
from gateway.model.numbers import whole_number
from gateway.store import audit as audit_store
from gateway.store import read_purposes
from gateway.store.audit import AuditEvent, AuditVerification, event_hash
from gateway.store.audit_events import AUDIT_EVENTS

__all__ = [
    "SEALED_KEY",
    "AuditEvent",
    "AuditQuery",
    "AuditVerification",
    "PurposeReader",
    "TrailHead",
    "checkpoint",
    "events_in_range",
    "export_lines",
    "off_node_seal",
    "parse_bound",
    "record",
    "seal_signers",
    "search",
    "trail_head",
    "unknown_kind",
    "verify",
    "verify_export",
    "verify_export_lines",
]

SEALED_KEY = read_purposes.SEALED_KEY
"""The details key of a purpose sealed in a read event: shown as ``(sealed)``."""


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """The audit page's filters (each optional)."""

    kind: str | None = None
    """An event code (``console.signed_in``) or, ending in a dot, a family (``console.``)."""
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    """Exclusive."""


@dataclass(frozen=True, slots=True)
class TrailHead:
    seq: int
    hash: bytes


def search(
    ctx: AppContext, query: AuditQuery, *, before: int | None, limit: int
) -> list[AuditEvent]:
    """Events matching ``query`` with ``seq < before``, newest first, at most ``limit``."""
    require(ctx, Action.READ_AUDIT)
    with ctx.store.read() as conn:
        return audit_store.search(
            conn,
            kind=query.kind,
            actor=query.actor,
            since=query.since,
            until=query.until,
            before=before,
            limit=limit,
        )


def seal_signers(ctx: AppContext) -> tuple[Signer, ...]:
    """Every seal generation of this node (from the key manifest) with the window it could
    sign in: a report or checkpoint made before a rotation was signed by an earlier generation
    and must still verify; one claiming a time after its generation's revocation must not.
    From the context's keys (a server's), else from its configuration's key folder (a
    command's); none when it has neither."""
    if ctx.keys is not None:
        return ctx.keys.signers(KeyRole.SEAL)
    if ctx.config is None:
        return ()
    keys = KeyStore.from_config(ctx.config)
    try:
        return keys.signers(KeyRole.SEAL)
    finally:
        keys.close()


VERIFIED = "audit.verified"


def verify(ctx: AppContext, extra: Sequence[tuple[Checkpoint, str]] = ()) -> TrailVerification:
    """Verify the whole trail — the hash chain, every stored signed checkpoint against the
    node's seal generations, and the ``extra`` checkpoints kept off the node (``gateway audit
    verify --checkpoint``), the purge reports and the tombstones — and record that it was
    verified, and with what outcome (``audit.verified``)."""
    require(ctx, Action.READ_AUDIT)
    result = verify_trail(ctx.store, seal_signers(ctx), extra, TrustList.configured(ctx.config))
    with ctx.store.transaction() as conn:
        ctx.audit(
            conn,
            VERIFIED,
            details={
                "intact": result.intact,
                "events_checked": result.chain.events_checked,
                "checkpoints_checked": result.checkpoints_checked,
                "broken_at": result.broken_at,
                "tampering": result.tampering,
            },
        )
    return result


def checkpoint(ctx: AppContext, seal: SigningKey) -> Checkpoint:
    """Sign the chain's head now: ``gateway audit checkpoint`` appends its line
    (:func:`~gateway.app.audit_checkpoints.checkpoint_file_line`) to a file kept off the node,
    the local API and the console hand the line to their caller to keep there."""
    require(ctx, Action.READ_AUDIT)
    stamper = timestamper(ctx.config) if ctx.config is not None else None
    return create_checkpoint(
        ctx.store, seal, actor=ctx.actor.code, now=ctx.clock(), timestamper=stamper
    )


def trail_head(ctx: AppContext) -> TrailHead:
    require(ctx, Action.READ_AUDIT)
    with ctx.store.read() as conn:
        seq, digest = audit_store.head(conn)
    return TrailHead(seq, digest)


def events_in_range(
    ctx: AppContext,
    *,
    seq_from: int | None = None,
    seq_to: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[AuditEvent]:
    """Events in ``seq_from <= seq <= seq_to`` and ``since <= at < until``, oldest first, read
    a page at a time (each page its own short read)."""
    require(ctx, Action.READ_AUDIT)
    after = (seq_from - 1) if seq_from else 0
    while True:
        with ctx.store.read() as conn:
            page = audit_store.events_in_range(
                conn, after_seq=after, up_to_seq=seq_to, since=since, until=until
            )
        yield from page
        if len(page) < audit_store.VERIFY_BATCH:
            return
        after = page[-1].seq


def unknown_kind(kind: str, *, prefix: bool = False) -> str | None:
    """Why ``kind`` cannot filter the trail (it is no event's code: a typo would find nothing
    and look like "nothing happened"), naming the nearest codes; None for a registered kind
    (``prefix``: or a family of them ending in a dot, as the console's filter takes
    ``console.``)."""
    family = prefix and kind.endswith(".") and any(k.startswith(kind) for k in AUDIT_EVENTS)
    if kind in AUDIT_EVENTS or family:
        return None
    near = difflib.get_close_matches(kind, list(AUDIT_EVENTS), n=3, cutoff=0.6)
    hint = f"; возможно: {', '.join(near)}" if near else ""
    return (
        f"«{kind}» — не вид события журнала{hint} (все виды: docs/purge-and-audit.md, «The events»)"
    )


def parse_bound(text: str | None) -> tuple[int | None, datetime | None]:
    """One end of a range of the trail: an event number (``120``) or an ISO 8601 time
    (``2026-11-01``; no zone means UTC). Raises ValueError for anything else."""
    if text is None or not text.strip():
        return None, None
    seq = whole_number(text, 19)
    if seq is not None:
        return seq, None
    value = datetime.fromisoformat(text)
    return None, (value if value.tzinfo else value.replace(tzinfo=UTC))


EXPORT_FORMAT = "gateway-audit-export/1"
EXPORTED = "audit.exported"
HASH_RULE = (
    "sha256(prev_hash || canonical_json({seq, at, actor, kind, subjects, details})); canonical: "
    "sorted keys, no spaces, UTF-8; at: UTC ISO 8601 with microseconds"
)


def export_lines(
    ctx: AppContext,
    *,
    seq_from: int | None = None,
    seq_to: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    purposes: PurposeReader | None = None,
) -> Iterator[str]:
    """A segment of the trail as JSON Lines (no line ends): a header naming the node, the
    chain's head and the hash rule, then one line per event with its hashes, so that
    :func:`verify_export` checks it away from the node. With ``purposes`` each read's purpose
    goes in clear beside its details (the hash covers the sealed text, which stays). When the
    last line has been taken the export is recorded (``audit.exported``), and so is the opening
    of purposes (``audit.purposes.read``)."""
    require(ctx, Action.READ_AUDIT)
    head = trail_head(ctx)
    yield json.dumps(
        {
            "format": EXPORT_FORMAT,
            "body_id": ctx.config.node.body_id if ctx.config is not None else None,
            "exported_at": ctx.clock().isoformat(),
            "head_seq": head.seq,
            "head_hash": head.hash.hex(),
            "hash_rule": HASH_RULE,
            "purposes_decrypted": purposes is not None,
        },
        ensure_ascii=False,
    )
    written, first, last = 0, None, None
    for e in events_in_range(ctx, seq_from=seq_from, seq_to=seq_to, since=since, until=until):
        yield _event_line(e, purposes.text(e) if purposes else None)
        written, first, last = written + 1, first or e.seq, e.seq
    if purposes is not None:
        purposes.record("export")
    record_event(
        ctx,
        EXPORTED,
        {
            "events": written,
            "from_seq": first,
            "to_seq": last,
            "purposes_decrypted": purposes is not None,
        },
    )


def _event_line(e: AuditEvent, purpose: str | None = None) -> str:
    line: dict[str, Any] = {
        "seq": e.seq,
        "at": e.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": e.actor,
        "kind": e.kind,
        "subjects": dict(e.subjects),
        "details": dict(e.details),
        "prev_hash": e.prev_hash.hex(),
        "hash": e.hash.hex(),
    }
    if purpose is not None:
        # Beside the details, not in them: the hash covers the sealed text, which stays.
        line["purpose"] = purpose
    return json.dumps(line, ensure_ascii=False, sort_keys=True)


def record_event(ctx: AppContext, kind: str, details: dict[str, Any]) -> None:
    """Append one event of the actor's doing, in a transaction of its own."""
    with ctx.store.transaction() as conn:
        ctx.audit(conn, kind, details=details)


def record(ctx: AppContext, kind: str, details: dict[str, Any]) -> None:
    """Append one event of the actor's own doing (the console's ``console.*`` events), in a
    transaction of its own. Recording what someone did needs no role."""
    record_event(ctx, kind, details)


class PurposeReader:
    """Opens the purposes sealed in read events (CIS Art. 9.1) for an auditor and counts what
    it opened; :meth:`record` puts that count in the trail."""

    def __init__(self, ctx: AppContext, ring: KekRing) -> None:
        require(ctx, Action.READ_AUDIT)
        self.ctx = ctx
        self.ring = ring
        self.opened = 0
        self.unreadable = 0

    def text(self, e: AuditEvent) -> str | None:
        """The event's purpose in clear; None when it records none; a note when it cannot be
        opened (altered, or sealed under a KEK since destroyed)."""
        if not read_purposes.has_sealed_purpose(e.details):
            return None
        try:
            purpose = read_purposes.open_purpose(
                e.details, self.ring, kind=e.kind, actor=e.actor, subjects=e.subjects
            )
        except read_purposes.PurposeUnreadable as exc:
            self.unreadable += 1
            return f"[не читается: {exc}]"
        self.opened += 1
        return purpose

    def record(self, command: str) -> None:
        """Reading the purposes is a use of personal data too: recorded."""
        with self.ctx.store.transaction() as conn:
            self.ctx.audit(
                conn,
                "audit.purposes.read",
                details={"command": command, "opened": self.opened, "unreadable": self.unreadable},
            )


@dataclass(frozen=True, slots=True)
class ExportCheck:
    checked: int
    broken_at: int | None
    """The first event that does not check (None: none)."""
    reason: str

    @property
    def intact(self) -> bool:
        return self.broken_at is None and not self.reason


@dataclass(frozen=True, slots=True)
class OffNodeSeal:
    """The body's seal as an auditor away from the node knows it (``verify-export``)."""

    signers: tuple[Signer, ...]
    trust: TrustList | None
    """The CA certificates and CRLs given: they judge the CRLs and the checkpoints' TSA
    tokens."""
    revocations_as_of: datetime | None
    """The date of the CRLs the revocations were read from; None: no CRL given, every seal
    certificate is taken as never revoked."""
    revocations_until: datetime | None = None
    """When those CRLs promised their successors: past it, the auditor's copy is stale."""


def off_node_seal(
    seal: Sequence[x509.Certificate],
    authorities: Sequence[x509.Certificate] = (),
    crls: Sequence[x509.CertificateRevocationList] = (),
) -> OffNodeSeal:
    """The seal certificates with their revocations from their CA's CRLs (``crls``, verified
    by ``authorities``). Raises ValueError naming what is missing: CRLs without the CA that
    signs them, a certificate no given CA issued, an issuer without a CRL."""
    if crls and not authorities:
        raise ValueError("a CRL is trusted only with the certificate of the CA that signs it")
    trust = TrustList(authorities, crls) if authorities else None
    if trust is None or not crls:
        return OffNodeSeal(always_in_force(seal), trust, None)
    known = crl_signers(seal, trust)
    return OffNodeSeal(known.signers, trust, known.as_of, known.next_update)


def verify_export(
    lines: list[str],
    checkpoints: Sequence[tuple[Checkpoint, str]] = (),
    signers: Sequence[Signer] = (),
    trust: TrustList | None = None,
) -> ExportCheck:
    """Check an exported segment away from the node (``gateway audit verify-export``): its
    format, each event's hash, and each signed checkpoint kept off the node (its signature by
    one of the body's seal certificates, ``signers``, as the auditor obtained them — the
    certificate stored beside a checkpoint proves nothing by itself — inside the window its
    revocation leaves, and the hash it signed where the segment holds that event: a tail
    rewritten since shows). A checkpoint of a seal revoked for key compromise proves nothing
    by itself: a later one of a trusted seal among ``checkpoints`` must cover its events, or
    its TSA token, valid under ``trust``, must predate the revocation. Raises ValueError when
    ``lines`` is not an export, or when checkpoints are given without the seal to judge them
    by."""
    if checkpoints and not signers:
        raise ValueError("checkpoints are judged by the body's seal certificates: none given")
    header = json.loads(lines[0]) if lines else {}
    if header.get("format") != EXPORT_FORMAT:
        raise ValueError(f"not a {EXPORT_FORMAT} file")
    checked, broken, reason = verify_export_lines(lines)
    if broken is not None:
        return ExportCheck(checked, broken, reason)
    events = (json.loads(line) for line in lines[1:] if line.strip())
    hashes = {int(e["seq"]): e["hash"] for e in events}
    cover = CompromiseCover(trust)
    for checkpoint, where in checkpoints:
        signed = checkpoint.signed
        check = verify_statement(signed.statement, signed.signature, signed.certificate, signers)
        if not check.ok and check.compromised_at is None:
            return ExportCheck(checked, None, f"checkpoint {where}: {check.reason}")
        if checkpoint.seq in hashes and hashes[checkpoint.seq] != checkpoint.hash.hex():
            return ExportCheck(
                checked,
                checkpoint.seq,
                f"checkpoint {where} signed another hash (the tail was rewritten)",
            )
        cover.add(checkpoint, check, f"checkpoint {where}")
    uncovered = cover.uncovered("ask the body for one signed since by its seal in force")
    return ExportCheck(checked, None, "" if uncovered is None else uncovered[1])


def verify_export_lines(lines: list[str]) -> tuple[int, int | None, str]:
    """Re-check an exported segment: each event's hash from its content and its predecessor's
    hash. Returns ``(events checked, broken seq or None, reason)``. The first event's own
    ``prev_hash`` is taken on trust (it is the hash of the event before the segment)."""
    checked = 0
    prev: tuple[int, bytes] | None = None
    for line in lines[1:]:
        if not line.strip():
            continue
        e = json.loads(line)
        seq = int(e["seq"])
        prev_hash = bytes.fromhex(e["prev_hash"])
        if prev is not None:
            if seq != prev[0] + 1:
                return checked, prev[0] + 1, f"event {prev[0] + 1} is missing (deleted)"
            if prev_hash != prev[1]:
                return checked, seq, f"event {seq} does not follow event {seq - 1}"
        digest = event_hash(
            prev_hash,
            seq,
            datetime.fromisoformat(e["at"]),
            e["actor"],
            e["kind"],
            json.dumps(e["subjects"]),
            json.dumps(e["details"]),
        )
        if digest.hex() != e["hash"]:
            return checked, seq, f"event {seq} was modified: its hash does not match its content"
        prev = (seq, digest)
        checked += 1
    return checked, None, ""

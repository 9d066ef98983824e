"""The audit trail as use cases: search it, verify it (chain, checkpoints, an exported segment),
export or show a range, sign a checkpoint, open the purposes stated for reads, and record the
console's own events.

``gateway audit``, the local API's ``/api/v1/audit/…`` and the console's audit page call these
functions; what they print or render is theirs. Reading the trail needs the ``auditor`` role
(:data:`Action.READ_AUDIT`); the command line's actor holds every role.

Audit events written here::

    audit.verified        details intact, events_checked, checkpoints_checked, broken_at,
                          tampering
    audit.purposes.read   details command, opened, unreadable
    audit.checkpoint      (by :func:`gateway.app.audit_checkpoints.create_checkpoint`)
    console.*             the console's own events, as it names them (:func:`record`)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from gateway.app.audit_checkpoints import (
    Checkpoint,
    TrailVerification,
    create_checkpoint,
    verify_trail,
)
from gateway.app.context import ACTOR_CHARS, AppContext, require
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import KeyRole, KeyStore, SigningKey
from gateway.exchange.service import Action
from gateway.store import audit as audit_store
from gateway.store import read_purposes
from gateway.store.audit import AuditEvent, AuditVerification, event_hash

__all__ = [
    "SEALED_KEY",
    "AuditEvent",
    "AuditQuery",
    "AuditVerification",
    "PurposeReader",
    "TrailHead",
    "checkpoint",
    "events_in_range",
    "record",
    "seal_certificates",
    "search",
    "trail_head",
    "verify",
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


def seal_certificates(ctx: AppContext) -> list[x509.Certificate]:
    """Every seal generation of this node (from the key manifest): a report or checkpoint made
    before a rotation was signed by an earlier generation and must still verify. From the
    context's keys (a server's), else from its configuration's key folder (a command's); none
    when it has neither."""
    if ctx.keys is not None:
        return ctx.keys.generation_certificates(KeyRole.SEAL)
    if ctx.config is None:
        return []
    keys = KeyStore.from_config(ctx.config)
    try:
        return keys.generation_certificates(KeyRole.SEAL)
    finally:
        keys.close()


VERIFIED = "audit.verified"


def verify(ctx: AppContext, extra: Sequence[tuple[Checkpoint, str]] = ()) -> TrailVerification:
    """Verify the whole trail — the hash chain, every stored signed checkpoint against the
    node's seal generations, and the ``extra`` checkpoints kept off the node (``gateway audit
    verify --checkpoint``), the purge reports and the tombstones — and record that it was
    verified, and with what outcome (``audit.verified``)."""
    require(ctx, Action.READ_AUDIT)
    result = verify_trail(ctx.store, seal_certificates(ctx), extra)
    with ctx.store.transaction() as conn:
        audit_store.append(
            conn,
            now=ctx.clock(),
            actor=ctx.actor.name[:ACTOR_CHARS],
            kind=VERIFIED,
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
    """Sign the chain's head now (``gateway audit checkpoint``)."""
    require(ctx, Action.READ_AUDIT)
    return create_checkpoint(ctx.store, seal, actor=ctx.actor.name[:ACTOR_CHARS], now=ctx.clock())


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


def record(ctx: AppContext, kind: str, details: dict[str, Any]) -> None:
    """Append one event of the actor's own doing (the console's ``console.*`` events), in a
    transaction of its own. Recording what someone did needs no role."""
    with ctx.store.transaction() as conn:
        audit_store.append(
            conn, now=ctx.clock(), actor=ctx.actor.name[:ACTOR_CHARS], kind=kind, details=details
        )


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
            audit_store.append(
                conn,
                now=self.ctx.clock(),
                actor=self.ctx.actor.name[:ACTOR_CHARS],
                kind="audit.purposes.read",
                subjects={},
                details={"command": command, "opened": self.opened, "unreadable": self.unreadable},
            )


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

"""Signed audit checkpoints.

The audit chain (``gateway.store.audit``) shows any edit *inside* it, but nothing keyless can
show that its tail was cut off and rewritten with fresh hashes: whoever can write the database
can recompute every hash after the cut. A *checkpoint* is the chain head (seq, hash, time)
signed by the body's seal, whose private key is not in the database (a file under the key
passphrase, or a token). Verifying the chain against every stored checkpoint finds a tail that
was truncated (the checkpointed event is gone) or rewritten (its hash differs). Copy
checkpoints off the node (``gateway audit checkpoint --out``) so that deleting the newest ones
in the database is found too (``gateway audit verify --checkpoint FILE``).

A checkpoint is a detached seal signature over canonical JSON (``gateway.crypto.statements``),
the format purge reports use too.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from gateway.app.tombstone_check import check_tombstones
from gateway.crypto.keys.generations import Signer
from gateway.crypto.keys.keystore import SigningKey
from gateway.crypto.statements import (
    CHECKPOINT_FORMAT,
    SignedStatement,
    StatementCheck,
    canonical_json,
    sign_statement,
    verify_statement,
)
from gateway.crypto.timestamps import timestamp_or_none, timestamped_before
from gateway.crypto.trust import TrustList
from gateway.store import Store
from gateway.store import audit as audit_store

CHECKPOINT_KIND = "audit.checkpoint"
"""Audit event appended after each checkpoint (the next checkpoint covers it)."""


# --- checkpoints ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    checkpoint_id: int
    seq: int
    hash: bytes
    at: datetime
    signed: SignedStatement
    timestamp: bytes | None = None
    """An RFC 3161 token (DER) over the SHA-256 of the signature, when the node has a TSA: it
    proves when the checkpoint existed even once its seal is revoked for key compromise."""


def _statement_for(body_id: str, seq: int, digest: bytes, at: datetime) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "body_id": body_id,
        "seq": seq,
        "hash": digest.hex(),
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
    }


def create_checkpoint(
    store: Store, seal: SigningKey, *, actor: str, now: datetime, timestamper: Any = None
) -> Checkpoint:
    """Sign the current chain head and store it; then append an ``audit.checkpoint`` event (so
    the checkpoint itself is in the chain that the next checkpoint covers). One transaction:
    the head cannot move between reading and signing. With ``timestamper`` (``[tsa] url``),
    the TSA's token over the signature is fetched after that transaction — never while it
    holds the write lock — and kept with the checkpoint; a TSA that does not answer leaves
    the checkpoint without one (logged)."""
    with store.transaction() as conn:
        seq, digest = audit_store.head(conn)
        signed = sign_statement(seal, _statement_for(seal.body_id, seq, digest, now))
        checkpoint_id = audit_store.store_checkpoint(
            conn,
            seq=seq,
            hash=digest,
            at=now,
            statement=signed.statement,
            signature=signed.signature,
            certificate=signed.certificate,
        )
        audit_store.append(
            conn,
            now=now,
            actor=actor,
            kind=CHECKPOINT_KIND,
            subjects={"checkpoint_id": str(checkpoint_id)},
            details={"seq": seq, "hash": digest.hex()},
        )
    made = Checkpoint(checkpoint_id, seq, digest, now, signed)
    return made if timestamper is None else _timestamped(store, made, timestamper)


def _timestamped(store: Store, checkpoint: Checkpoint, timestamper: Any) -> Checkpoint:
    what = f"audit checkpoint {checkpoint.checkpoint_id}"
    token = timestamp_or_none(checkpoint.signed.signature, timestamper, what)
    if token is None:
        return checkpoint
    with store.transaction() as conn:
        audit_store.set_checkpoint_timestamp(conn, checkpoint.checkpoint_id, token)
    return replace(checkpoint, timestamp=token)


def checkpoint_file_line(checkpoint: Checkpoint) -> str:
    """One JSON line to keep off the node (``--out``): statement, signature and certificate,
    and the TSA's token when there is one."""
    line = {
        "statement": checkpoint.signed.statement,
        "signature": checkpoint.signed.signature.hex(),
        "certificate": checkpoint.signed.certificate.hex(),
    }
    if checkpoint.timestamp is not None:
        line["timestamp"] = checkpoint.timestamp.hex()
    return canonical_json(line)


def parse_checkpoint_line(line: str, where: str) -> Checkpoint:
    """A checkpoint read back from a file written with :func:`checkpoint_file_line`.
    Raises ValueError naming ``where`` (file and line)."""
    try:
        outer = json.loads(line)
        statement = outer["statement"]
        inner = json.loads(statement)
        if inner.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format is not {CHECKPOINT_FORMAT}")
        return Checkpoint(
            0,
            int(inner["seq"]),
            bytes.fromhex(inner["hash"]),
            datetime.fromisoformat(inner["at"]),
            SignedStatement(
                statement, bytes.fromhex(outer["signature"]), bytes.fromhex(outer["certificate"])
            ),
            bytes.fromhex(outer["timestamp"]) if "timestamp" in outer else None,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{where}: not a checkpoint line ({exc})") from None


def stored_checkpoints(store: Store) -> Iterator[Checkpoint]:
    """Every stored checkpoint, oldest first, read in pages."""
    after = 0
    while True:
        with store.read() as conn:
            page = audit_store.checkpoints(conn, after_id=after)
        for c in page:
            yield Checkpoint(
                c.checkpoint_id,
                c.seq,
                c.hash,
                c.at,
                SignedStatement(c.statement, c.signature, c.certificate),
                c.timestamp,
            )
        if len(page) < audit_store.VERIFY_BATCH:
            return
        after = page[-1].checkpoint_id


@dataclass(frozen=True, slots=True)
class TrailVerification:
    """The audit trail checked: the chain, then every checkpoint against it."""

    chain: audit_store.AuditVerification
    checkpoints_checked: int
    broken_at: int | None
    """Seq of the first problem (chain or checkpoint); None: intact."""
    tampering: str
    """Kind code (see ``AuditVerification.tampering``; ``checkpoint`` for a bad signature)."""
    reason: str

    @property
    def intact(self) -> bool:
        return self.broken_at is None

    @property
    def events_checked(self) -> int:
        return self.chain.events_checked

    @property
    def last_seq(self) -> int:
        return self.chain.last_seq

    def summary(self) -> str:
        if self.intact:
            return (
                f"audit trail intact: {self.chain.events_checked} events (last seq "
                f"{self.chain.last_seq}), {self.checkpoints_checked} signed checkpoints"
            )
        return f"audit trail BROKEN at event {self.broken_at} ({self.tampering}): {self.reason}"


def check_checkpoint(
    store: Store,
    checkpoint: Checkpoint,
    last_seq: int,
    check: StatementCheck,
    origin: str,
) -> tuple[int, str, str] | None:
    """``(seq, kind, reason)`` of the first problem this checkpoint reveals (``check``: its
    statement verified against this body's seal generations), or None. One of a generation
    revoked for key compromise is compared with the chain like any other, but it proves nothing
    by itself: :func:`verify_trail` asks a trusted checkpoint to cover it."""
    if not check.ok and check.compromised_at is None:
        return (checkpoint.seq, "checkpoint", f"{origin} (seq {checkpoint.seq}): {check.reason}")
    # The row's columns may be edited apart from the signed statement: trust only the latter.
    signed = json.loads(checkpoint.signed.statement)
    seq, digest = int(signed["seq"]), bytes.fromhex(signed["hash"])
    if seq == 0:
        return None
    if seq > last_seq:
        return (
            last_seq + 1,
            "truncated",
            f"{origin} signed the chain up to event {seq} on {signed['at']}, but the chain "
            f"ends at event {last_seq}: events {last_seq + 1}..{seq} were deleted",
        )
    with store.read() as conn:
        event = audit_store.event_at(conn, seq)
    if event is None or event.hash != digest:
        return (
            seq,
            "rewritten",
            f"{origin} signed event {seq} with hash {digest.hex()[:16]}…, the stored event "
            f"{seq} has another hash: the chain was rewritten at or before event {seq} "
            "(truncated and re-appended)",
        )
    return None


@dataclass(slots=True)
class CompromiseCover:
    """Which checkpoints of a seal revoked for key compromise a trusted one covers: such a
    checkpoint proves nothing by itself — whoever holds the key writes any time into it — so
    the events it alone attests need a later checkpoint of a trusted seal, or its own TSA
    token from before the revocation (``gateway audit verify`` on the node and ``audit
    verify-export`` away from it judge alike)."""

    trust: TrustList | None
    """Judges the checkpoints' TSA tokens (None: a token counts for nothing)."""
    trusted_head: int = 0
    """The last event a trusted checkpoint attests."""
    suspect: list[tuple[int, str]] = field(default_factory=list)
    """(event the checkpoint attests, why it is suspect) of each compromised one."""

    def add(self, checkpoint: Checkpoint, check: StatementCheck, origin: str) -> None:
        """Count a checkpoint whose statement passed, or failed only for the compromise."""
        signed = checkpoint.signed
        seq = int(json.loads(signed.statement)["seq"])
        if check.compromised_at is not None and not timestamped_before(
            checkpoint.timestamp, signed.signature, check.compromised_at, self.trust
        ):
            self.suspect.append((seq, f"{origin} (seq {seq}): {check.reason}"))
        else:
            self.trusted_head = max(self.trusted_head, seq)

    def uncovered(self, remedy: str) -> tuple[int, str] | None:
        """The event of the first compromised checkpoint no trusted one covers, and why, with
        what to do (``remedy``); None when all are covered."""
        for seq, why in self.suspect:
            if seq > self.trusted_head:
                return seq, (
                    f"{why}; no checkpoint of a trusted seal covers its events (the latest "
                    f"trusted one ends at event {self.trusted_head}): {remedy}"
                )
        return None


def verify_trail(
    store: Store,
    signers: Sequence[Signer] = (),
    extra: Sequence[tuple[Checkpoint, str]] = (),
    trust: TrustList | None = None,
) -> TrailVerification:
    """Verify the chain, then every stored checkpoint and the ``extra`` ones (read from files
    kept off the node, each with its origin for messages), against this body's seal
    generations (``signers``). Reports the first problem. A checkpoint signed by a generation
    revoked for key compromise must be covered by a later one of a trusted generation — the
    events it alone attests are otherwise the key holder's word — unless its TSA timestamp,
    valid under ``trust``, shows it existed before the revocation."""
    with store.read() as conn:
        chain = audit_store.verify(conn)
    if not chain.intact:
        return TrailVerification(chain, 0, chain.broken_at, chain.tampering, chain.reason)
    count = 0
    cover = CompromiseCover(trust)
    stored = ((c, f"checkpoint {c.checkpoint_id}") for c in stored_checkpoints(store))
    for checkpoint, origin in itertools.chain(stored, extra):
        signed = checkpoint.signed
        check = verify_statement(signed.statement, signed.signature, signed.certificate, signers)
        problem = check_checkpoint(store, checkpoint, chain.last_seq, check, origin)
        if problem is not None:
            seq, kind, reason = problem
            return TrailVerification(chain, count, seq, kind, reason)
        cover.add(checkpoint, check, origin)
        count += 1
    uncovered = cover.uncovered(
        "sign one now with `gateway audit checkpoint --config NODE.toml`, so that the chain as "
        "it stands is attested by the seal in force"
    )
    if uncovered is not None:
        return TrailVerification(chain, count, uncovered[0], "checkpoint-untrusted", uncovered[1])
    problem = _check_purge_reports(store)
    if problem is not None:
        seq, kind, reason = problem
        return TrailVerification(chain, count, seq, kind, reason)
    tombstone = check_tombstones(store)
    if tombstone is not None:
        return TrailVerification(chain, count, tombstone.seq, tombstone.kind, tombstone.reason)
    return TrailVerification(chain, count, None, "", "")


def _check_purge_reports(store: Store) -> tuple[int, str, str] | None:
    """Each purge run's closing event names the SHA-256 of its signed report: a report row
    deleted, replaced or edited since no longer matches the (verified) chain."""
    from gateway.store import purge as purge_store

    after = 0
    closing = ("purge.finished", "purge.failed")
    with store.read() as conn:
        while batch := audit_store.events(conn, after_seq=after, kinds=closing):
            after = batch[-1].seq
            for event in batch:
                expected_hash = event.details.get("report_sha256")
                if not expected_hash:  # a run closed before reports were bound to the chain
                    continue
                run_id = event.subjects.get("purge_run_id", "")
                report = purge_store.get_report(conn, run_id)
                if report is None:
                    return event.seq, "report-deleted", f"purge run {run_id}: its report is gone"
                actual = hashlib.sha256(report.report.encode()).hexdigest()
                if actual != expected_hash:
                    return (
                        event.seq,
                        "report-modified",
                        f"purge run {run_id}: the stored report is not the one the chain names",
                    )
    return None

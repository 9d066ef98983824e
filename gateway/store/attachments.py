"""Attachments at rest: staged while they stream in, linked to their message, read back in
segments. Memory stays bounded by a batch of segments whatever the attachment's size.

Life of an attachment (gateway.crypto.segments for the cryptography):

1. :func:`begin` — a row with a fresh part key wrapped by the KEK ring, not complete.
2. :func:`write` (any number of times, each batch its own transaction so a slow upload holds
   no lock) and :func:`finish` — size and SHA-256 recorded, complete.
3. :func:`link` — in the transaction that stores the message: the part key re-wrapped under the
   message's data key, so purge and crypto-shredding of the message cover the attachment.

Staged attachments never linked (an upload never submitted, a delivery refused, a process
killed mid-stream) are deleted by :func:`discard` and, after :data:`STAGED_LIFETIME`, by
:func:`sweep_staged` (run by the purge job).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection

from gateway.crypto import at_rest, segments
from gateway.crypto.at_rest import WrappedKey
from gateway.crypto.keys.kek import KekRing
from gateway.model.ids import time_ordered_uuid
from gateway.store import audit
from gateway.store.dialect import in_text_set
from gateway.store.messages import data_key
from gateway.store.tables import attachment_segments, attachments

if TYPE_CHECKING:
    from _typeshed import WritableBuffer

READ_BATCH_SEGMENTS = 32
"""Segments read per query when streaming out (2 MiB of plaintext): on PostgreSQL 1 MiB per
read transaction streamed at ~13 MB/s, 4 MiB at ~21 MB/s but with +60 MB resident; two
batches are in memory at once."""

_BATCH_BYTES = READ_BATCH_SEGMENTS * segments.SEGMENT_BYTES

STAGED_LIFETIME = timedelta(days=1)
"""An upload not referenced by a submission within a day is deleted."""

_META_DOMAIN = b"cis-exchange/attachment-meta/1"


class AttachmentNotFound(LookupError):
    """No such attachment, or not in the state the caller needs (named in the message)."""


@dataclass(frozen=True, slots=True)
class AttachmentMeta:
    name: str
    media_type: str
    language: str | None = None
    sealed_as: str | None = None
    """A part received sealed (a confidential conversation's): the sender's attachment id its
    segments are bound to, kept because they are stored as they came (not sealed again)."""


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    attachment_id: str
    meta: AttachmentMeta
    size: int
    sha256: bytes
    message_id: str | None
    ordinal: int | None


@dataclass(slots=True)
class Staging:
    """An attachment being written: its id and the sealing state (part key in memory)."""

    attachment_id: str
    writer: segments.SegmentWriter


def _meta_aad(attachment_id: str) -> bytes:
    return _META_DOMAIN + b"\x00" + attachment_id.encode()


def _seal_meta(
    key: bytes,
    attachment_id: str,
    meta: AttachmentMeta,
    check: Mapping[str, Any] | None = None,
) -> tuple[bytes, bytes]:
    nonce = secrets.token_bytes(12)
    sealed: list[Any] = [meta.name, meta.media_type, meta.language]
    if check is not None or meta.sealed_as is not None:
        sealed.append(dict(check) if check is not None else None)
    if meta.sealed_as is not None:
        sealed.append(meta.sealed_as)
    text = json.dumps(sealed, ensure_ascii=False).encode()
    return nonce, AESGCM(key).encrypt(nonce, text, _meta_aad(attachment_id))


def _open_sealed(
    key: bytes, attachment_id: str, nonce: bytes, sealed: bytes
) -> tuple[AttachmentMeta, dict[str, Any] | None]:
    try:
        name, media_type, language, *rest = json.loads(
            AESGCM(key).decrypt(nonce, sealed, _meta_aad(attachment_id))
        )
    except Exception:
        raise at_rest.DecryptionFailed(
            f"attachment {attachment_id}: its sealed name and type failed authentication"
        ) from None
    sealed_as = rest[1] if len(rest) > 1 else None
    return AttachmentMeta(name, media_type, language, sealed_as), (rest[0] if rest else None)


def _open_meta(key: bytes, attachment_id: str, nonce: bytes, sealed: bytes) -> AttachmentMeta:
    return _open_sealed(key, attachment_id, nonce, sealed)[0]


MAX_CHECK_BYTES = 64 * 1024
"""A recorded check names a few signatures; more is not a check."""


def record_check(conn: Connection, opened: Reader, check: Mapping[str, Any]) -> None:
    """Keep ``check`` (the latest verification of the attachment's signatures, as JSON) sealed
    with its name and type under its part key: encrypted, and destroyed with the message's
    data key like the file itself. Replaces the one recorded before."""
    if len(json.dumps(dict(check), ensure_ascii=False).encode()) > MAX_CHECK_BYTES:
        raise ValueError(f"check: over {MAX_CHECK_BYTES} bytes")
    attachment_id = opened.info.attachment_id
    nonce, sealed = _seal_meta(opened.key, attachment_id, opened.info.meta, check)
    conn.execute(
        attachments.update()
        .where(attachments.c.attachment_id == attachment_id)
        .values(meta_nonce=nonce, meta=sealed)
    )


def recorded_checks(conn: Connection, message_id: str, keys: KekRing) -> dict[int, dict[str, Any]]:
    """The latest recorded check of each of the message's attachments, by number (1-based,
    the signed list's order); those never checked are absent."""
    out: dict[int, dict[str, Any]] = {}
    for number, row in enumerate(_rows_of(conn, message_id), start=1):
        key = _part_key(conn, row, keys)
        _, check = _open_sealed(key, row.attachment_id, row.meta_nonce, row.meta)
        if check is not None:
            out[number] = check
    return out


def begin(
    conn: Connection,
    meta: AttachmentMeta,
    keys: KekRing,
    now: datetime,
    upload_length: int | None = None,
    held: HeldClaim | None = None,
) -> Staging:
    """A new staged attachment; write its bytes with :func:`write`, then :func:`finish`.
    ``upload_length``: a resumable upload's declared whole length (:func:`resume`); ``held``: a
    peer's part held for its delivery's retry (its length is the claim's)."""
    if held is not None:
        upload_length = held.length
    attachment_id = time_ordered_uuid()
    key = segments.new_part_key()
    prefix = segments.new_prefix()
    wrapped = at_rest.wrap_data_key(key, keys)
    meta_nonce, sealed = _seal_meta(key, attachment_id, meta)
    conn.execute(
        attachments.insert().values(
            attachment_id=attachment_id,
            message_id=None,
            ordinal=None,
            complete=False,
            size=0,
            sha256=None,
            segment_prefix=prefix,
            kek_id=wrapped.kek_id,
            wrapped_key=wrapped.blob,
            meta_nonce=meta_nonce,
            meta=sealed,
            created_at=now,
            upload_length=upload_length,
            held_for=held.peer if held is not None else None,
            claimed_sha256=held.sha256 if held is not None else None,
        )
    )
    return Staging(attachment_id, segments.SegmentWriter(key, prefix, attachment_id))


@dataclass(frozen=True, slots=True)
class UploadState:
    """Where a resumable upload stands: ``offset`` bytes of its declared ``length`` are stored
    (whole segments: the next part starts there); complete once the last part came, with the
    file's SHA-256."""

    attachment_id: str
    length: int
    offset: int
    complete: bool
    sha256: bytes | None


@dataclass(frozen=True, slots=True)
class HeldClaim:
    """A peer's part as its delivery declared it before the bytes (``Upload-Length``,
    ``Repr-Digest``): what its held bytes are found by when the delivery is retried. Not
    trusted: the part is compared with the signed header once the document is verified."""

    peer: str
    length: int
    sha256: bytes
    sealed: bool = False
    """A part received sealed (its records stored as they came): ``length`` is the sealed
    stream's and ``sha256`` names its sealing (:func:`sealed_claim`), not its bytes."""

    @property
    def unit(self) -> int:
        """What its held bytes are counted in: whole stored segments, or records as sent."""
        return segments.RECORD_BYTES if self.sealed else segments.SEGMENT_BYTES


_SEALED_PART_DOMAIN = b"cis-exchange/sealed-part/1\x00"


def sealed_claim(peer: str, sealed_as: str, length: int) -> HeldClaim:
    """The claim a sealed part is held by: its sender's id for it (the sealing's
    ``sealed_as``, unique per uploaded file and fixing its part key) and its sealed length."""
    name = hashlib.sha256(_SEALED_PART_DOMAIN + sealed_as.encode()).digest()
    return HeldClaim(peer, length, name, sealed=True)


def _resumable_row(conn: Connection, attachment_id: str, held_for: str | None) -> sa.Row[Any]:
    # A case system's upload and a peer's held part never reach each other's paths.
    holder = (
        attachments.c.held_for.is_(None) if held_for is None else attachments.c.held_for == held_for
    )
    row = conn.execute(
        sa.select(attachments).where(
            attachments.c.attachment_id == attachment_id,
            attachments.c.message_id.is_(None),
            attachments.c.upload_length.is_not(None),
            holder,
        )
    ).first()
    if row is None:
        raise AttachmentNotFound(
            f"attachment {attachment_id} is not a resumable upload still unsent (never created, "
            "already sent, or deleted a day after it was created)"
        )
    return row


def upload_state(conn: Connection, attachment_id: str, held_for: str | None = None) -> UploadState:
    """A resumable, unsent upload's state (:class:`AttachmentNotFound` for anything else);
    ``held_for``: a part held for that peer's delivery instead."""
    return _state_of(conn, _resumable_row(conn, attachment_id, held_for))


def held_parts(conn: Connection, claim: HeldClaim) -> list[UploadState]:
    """The parts held for ``claim``'s peer that match it (length and declared SHA-256),
    furthest first: usually one, from the delivery that broke off."""
    rows = conn.execute(
        sa.select(attachments).where(
            attachments.c.held_for == claim.peer,
            attachments.c.claimed_sha256 == claim.sha256,
            attachments.c.upload_length == claim.length,
            attachments.c.message_id.is_(None),
            attachments.c.held_since.is_not(None),  # not one streaming in or taken on now
        )
    ).all()
    states = (_state_of(conn, r, claim.unit) for r in rows)
    return sorted(states, key=lambda s: s.offset, reverse=True)


def hold(conn: Connection, attachment_ids: Sequence[str], now: datetime) -> None:
    """The parts of a delivery that broke off, held since ``now`` for its retry."""
    if attachment_ids:
        conn.execute(
            attachments.update()
            .where(
                attachments.c.attachment_id.in_(list(attachment_ids)),
                attachments.c.held_for.is_not(None),
                attachments.c.message_id.is_(None),
            )
            .values(held_since=now)
        )


def take_held(conn: Connection, attachment_id: str) -> bool:
    """A retry takes a held part on: no longer offered to another retry nor trimmed while it
    streams. False if another took it first (one statement: only one can)."""
    taken = conn.execute(
        attachments.update()
        .where(
            attachments.c.attachment_id == attachment_id,
            attachments.c.held_since.is_not(None),
            attachments.c.message_id.is_(None),
        )
        .values(held_since=None)
    )
    return taken.rowcount == 1


def trim_held(conn: Connection, peer: str, most_bytes: int) -> int:
    """Delete the peer's oldest held parts until what it holds is at most ``most_bytes``
    (stored segments counted): a peer whose deliveries keep breaking off cannot fill the
    store. Parts streaming in now (of deliveries not broken, or taken on by a retry) are
    neither counted nor touched. How many were deleted."""
    stored = (
        sa.select(
            attachments.c.attachment_id,
            sa.func.count(attachment_segments.c.segment_no).label("segments"),
        )
        .select_from(
            attachments.outerjoin(
                attachment_segments,
                attachment_segments.c.attachment_id == attachments.c.attachment_id,
            )
        )
        .where(
            attachments.c.held_for == peer,
            attachments.c.message_id.is_(None),
            attachments.c.held_since.is_not(None),
        )
        .group_by(attachments.c.attachment_id, attachments.c.held_since)
        .order_by(attachments.c.held_since.desc(), attachments.c.attachment_id.desc())
    )
    kept = 0
    dropped = []
    for row in conn.execute(stored):
        kept += row.segments * segments.SEGMENT_BYTES
        if kept > most_bytes:
            dropped.append(row.attachment_id)
    discard(conn, dropped)
    return len(dropped)


def _state_of(
    conn: Connection, row: sa.Row[Any], unit: int = segments.SEGMENT_BYTES
) -> UploadState:
    attachment_id = row.attachment_id
    if row.complete:
        return UploadState(attachment_id, row.upload_length, row.size, True, row.sha256)
    stored = conn.execute(
        sa.select(sa.func.count())
        .select_from(attachment_segments)
        .where(attachment_segments.c.attachment_id == attachment_id)
    ).scalar_one()
    return UploadState(attachment_id, row.upload_length, stored * unit, False, None)


def resume(
    conn: Connection, attachment_id: str, keys: KekRing, held_for: str | None = None
) -> tuple[Staging, UploadState]:
    """A resumable upload (or a part held for ``held_for``) reopened for its next part, where
    its stored segments end; they are read back and hashed again a batch at a time
    (:meth:`SegmentWriter.resumed`)."""
    row = _resumable_row(conn, attachment_id, held_for)
    state = _state_of(conn, row)
    if state.complete:
        raise AttachmentNotFound(f"attachment {attachment_id}: the upload is already complete")
    count = state.offset // segments.SEGMENT_BYTES
    stored = (c for _, c in _stored_in_order(conn, attachment_id, count))
    key = _staged_key(row, keys)
    writer = segments.SegmentWriter.resumed(key, row.segment_prefix, attachment_id, stored)
    return Staging(attachment_id, writer), state


def _stored_in_order(
    conn: Connection, attachment_id: str, count: int
) -> Iterator[tuple[int, bytes]]:
    """The first ``count`` stored segments (or records), a batch at a time, each numbered."""
    for first in range(0, count, READ_BATCH_SEGMENTS):
        last = min(first + READ_BATCH_SEGMENTS, count)
        rows = _segment_rows(conn, attachment_id, first, last)
        if [number for number, _ in rows] != list(range(first, last)):
            raise at_rest.DecryptionFailed(
                f"attachment {attachment_id}: segments {first}..{last - 1} are not all "
                "stored; send the file again"
            )
        yield from rows


def resume_sealed(
    conn: Connection, attachment_id: str, opener: segments.SegmentOpener, claim: HeldClaim
) -> SealedStaging:
    """A sealed part held for ``claim``'s peer reopened for the rest of its records: every
    stored record is read back and fed to ``opener`` (the key the retrying document claims
    must open what the broken delivery brought), and the splitter goes on after them."""
    _resumable_row(conn, attachment_id, claim.peer)  # still held for this peer, unsent
    count = conn.execute(
        sa.select(sa.func.count())
        .select_from(attachment_segments)
        .where(attachment_segments.c.attachment_id == attachment_id)
    ).scalar_one()
    opener.feed(_stored_in_order(conn, attachment_id, count))  # a batch in memory at a time
    return SealedStaging(attachment_id, segments.SegmentSplitter.resumed(count), opener)


def write_held(conn: Connection, staging: Staging) -> None:
    """Store the full segment the writer holds back (a resumable upload's part ended before
    the declared length: more comes, so it is not the final one)."""
    _insert_segments(conn, staging.attachment_id, staging.writer.seal_held())


@dataclass(slots=True)
class SealedStaging:
    """A part arriving as sealed segments (a confidential conversation's): stored as they
    come, and opened as they come by ``opener`` (the key and prefix the document claims, read
    before the part streamed in), which hashes the plaintext; checked against the signed
    header once it is verified, then kept with the checked key (:func:`link`)."""

    attachment_id: str
    splitter: segments.SegmentSplitter
    opener: segments.SegmentOpener | None


def begin_sealed(
    conn: Connection,
    meta: AttachmentMeta,
    keys: KekRing,
    now: datetime,
    opener: segments.SegmentOpener | None = None,
    held: HeldClaim | None = None,
) -> SealedStaging:
    """A new staged attachment whose bytes are already sealed (:func:`write_sealed`);
    ``opener``: None when nothing claims how to open it (the delivery is then refused);
    ``held``: held for the peer's retry if its delivery breaks off (:func:`sealed_claim`)."""
    attachment_id = begin(conn, meta, keys, now, held=held).attachment_id
    return SealedStaging(attachment_id, segments.SegmentSplitter(), opener)


def _store_sealed(
    conn: Connection, staging: SealedStaging, records: list[tuple[int, bytes]]
) -> None:
    if staging.opener is not None:
        staging.opener.feed(records)
    _insert_segments(conn, staging.attachment_id, records)


def write_sealed(conn: Connection, staging: SealedStaging, data: bytes) -> None:
    _store_sealed(conn, staging, staging.splitter.feed(data))


def finish_sealed(
    conn: Connection, staging: SealedStaging
) -> tuple[int, segments.OpenedStream | None]:
    """The last record; the size of the sealed stream as it came, and what opening it found
    (None without an opener). The row keeps the plaintext's SHA-256 if it opened (the signed
    one replaces it at :func:`link`); the ciphertext is not hashed: nothing would check it."""
    _store_sealed(conn, staging, staging.splitter.finish())
    opened = staging.opener.finish() if staging.opener is not None else None
    conn.execute(
        attachments.update()
        .where(attachments.c.attachment_id == staging.attachment_id)
        .values(
            complete=True,
            size=staging.splitter.size,
            sha256=opened.sha256 if opened is not None else None,
        )
    )
    return staging.splitter.size, opened


@dataclass(frozen=True, slots=True)
class SealedKey:
    """What opens a part received sealed, from the signed header, checked (:func:`link`)."""

    part_key: bytes
    prefix: bytes
    sealed_as: str
    size: int
    sha256: bytes
    """Of the plaintext, as signed and as measured after opening every segment."""


def staged_sealing(conn: Connection, attachment_id: str, keys: KekRing) -> tuple[bytes, bytes]:
    """``(part key, segment prefix)`` of a complete, unsent upload: what a confidential
    submission wraps to the recipient (:class:`AttachmentNotFound` otherwise)."""
    row = conn.execute(
        sa.select(attachments).where(attachments.c.attachment_id == attachment_id)
    ).first()
    if row is None or not row.complete or row.message_id is not None or row.held_for:
        raise AttachmentNotFound(f"attachment {attachment_id} is not an uploaded, unsent one")
    return _staged_key(row, keys), row.segment_prefix


def sealed_segments(conn: Connection, attachment_id: str, first: int) -> list[bytes]:
    """Up to :data:`READ_BATCH_SEGMENTS` stored segments from ``first``, as stored (sealed,
    not opened): what a confidential delivery sends."""
    rows = _segment_rows(conn, attachment_id, first, first + READ_BATCH_SEGMENTS)
    return [ciphertext for _, ciphertext in rows]


def _insert_segments(conn: Connection, attachment_id: str, sealed: list[tuple[int, bytes]]) -> None:
    if sealed:
        conn.execute(
            attachment_segments.insert(),
            [{"attachment_id": attachment_id, "segment_no": n, "ciphertext": c} for n, c in sealed],
        )


def write(conn: Connection, staging: Staging, data: bytes) -> None:
    """Hash and seal ``data`` and store the segments it completes."""
    _insert_segments(conn, staging.attachment_id, staging.writer.feed(data))


def finish(conn: Connection, staging: Staging) -> tuple[int, bytes]:
    """Seal the final segment; the attachment's ``(size, sha256)``."""
    last, digest = staging.writer.finish()
    _insert_segments(conn, staging.attachment_id, [last])
    conn.execute(
        attachments.update()
        .where(attachments.c.attachment_id == staging.attachment_id)
        .values(complete=True, size=staging.writer.size, sha256=digest)
    )
    return staging.writer.size, digest


def discard(conn: Connection, attachment_ids: Sequence[str]) -> list[str]:
    """Delete staged (unlinked) attachments and their segments; linked ones are kept. The ids
    deleted, sorted (an id unknown, already gone or linked is not among them)."""
    if not attachment_ids:
        return []
    staged = sa.select(attachments.c.attachment_id).where(
        attachments.c.attachment_id.in_(list(attachment_ids)), attachments.c.message_id.is_(None)
    )
    conn.execute(
        attachment_segments.delete().where(attachment_segments.c.attachment_id.in_(staged))
    )
    deleted = conn.execute(
        attachments.delete()
        .where(
            attachments.c.attachment_id.in_(list(attachment_ids)),
            attachments.c.message_id.is_(None),
        )
        .returning(attachments.c.attachment_id)
    )
    return sorted(str(row.attachment_id) for row in deleted)


def delete_for_messages(conn: Connection, message_ids: Sequence[str]) -> None:
    """The purge's hook: a purged message's attachments go with it, segments first."""
    theirs = in_text_set(conn, attachments.c.message_id, message_ids)  # one parameter, any count
    ids = sa.select(attachments.c.attachment_id).where(theirs)
    conn.execute(attachment_segments.delete().where(attachment_segments.c.attachment_id.in_(ids)))
    conn.execute(attachments.delete().where(theirs))


def sweep_staged(conn: Connection, now: datetime, *, actor: str) -> int:
    """Delete staged attachments older than :data:`STAGED_LIFETIME`; how many. Each of the
    case system's uploads (audited ``attachment.uploaded``) is audited ``attachment.expired``
    by ``actor`` in this transaction; a peer's part held for a resumed delivery is not (its
    sender tries again)."""
    old = conn.execute(
        sa.select(attachments.c.attachment_id, attachments.c.held_for).where(
            attachments.c.message_id.is_(None),
            attachments.c.created_at < now - STAGED_LIFETIME,
        )
    ).all()
    deleted = set(discard(conn, [r.attachment_id for r in old]))
    uploads = [r.attachment_id for r in old if r.held_for is None and r.attachment_id in deleted]
    if uploads:
        audit.append_many(
            conn,
            now=now,
            actor=actor,
            entries=[("attachment.expired", {"attachment": a}, {}) for a in sorted(uploads)],
        )
    return len(deleted)


def _staged_key(row: sa.Row, keys: KekRing) -> bytes:
    return at_rest.unwrap_data_key(WrappedKey(row.kek_id, row.wrapped_key), keys)


def staged(conn: Connection, attachment_ids: Sequence[str], keys: KekRing) -> list[AttachmentInfo]:
    """Complete staged attachments, in the order asked; :class:`AttachmentNotFound` names the
    first id that is unknown, incomplete or already part of a message."""
    rows = {
        r.attachment_id: r
        for r in conn.execute(
            sa.select(attachments).where(attachments.c.attachment_id.in_(list(attachment_ids)))
        )
    }
    found = []
    for attachment_id in attachment_ids:
        row = rows.get(attachment_id)
        if row is None or not row.complete or row.message_id is not None or row.held_for:
            raise AttachmentNotFound(
                f"attachment {attachment_id} is not an uploaded, unsent attachment: upload it "
                "with POST /api/v1/attachments and reference it once"
            )
        key = _staged_key(row, keys)
        meta = _open_meta(key, attachment_id, row.meta_nonce, row.meta)
        found.append(AttachmentInfo(attachment_id, meta, row.size, row.sha256, None, None))
    return found


def link(
    conn: Connection,
    message_id: str,
    message_key: bytes,
    attachment_ids: Sequence[str],
    keys: KekRing,
    metas: Sequence[AttachmentMeta] | None = None,
    sealed: Sequence[SealedKey | None] = (),
) -> None:
    """Make the staged attachments the message's, in order: each part key re-wrapped under
    the message's data key (in the transaction that stores the message). Ordinals continue
    after those the message already has. ``metas``: the signed header's name, type and
    language, replacing what was staged (a received part arrives without them). ``sealed``:
    for a part received sealed, its key, prefix and checked size and digest, which replace
    the staging's (its segments stay as they came)."""
    if sealed and metas is None:
        raise ValueError("a part received sealed is linked with the signed header's metas")
    first = conn.execute(
        sa.select(sa.func.count())
        .select_from(attachments)
        .where(attachments.c.message_id == message_id)
    ).scalar_one()
    for ordinal, attachment_id in enumerate(attachment_ids, start=first):
        row = conn.execute(
            sa.select(attachments).where(attachments.c.attachment_id == attachment_id)
        ).first()
        if row is None or not row.complete or row.message_id is not None:
            raise AttachmentNotFound(f"attachment {attachment_id} cannot be linked")
        opened = sealed[ordinal - first] if sealed else None
        part_key = _staged_key(row, keys) if opened is None else opened.part_key
        meta_nonce, meta = row.meta_nonce, row.meta
        if metas is not None:
            given = metas[ordinal - first]
            if opened is not None:
                given = dataclasses.replace(given, sealed_as=opened.sealed_as)
            meta_nonce, meta = _seal_meta(part_key, attachment_id, given)
        received: dict[str, Any] = {}
        if opened is not None:
            received = {
                "segment_prefix": opened.prefix,
                "size": opened.size,
                "sha256": opened.sha256,
            }
        done = conn.execute(
            attachments.update()
            .where(attachments.c.attachment_id == attachment_id, attachments.c.message_id.is_(None))
            .values(
                **received,
                message_id=message_id,
                ordinal=ordinal,
                held_for=None,
                claimed_sha256=None,
                held_since=None,
                kek_id=None,
                meta_nonce=meta_nonce,
                meta=meta,
                wrapped_key=segments.wrap_part_key(
                    message_key, message_id, attachment_id, part_key
                ),
            )
        )
        if done.rowcount != 1:
            raise AttachmentNotFound(f"attachment {attachment_id} was linked meanwhile")


class Part(NamedTuple):
    """One attachment of a message as a delivery sends it beside the XML."""

    attachment_id: str
    size: int
    sha256: bytes


_PARTS_OF = (
    sa.select(attachments.c.attachment_id, attachments.c.size, attachments.c.sha256)
    .where(attachments.c.message_id == sa.bindparam("message_id"))
    .order_by(attachments.c.ordinal)
)
"""Built once: it runs on every delivery (building it cost ~150 µs of CPU a call)."""


def parts_of(conn: Connection, message_id: str) -> tuple[Part, ...]:
    """The message's attachments in order, without decrypting: what a delivery sends beside
    the XML (one indexed query; none found for most messages)."""
    rows = conn.execute(_PARTS_OF, {"message_id": message_id})
    return tuple(Part(r.attachment_id, r.size, r.sha256) for r in rows)


def _part_key(conn: Connection, row: sa.Row, keys: KekRing) -> bytes:
    if row.message_id is None:
        return _staged_key(row, keys)
    return segments.unwrap_part_key(
        data_key(conn, row.message_id, keys), row.message_id, row.attachment_id, row.wrapped_key
    )


def _rows_of(conn: Connection, message_id: str) -> Sequence[sa.Row[Any]]:
    return conn.execute(
        sa.select(attachments)
        .where(attachments.c.message_id == message_id)
        .order_by(attachments.c.ordinal)
    ).all()


def for_message(conn: Connection, message_id: str, keys: KekRing) -> list[AttachmentInfo]:
    """The message's attachments in order (name, type, language decrypted)."""
    out = []
    for row in _rows_of(conn, message_id):
        key = _part_key(conn, row, keys)
        meta = _open_meta(key, row.attachment_id, row.meta_nonce, row.meta)
        out.append(
            AttachmentInfo(row.attachment_id, meta, row.size, row.sha256, message_id, row.ordinal)
        )
    return out


@dataclass(frozen=True, slots=True)
class Reader:
    """What streaming one attachment out needs; the segments are read batch by batch."""

    info: AttachmentInfo
    key: bytes
    prefix: bytes

    @property
    def segment_count(self) -> int:
        return max(1, math.ceil(self.info.size / segments.SEGMENT_BYTES))

    @property
    def sealed_as(self) -> str:
        """The id its segments are bound to: its own, or the sender's for a part received
        sealed."""
        return self.info.meta.sealed_as or self.info.attachment_id

    def batch(self, conn: Connection, first: int) -> list[bytes]:
        """Plaintext of up to :data:`READ_BATCH_SEGMENTS` segments from ``first``."""
        last = min(first + READ_BATCH_SEGMENTS, self.segment_count)
        out = []
        stored = _segment_rows(conn, self.info.attachment_id, first, last)
        for expected, (number, ciphertext) in zip(range(first, last), stored, strict=False):
            if number != expected:
                break
            out.append(
                segments.open_segment(
                    self.key,
                    self.prefix,
                    self.sealed_as,
                    expected,
                    ciphertext,
                    final=expected == self.segment_count - 1,
                )
            )
        if len(out) != last - first:
            raise at_rest.DecryptionFailed(
                f"attachment {self.info.attachment_id}: segments {first}..{last - 1} are not "
                "all stored (the stream was cut); restore it from a backup"
            )
        return out


def _segment_rows(
    conn: Connection, attachment_id: str, first: int, last: int
) -> list[tuple[int, bytes]]:
    """``(segment number, ciphertext)`` from ``first`` to before ``last``, in order.

    PostgreSQL: through the driver's cursor in *binary* format, in the caller's transaction.
    SQLAlchemy asks psycopg for text, in which the server hex-encodes a ``bytea`` and the client
    decodes it: twice the bytes on the wire and ~2 s of client CPU per GB; binary reads
    100 MB of 64 KiB segments at ~420 MB/s, text at ~80 MB/s (docs/attachments.md)."""
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor(binary=True) as cursor:
            cursor.execute(
                "SELECT segment_no, ciphertext FROM attachment_segments WHERE attachment_id = %s "
                "AND segment_no >= %s AND segment_no < %s ORDER BY segment_no",
                (attachment_id, first, last),
            )
            return [(int(number), bytes(ciphertext)) for number, ciphertext in cursor]
    rows = conn.execute(
        sa.select(attachment_segments.c.segment_no, attachment_segments.c.ciphertext)
        .where(
            attachment_segments.c.attachment_id == attachment_id,
            attachment_segments.c.segment_no >= first,
            attachment_segments.c.segment_no < last,
        )
        .order_by(attachment_segments.c.segment_no)
    )
    return [(row.segment_no, row.ciphertext) for row in rows]


def reader(conn: Connection, attachment_id: str, keys: KekRing) -> Reader:
    """Open a complete attachment (staged or a message's) for reading."""
    row = conn.execute(
        sa.select(attachments).where(attachments.c.attachment_id == attachment_id)
    ).first()
    if row is None or not row.complete:
        raise AttachmentNotFound(f"attachment {attachment_id} is not stored")
    key = _part_key(conn, row, keys)
    meta = _open_meta(key, attachment_id, row.meta_nonce, row.meta)
    info = AttachmentInfo(attachment_id, meta, row.size, row.sha256, row.message_id, row.ordinal)
    return Reader(info, key, row.segment_prefix)


def stream(
    read: Callable[[], AbstractContextManager[Connection]], opened: Reader
) -> Iterator[bytes]:
    """The plaintext in 1 MiB pieces, each batch in its own short read transaction (a long
    download holds no snapshot open)."""
    for first in range(0, opened.segment_count, READ_BATCH_SEGMENTS):
        with read() as conn:
            pieces = opened.batch(conn, first)
        yield b"".join(pieces)


class SegmentFile(io.RawIOBase):
    """A complete attachment as a read-only, seekable binary file, for a reader that needs
    random access (pyHanko reads a PDF from its end: its cross-reference table). Holds one
    batch of plaintext (:data:`READ_BATCH_SEGMENTS` segments, 2 MiB), each batch read in its
    own short read transaction and authenticated as a stream's are (the last segment opened
    as final: a cut file fails as it does streamed). Wrap it in :class:`io.BufferedReader`."""

    def __init__(
        self, read: Callable[[], AbstractContextManager[Connection]], opened: Reader
    ) -> None:
        super().__init__()
        self._read = read
        self._opened = opened
        self._position = 0
        self._first = -1
        self._batch = b""
        self.failure: at_rest.DecryptionFailed | None = None
        """The first authentication failure a read met, kept: a reader such as pyHanko may
        catch it and carry on, and the caller must still learn the file was altered."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._opened.info.size}
        if whence not in base or base[whence] + offset < 0:
            raise ValueError(f"cannot seek to {offset} from {whence}")
        self._position = base[whence] + offset
        return self._position

    def readinto(self, buffer: WritableBuffer) -> int:
        if self._position >= self._opened.info.size:
            return 0
        first = self._position // _BATCH_BYTES * READ_BATCH_SEGMENTS
        if first != self._first:
            self._batch, self._first = b"", -1  # a failed read leaves nothing half-cached
            try:
                with self._read() as conn:
                    self._batch = b"".join(self._opened.batch(conn, first))
            except at_rest.DecryptionFailed as exc:
                self.failure = self.failure or exc
                raise
            self._first = first
        at = self._position - first * segments.SEGMENT_BYTES
        target = memoryview(buffer).cast("B")
        count = min(len(target), len(self._batch) - at)
        target[:count] = self._batch[at : at + count]
        self._position += count
        return count

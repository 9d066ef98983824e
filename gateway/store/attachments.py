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

import json
import math
import secrets
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection

from gateway.crypto import at_rest, segments
from gateway.crypto.at_rest import KekRing, WrappedKey
from gateway.store.dialect import in_text_set
from gateway.store.messages import data_key
from gateway.store.tables import attachment_segments, attachments

READ_BATCH_SEGMENTS = 32
"""Segments read per query when streaming out (2 MiB of plaintext): on PostgreSQL 1 MiB per
read transaction streamed at ~13 MB/s, 4 MiB at ~21 MB/s but with +60 MB resident; two
batches are in memory at once."""

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


def _seal_meta(key: bytes, attachment_id: str, meta: AttachmentMeta) -> tuple[bytes, bytes]:
    nonce = secrets.token_bytes(12)
    text = json.dumps([meta.name, meta.media_type, meta.language]).encode()
    return nonce, AESGCM(key).encrypt(nonce, text, _meta_aad(attachment_id))


def _open_meta(key: bytes, attachment_id: str, nonce: bytes, sealed: bytes) -> AttachmentMeta:
    try:
        name, media_type, language = json.loads(
            AESGCM(key).decrypt(nonce, sealed, _meta_aad(attachment_id))
        )
    except Exception:
        raise at_rest.DecryptionFailed(
            f"attachment {attachment_id}: its sealed name and type failed authentication"
        ) from None
    return AttachmentMeta(name, media_type, language)


def begin(conn: Connection, meta: AttachmentMeta, keys: KekRing, now: datetime) -> Staging:
    """A new staged attachment; write its bytes with :func:`write`, then :func:`finish`."""
    attachment_id = str(uuid.uuid4())
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
        )
    )
    return Staging(attachment_id, segments.SegmentWriter(key, prefix, attachment_id))


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


def discard(conn: Connection, attachment_ids: Sequence[str]) -> None:
    """Delete staged (unlinked) attachments and their segments; linked ones are kept."""
    if not attachment_ids:
        return
    staged = sa.select(attachments.c.attachment_id).where(
        attachments.c.attachment_id.in_(list(attachment_ids)), attachments.c.message_id.is_(None)
    )
    conn.execute(
        attachment_segments.delete().where(attachment_segments.c.attachment_id.in_(staged))
    )
    conn.execute(
        attachments.delete().where(
            attachments.c.attachment_id.in_(list(attachment_ids)),
            attachments.c.message_id.is_(None),
        )
    )


def delete_for_messages(conn: Connection, message_ids: Sequence[str]) -> None:
    """The purge's hook: a purged message's attachments go with it, segments first."""
    theirs = in_text_set(conn, attachments.c.message_id, message_ids)  # one parameter, any count
    ids = sa.select(attachments.c.attachment_id).where(theirs)
    conn.execute(attachment_segments.delete().where(attachment_segments.c.attachment_id.in_(ids)))
    conn.execute(attachments.delete().where(theirs))


def sweep_staged(conn: Connection, now: datetime) -> int:
    """Delete staged attachments older than :data:`STAGED_LIFETIME`; how many."""
    old = [
        r.attachment_id
        for r in conn.execute(
            sa.select(attachments.c.attachment_id).where(
                attachments.c.message_id.is_(None),
                attachments.c.created_at < now - STAGED_LIFETIME,
            )
        )
    ]
    discard(conn, old)
    return len(old)


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
        if row is None or not row.complete or row.message_id is not None:
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
) -> None:
    """Make the staged attachments the message's, in order: each part key re-wrapped under
    the message's data key (in the transaction that stores the message). Ordinals continue
    after those the message already has. ``metas``: the signed header's name, type and
    language, replacing what was staged (a received part arrives without them)."""
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
        part_key = _staged_key(row, keys)
        meta_nonce, meta = row.meta_nonce, row.meta
        if metas is not None:
            meta_nonce, meta = _seal_meta(part_key, attachment_id, metas[ordinal - first])
        done = conn.execute(
            attachments.update()
            .where(attachments.c.attachment_id == attachment_id, attachments.c.message_id.is_(None))
            .values(
                message_id=message_id,
                ordinal=ordinal,
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


def parts_of(conn: Connection, message_id: str) -> tuple[tuple[str, int], ...]:
    """``(attachment id, size)`` of the message's attachments in order, without decrypting: what
    a delivery sends beside the XML (one indexed query; none found for most messages)."""
    rows = conn.execute(
        sa.select(attachments.c.attachment_id, attachments.c.size)
        .where(attachments.c.message_id == message_id)
        .order_by(attachments.c.ordinal)
    )
    return tuple((r.attachment_id, r.size) for r in rows)


def _part_key(conn: Connection, row: sa.Row, keys: KekRing) -> bytes:
    if row.message_id is None:
        return _staged_key(row, keys)
    return segments.unwrap_part_key(
        data_key(conn, row.message_id, keys), row.message_id, row.attachment_id, row.wrapped_key
    )


def for_message(conn: Connection, message_id: str, keys: KekRing) -> list[AttachmentInfo]:
    """The message's attachments in order (name, type, language decrypted)."""
    rows = conn.execute(
        sa.select(attachments)
        .where(attachments.c.message_id == message_id)
        .order_by(attachments.c.ordinal)
    ).all()
    out = []
    for row in rows:
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

    def batch(self, conn: Connection, first: int) -> list[bytes]:
        """Plaintext of up to :data:`READ_BATCH_SEGMENTS` segments from ``first``."""
        last = min(first + READ_BATCH_SEGMENTS, self.segment_count)
        rows = conn.execute(
            sa.select(attachment_segments.c.segment_no, attachment_segments.c.ciphertext)
            .where(
                attachment_segments.c.attachment_id == self.info.attachment_id,
                attachment_segments.c.segment_no >= first,
                attachment_segments.c.segment_no < last,
            )
            .order_by(attachment_segments.c.segment_no)
        ).all()
        out = []
        for expected, row in zip(range(first, last), rows, strict=False):
            if row.segment_no != expected:
                break
            out.append(
                segments.open_segment(
                    self.key,
                    self.prefix,
                    self.info.attachment_id,
                    expected,
                    row.ciphertext,
                    final=expected == self.segment_count - 1,
                )
            )
        if len(out) != last - first:
            raise at_rest.DecryptionFailed(
                f"attachment {self.info.attachment_id}: segments {first}..{last - 1} are not "
                "all stored (the stream was cut); restore it from a backup"
            )
        return out


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

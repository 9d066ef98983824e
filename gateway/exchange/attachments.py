"""Attachments in and out of the store as streams, in bounded memory (docs/attachments.md).

The adapters hand over an async iterator of byte chunks (an upload's body, a delivery's part)
and get one back for a download or a delivery. Hashing, sealing and the database work run in
the executor, one batch at a time, while the event loop reads the next batch: at most two
batches (:data:`WRITE_BATCH_BYTES`) of one attachment are in memory.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.crypto import at_rest, pades, segments
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.report import Indication, SignatureReport, SubIndication
from gateway.crypto.trust import TrustList
from gateway.model.problems import GatewayError
from gateway.store import Store
from gateway.store import attachments as attachment_store
from gateway.store.attachments import AttachmentMeta

WRITE_BATCH_BYTES = 2 * 1024 * 1024
"""Bytes sealed and written per transaction: few commits for a gigabyte (512), little memory."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StagedPart:
    """An attachment streamed into the store, not yet any message's: its measured size and
    SHA-256, to compare with the signed header's list."""

    attachment_id: str
    size: int
    sha256: bytes
    """Of the bytes as they came; of a part received sealed, its plaintext's as opened (empty
    if it did not open)."""
    opened: segments.OpenedStream | None = None
    """A part received sealed: what opening its segments as they were stored found (the
    plaintext's SHA-256, with the key, prefix and id it opened with); None if it was not
    opened (nothing claimed how)."""

    @classmethod
    def sealed(
        cls, attachment_id: str, size: int, opened: segments.OpenedStream | None
    ) -> StagedPart:
        """A part received sealed, of ``size`` bytes as it came, as ``opened`` found it."""
        digest = opened.sha256 if opened is not None and opened.sha256 else b""
        return cls(attachment_id, size, digest, opened)


class PartTooLarge(GatewayError):
    """A stream ran over its limit; nothing of it is kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the attachment is over {limit} bytes")
        self.limit = limit


class AttachmentDamaged(GatewayError):
    """A stored file that does not read back as it was signed (a segment failed
    authentication, or the bytes' digest differs): the store was altered or cut."""

    code = "ATTACHMENT_DAMAGED"
    """The API's code, as for a damaged file whose signatures were to be verified."""

    def __init__(self, message_id: str, number: int) -> None:
        super().__init__(
            f"attachment {number} of message {message_id} does not read back as signed: the "
            "store was altered or cut; restore the node's database from a backup"
        )
        self.message_id = message_id
        self.number = number
        self.message_ru = (
            f"Файл № {number} сообщения {message_id} в хранилище узла повреждён или изменён. "
            "Что сделать: восстановите базу узла из резервной копии или обратитесь к "
            "администратору."
        )


async def _off_loop(executor: Executor | None, fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)


async def stage_stream(
    store: Store,
    keys: KekRing,
    meta: AttachmentMeta,
    chunks: AsyncIterator[bytes],
    *,
    limit: int,
    now: datetime,
    executor: Executor | None = None,
    on_staged: Callable[[str], None] | None = None,
    sealed: bool = False,
    opener: segments.SegmentOpener | None = None,
) -> StagedPart:
    """Hash, seal and store ``chunks`` as a staged attachment. Raises :class:`PartTooLarge` as
    soon as more than ``limit`` bytes came; on any failure (the client gone, the store down)
    nothing of it is left. ``on_staged`` learns the id first (so a caller can discard it).
    ``sealed``: the chunks are already sealed segments (a confidential conversation's part),
    stored as they come; the size is then the sealed stream's, and ``limit`` is raised by the
    segments' tags; ``opener`` (with ``sealed``) opens and hashes them in the
    same pass (:attr:`StagedPart.opened`)."""
    if sealed:
        limit = segments.sealed_size(limit)

    def begin() -> attachment_store.Staging | attachment_store.SealedStaging:
        with store.transaction() as conn:
            if sealed:
                return attachment_store.begin_sealed(conn, meta, keys, now, opener)
            return attachment_store.begin(conn, meta, keys, now)

    staging = await _off_loop(executor, begin)
    if on_staged is not None:
        on_staged(staging.attachment_id)

    def write(data: bytes) -> None:
        with store.transaction() as conn:
            if isinstance(staging, attachment_store.SealedStaging):
                attachment_store.write_sealed(conn, staging, data)
            else:
                attachment_store.write(conn, staging, data)

    def finish() -> StagedPart:
        with store.transaction() as conn:
            if isinstance(staging, attachment_store.SealedStaging):
                return StagedPart.sealed(
                    staging.attachment_id, *attachment_store.finish_sealed(conn, staging)
                )
            return StagedPart(staging.attachment_id, *attachment_store.finish(conn, staging))

    try:
        await _write_batches(chunks, limit, write, executor)
        staged = await _off_loop(executor, finish)
    except BaseException:
        await discard(store, [staging.attachment_id], executor)
        raise
    return staged


async def _write_batches(
    chunks: AsyncIterator[bytes],
    limit: int,
    write: Callable[[bytes], None],
    executor: Executor | None,
    keep: Callable[[bytes], None] | None = None,
) -> None:
    """``write`` (in the executor) each :data:`WRITE_BATCH_BYTES` of ``chunks`` while the
    next batch is read; raises :class:`PartTooLarge` past ``limit`` bytes. On any failure the
    batch being written is let finish (a thread cannot be stopped mid-transaction): what the
    caller does next — discard the part, report how far it got — sees every write done.
    ``keep``: on a failure, also given the bytes read since the last batch, up to ``limit``
    (a resumable upload keeps what came before its connection broke or its length ran out);
    its own failure is not raised."""
    pending: asyncio.Future[None] | None = None
    batch: list[bytes] = []
    try:
        batched = total = 0
        async for chunk in chunks:
            total += len(chunk)
            if total > limit:
                if keep is not None:  # what fits is kept; nobody else wants the slice
                    batch.append(chunk[: len(chunk) - (total - limit)])
                raise PartTooLarge(limit)
            batch.append(chunk)
            batched += len(chunk)
            if batched >= WRITE_BATCH_BYTES:
                if pending is not None:
                    await pending
                # The next batch is read from the network while this one is sealed and written.
                pending = asyncio.ensure_future(_off_loop(executor, write, b"".join(batch)))
                batch, batched = [], 0
        if pending is not None:
            await pending
            pending = None
        if batch:
            await _off_loop(executor, write, b"".join(batch))
    except BaseException:
        if pending is not None:
            await asyncio.gather(asyncio.shield(pending), return_exceptions=True)
        if keep is not None:
            rest = b"".join(batch)
            await asyncio.gather(
                asyncio.shield(_off_loop(executor, keep, rest)), return_exceptions=True
            )
        raise


async def begin_upload(
    store: Store,
    keys: KekRing,
    meta: AttachmentMeta,
    length: int,
    *,
    now: datetime,
    executor: Executor | None = None,
) -> attachment_store.UploadState:
    """A resumable upload of ``length`` bytes, nothing of it stored yet."""

    def begin() -> attachment_store.UploadState:
        with store.transaction() as conn:
            staging = attachment_store.begin(conn, meta, keys, now, upload_length=length)
            return attachment_store.UploadState(staging.attachment_id, length, 0, False, None)

    return await _off_loop(executor, begin)


def upload_state(
    store: Store, attachment_id: str, held_for: str | None = None
) -> attachment_store.UploadState:
    """Where a resumable upload (or a part held for peer ``held_for``) stands (blocking: call
    it off the event loop)."""
    with store.read() as conn:
        return attachment_store.upload_state(conn, attachment_id, held_for)


class UploadOffsetMismatch(GatewayError):
    """A resumable upload's part does not start where the stored bytes end."""

    def __init__(self, state: attachment_store.UploadState) -> None:
        super().__init__(
            f"the part starts at another offset than the {state.offset} bytes stored"
            if not state.complete
            else "the upload is already complete"
        )
        self.state = state


async def append_stream(
    store: Store,
    keys: KekRing,
    attachment_id: str,
    offset: int,
    chunks: AsyncIterator[bytes],
    *,
    executor: Executor | None = None,
    held_for: str | None = None,
) -> tuple[attachment_store.UploadState, StagedPart | None]:
    """Store the next part of a resumable upload, from ``offset`` (which must be where its
    stored bytes end: :class:`UploadOffsetMismatch` otherwise). The part that reaches the
    declared length completes the upload (its :class:`StagedPart` is returned); any other
    keeps every whole segment it brought — also when it breaks off — so that the next part
    starts where :func:`upload_state` then says. Raises :class:`PartTooLarge` for bytes past
    the length (those before it are kept). ``held_for``: the part is one held for that
    peer's delivery (:func:`stage_held`)."""

    def state_now() -> attachment_store.UploadState:
        return upload_state(store, attachment_id, held_for)

    def resume() -> tuple[attachment_store.Staging, attachment_store.UploadState]:
        with store.read() as conn:
            return attachment_store.resume(conn, attachment_id, keys, held_for)

    state = await _off_loop(executor, state_now)
    if state.complete or offset != state.offset:
        raise UploadOffsetMismatch(state)  # before reading back what is stored
    try:
        staging, state = await _off_loop(executor, resume)
    except attachment_store.AttachmentNotFound:  # completed (or sent) in between
        raise UploadOffsetMismatch(await _off_loop(executor, state_now)) from None
    if offset != state.offset:  # another part came in between
        raise UploadOffsetMismatch(state)

    overtaken: list[UploadOffsetMismatch] = []

    def stored(work: Callable[[Connection], T]) -> T:
        if overtaken:  # what this part holds no longer follows the stored bytes
            raise overtaken[0]
        try:
            with store.transaction() as conn:
                return work(conn)
        except sa.exc.IntegrityError:
            # Another request stored these segments first (two parts sent at once).
            overtaken.append(UploadOffsetMismatch(state_now()))
            raise overtaken[0] from None

    def write(data: bytes) -> None:
        stored(lambda conn: attachment_store.write(conn, staging, data))

    def keep_rest(data: bytes) -> None:
        def write_all(conn: Connection) -> None:
            attachment_store.write(conn, staging, data)
            if staging.writer.size < state.length:  # else what it holds is the final segment
                attachment_store.write_held(conn, staging)

        stored(write_all)

    def finish() -> StagedPart:
        return StagedPart(
            staging.attachment_id, *stored(lambda conn: attachment_store.finish(conn, staging))
        )

    await _write_batches(chunks, state.length - state.offset, write, executor, keep_rest)
    if staging.writer.size < state.length:
        await _off_loop(executor, keep_rest, b"")
        return await _off_loop(executor, state_now), None
    staged = await _off_loop(executor, finish)
    return await _off_loop(executor, state_now), staged


# --- a peer's delivery that broke off, resumed ---------------------------------------------------

HeldClaim = attachment_store.HeldClaim
sealed_claim = attachment_store.sealed_claim


class HeldPartMissing(GatewayError):
    """A delivery's part resumes from an offset at which this node holds nothing of it."""

    def __init__(self, claim: HeldClaim, offset: int) -> None:
        super().__init__(f"no part of {claim.length} bytes held at offset {offset} for the peer")
        self.offset = offset


UNREADABLE = (at_rest.DecryptionFailed, at_rest.UnknownKek)
"""What reading back a held part can raise when its bytes are no longer usable (a segment
altered or missing in the store, the KEK that wraps its key destroyed): the part is then
dropped and the peer sends it whole."""


class PartShort(GatewayError):
    """A part ended (cleanly) before the length it declared: a malformed delivery."""


def held_offset(store: Store, claim: HeldClaim) -> int | None:
    """How many bytes of the part ``claim`` names this node holds for its peer (the furthest
    of its held copies), None if none (blocking: call it off the event loop)."""
    with store.read() as conn:
        found = attachment_store.held_parts(conn, claim)
    return found[0].offset if found else None


async def stage_held(
    store: Store,
    keys: KekRing,
    meta: AttachmentMeta,
    claim: HeldClaim,
    offset: int,
    chunks: AsyncIterator[bytes],
    *,
    now: datetime,
    on_staged: Callable[[str], None],
    executor: Executor | None = None,
    opener: segments.SegmentOpener | None = None,
) -> StagedPart:
    """A peer's part that declared its length and SHA-256 (``claim``), stored so that a break
    leaves its whole segments held for the retry: from 0 as a new held part, or from
    ``offset``, continuing the held part that ends there (:class:`HeldPartMissing` if none).
    ``on_staged`` learns the part's id before any byte is stored (the caller keeps it on a
    break, discards it otherwise). Raises :class:`PartTooLarge` past the declared length and
    :class:`PartShort` for a part that ends before it. With ``opener``, a part received
    sealed (:func:`_stage_held_sealed`)."""
    if opener is not None:
        return await _stage_held_sealed(
            store, keys, meta, claim, opener, offset, chunks, now, on_staged, executor
        )
    if offset == 0:

        def begin() -> str:
            with store.transaction() as conn:
                return attachment_store.begin(conn, meta, keys, now, held=claim).attachment_id

        attachment_id = await _off_loop(executor, begin)
    else:
        state = await _off_loop(executor, _take, store, claim, offset)
        if state is None:
            raise HeldPartMissing(claim, offset)
        attachment_id = state.attachment_id
        if state.complete:  # the break came after this part: nothing of it to send again
            on_staged(attachment_id)
            await _nothing_more(chunks, claim)
            assert state.sha256 is not None
            return StagedPart(attachment_id, state.length, state.sha256)
    on_staged(attachment_id)
    try:
        _, staged = await append_stream(
            store, keys, attachment_id, offset, chunks, executor=executor, held_for=claim.peer
        )
    except UploadOffsetMismatch:  # another delivery took it on meanwhile
        raise HeldPartMissing(claim, offset) from None
    except UNREADABLE:  # what was held cannot be read back: the caller discards it
        raise HeldPartMissing(claim, offset) from None
    if staged is None:
        raise PartShort(f"the part ended before its declared {claim.length} bytes")
    return staged


async def _stage_held_sealed(
    store: Store,
    keys: KekRing,
    meta: AttachmentMeta,
    claim: HeldClaim,
    opener: segments.SegmentOpener,
    offset: int,
    chunks: AsyncIterator[bytes],
    now: datetime,
    on_staged: Callable[[str], None],
    executor: Executor | None,
) -> StagedPart:
    """:func:`stage_held` for a part received sealed (``claim`` from
    :func:`~gateway.store.attachments.sealed_claim`): its records stored as they come and
    opened by ``opener``; a resumed one first feeds ``opener`` every record held, so the key
    the retrying document claims must open what the broken delivery brought. A break keeps
    every whole record that came."""
    if offset % claim.unit and offset != claim.length:  # whole records, or held whole
        raise HeldPartMissing(claim, offset)

    def begin() -> tuple[attachment_store.SealedStaging, bool]:
        with store.transaction() as conn:
            return attachment_store.begin_sealed(conn, meta, keys, now, opener, claim), False

    def resume() -> tuple[attachment_store.SealedStaging, bool] | None:
        state = _take(store, claim, offset)
        if state is None:
            return None
        with store.read() as conn:
            try:
                staging = attachment_store.resume_sealed(conn, state.attachment_id, opener, claim)
            except UNREADABLE:  # a held record missing: nothing of it can be used
                staging = None
        if staging is None:
            with store.transaction() as conn:
                attachment_store.discard(conn, [state.attachment_id])
            return None
        return staging, state.complete

    opened = await _off_loop(executor, begin if offset == 0 else resume)
    if opened is None:
        raise HeldPartMissing(claim, offset)
    staging, complete = opened
    on_staged(staging.attachment_id)

    def stored(work: Callable[[Connection], T]) -> T:
        try:
            with store.transaction() as conn:
                return work(conn)
        except sa.exc.IntegrityError:  # another delivery resumed it first
            raise HeldPartMissing(claim, offset) from None

    def write(data: bytes) -> None:
        stored(lambda conn: attachment_store.write_sealed(conn, staging, data))

    if complete:  # the break came after this part: nothing of it to send again
        await _nothing_more(chunks, claim)
        found = staging.opener.finish() if staging.opener is not None else None
        return StagedPart.sealed(staging.attachment_id, claim.length, found)
    # A break keeps the whole records of the bytes since the last batch too (``keep``).
    await _write_batches(chunks, claim.length - offset, write, executor, write)
    if staging.splitter.size < claim.length:
        raise PartShort(f"the part ended before its declared {claim.length} bytes")

    def finish() -> StagedPart:
        size, found = stored(lambda conn: attachment_store.finish_sealed(conn, staging))
        return StagedPart.sealed(staging.attachment_id, size, found)

    return await _off_loop(executor, finish)


async def _nothing_more(chunks: AsyncIterator[bytes], claim: HeldClaim) -> None:
    """A part resumed at its end must bring no byte more (:class:`PartTooLarge`)."""
    async for chunk in chunks:
        if chunk:
            raise PartTooLarge(claim.length)


def _take(store: Store, claim: HeldClaim, offset: int) -> attachment_store.UploadState | None:
    """The held part of ``claim`` that ends at ``offset``, taken on by this retry (no other
    retry gets it, no trim deletes it while it streams); None if there is none to take."""
    with store.transaction() as conn:
        found = attachment_store.held_parts(conn, claim)
        state = next((held for held in found if held.offset == offset), None)
        if state is None or not attachment_store.take_held(conn, state.attachment_id):
            return None
        return state


async def keep_held(
    store: Store,
    peer: str,
    attachment_ids: list[str],
    most_bytes: int,
    *,
    now: datetime,
    executor: Executor | None = None,
) -> None:
    """After a delivery broke off: what it brought is held since ``now`` for its retry, and
    the peer's oldest held parts go until it holds at most ``most_bytes``."""

    def trim() -> None:
        with store.transaction() as conn:
            attachment_store.hold(conn, attachment_ids, now)
            attachment_store.trim_held(conn, peer, most_bytes)

    await asyncio.shield(_off_loop(executor, trim))


async def discard(store: Store, attachment_ids: list[str], executor: Executor | None) -> None:
    """Delete staged attachments (a refused delivery, a broken upload); linked ones stay."""
    if not attachment_ids:
        return

    def delete() -> None:
        with store.transaction() as conn:
            attachment_store.discard(conn, attachment_ids)

    await asyncio.shield(_off_loop(executor, delete))


def open_reader(store: Store, attachment_id: str, keys: KekRing) -> attachment_store.Reader:
    """What streaming one stored attachment out needs (its part key unwrapped, its segments'
    count); the bytes follow with :func:`read_stream`."""
    with store.read() as conn:
        return attachment_store.reader(conn, attachment_id, keys)


def open_file(store: Store, opened: attachment_store.Reader) -> io.BufferedReader:
    """An opened attachment as a seekable, read-only binary file (64 KiB buffer over one
    2 MiB batch of plaintext): for readers that need random access, such as verifying a
    signed PDF (``gateway.crypto.pades.verify_pdf``). Blocking: call it off the event loop."""
    return io.BufferedReader(attachment_store.SegmentFile(store.read, opened), 64 * 1024)


async def read_stream(
    store: Store,
    opened: attachment_store.Reader,
    executor: Executor | None = None,
    start: int = 0,
) -> AsyncGenerator[bytes, None]:
    """The plaintext of an opened attachment from byte ``start`` (a download resumed with
    ``Range``), 2 MiB at a time, each batch its own short read transaction; the next batch is
    decrypted while the caller sends this one. Reading starts at ``start``'s segment: the
    segments before it are neither read nor decrypted."""

    def batch(first: int) -> bytes:
        with store.read() as conn:
            return b"".join(opened.batch(conn, first))

    first_segment, skip = divmod(start, segments.SEGMENT_BYTES)
    starts = range(first_segment, opened.segment_count, attachment_store.READ_BATCH_SEGMENTS)
    if not starts:
        return
    ahead = asyncio.ensure_future(_off_loop(executor, batch, starts[0]))
    try:
        for following in [*starts[1:], None]:
            data = await ahead
            if following is not None:
                ahead = asyncio.ensure_future(_off_loop(executor, batch, following))
            if skip:
                data, skip = data[skip:], 0
            yield data
    finally:
        if not ahead.done():
            ahead.cancel()


async def read_sealed_stream(
    store: Store,
    attachment_id: str,
    size: int,
    executor: Executor | None = None,
    first_segment: int = 0,
) -> AsyncIterator[bytes]:
    """A stored attachment's segments as stored (sealed, never opened here: no decryption on
    the sender), 2 MiB at a time, for a confidential delivery; ``size`` is the plaintext's;
    ``first_segment``: where a resumed delivery goes on."""

    def batch(first: int) -> bytes:
        with store.read() as conn:
            return b"".join(attachment_store.sealed_segments(conn, attachment_id, first))

    count = segments.segment_count(size)
    for first in range(first_segment, count, attachment_store.READ_BATCH_SEGMENTS):
        yield await _off_loop(executor, batch, first)


# --- a signed PDF attachment verified in place -------------------------------------------------

PDF_MAGIC = b"%PDF-"
PDF_MAGIC_WITHIN = 1024
"""A PDF's header must appear within its first 1,024 bytes (ISO 32000-1, annex H.3)."""


class AttachmentCheckRefused(GatewayError):
    """An attachment whose signatures cannot be verified at all: not a PDF, a PDF without a
    signature, or a stored file that failed authentication. ``code``, English and Russian
    text, and what to do."""

    NOT_PDF = "ATTACHMENT_NOT_PDF"
    UNSIGNED = "ATTACHMENT_NOT_SIGNED"
    DAMAGED = "ATTACHMENT_DAMAGED"

    def __init__(self, code: str, message: str, message_ru: str) -> None:
        super().__init__(message)
        self.code = code
        self.message_ru = message_ru


@dataclass(frozen=True, slots=True)
class AttachmentCheck:
    """The verdict on a signed PDF attachment's signatures (PAdES, ETSI EN 319 102-1)."""

    message_id: str
    number: int
    """1-based, the signed list's order."""
    sha256: str
    checked_at: datetime
    signatures: tuple[SignatureReport, ...] = field(default=())

    @property
    def indication(self) -> Indication:
        """The worst of the signatures' (every PDF checked here carries at least one)."""
        order = [Indication.TOTAL_FAILED, Indication.INDETERMINATE, Indication.TOTAL_PASSED]
        return min((s.indication for s in self.signatures), key=order.index)

    @property
    def sub_indication(self) -> SubIndication | None:
        failed = next((s for s in self.signatures if not s.passed), None)
        return failed.sub_indication if failed is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "number": self.number,
            "sha256": self.sha256,
            "checked_at": self.checked_at.isoformat(),
            "indication": str(self.indication),
            "sub_indication": str(self.sub_indication) if self.sub_indication else None,
            "signatures": [
                {
                    "indication": str(s.indication),
                    "sub_indication": str(s.sub_indication) if s.sub_indication else None,
                    "message": s.message,
                    "signer_subject": s.signer_subject,
                    "signer_body_id": s.signer_body_id,
                    "claimed_signing_time": (
                        s.claimed_signing_time.isoformat() if s.claimed_signing_time else None
                    ),
                    "revocation": str(s.revocation),
                }
                for s in self.signatures
            ],
        }


def verify_pdf_in_place(
    store: Store, opened: attachment_store.Reader, trust: TrustList, at: datetime
) -> tuple[SignatureReport, ...]:
    """Every signature of a stored PDF attachment, verified in place (one 2 MiB batch of
    plaintext held, :func:`open_file`) against ``trust``'s anchors and CRLs at ``at``.
    Raises :class:`AttachmentCheckRefused` for a file that is not a PDF, carries no signature
    or failed authentication in the store. Blocking: call it off the event loop."""
    with open_file(store, opened) as file:
        raw = file.raw
        assert isinstance(raw, attachment_store.SegmentFile)
        try:
            head = file.read(PDF_MAGIC_WITHIN)
        except at_rest.DecryptionFailed:
            head = b""
        if raw.failure is None and PDF_MAGIC not in head:
            raise _not_pdf()
        reports = (
            pades.verify_pdf(file, list(trust.anchors), at, crls=list(trust.crls))
            if raw.failure is None
            else ()
        )
    if raw.failure is not None:
        raise AttachmentCheckRefused(
            AttachmentCheckRefused.DAMAGED,
            f"the stored file failed authentication ({raw.failure}): it was altered or cut "
            "in the store; restore the node's database from a backup or ask the sender again",
            "Файл вложения в хранилище узла повреждён или изменён (не прошёл проверку "
            "подлинности при чтении). Что сделать: восстановите базу узла из резервной копии "
            "или запросите документ у отправителя повторно.",
        )
    if len(reports) == 1 and reports[0].message == pades.UNSIGNED:
        raise AttachmentCheckRefused(
            AttachmentCheckRefused.UNSIGNED,
            "the PDF carries no signature: there is nothing to verify; ask the sender for a "
            "signed copy if one is required",
            "PDF-файл не подписан: проверять нечего. Что сделать: если нужна подписанная "
            "копия, запросите её у отправителя.",
        )
    if len(reports) == 1 and reports[0].message.startswith(pades.UNREADABLE):
        raise _not_pdf()
    return reports


def _not_pdf() -> AttachmentCheckRefused:
    return AttachmentCheckRefused(
        AttachmentCheckRefused.NOT_PDF,
        "the attachment is not a PDF (no readable %PDF- header and structure): only signed "
        "PDF files (PAdES) are verified; open the file with the program it was made for",
        "Вложение не является PDF-файлом: проверяются только подписанные PDF (PAdES). "
        "Что сделать: откройте файл программой, для которой он предназначен.",
    )

"""Attachments in and out of the store as streams, in bounded memory (docs/attachments.md).

The adapters hand over an async iterator of byte chunks (an upload's body, a delivery's part)
and get one back for a download or a delivery. Hashing, sealing and the database work run in
the executor, one batch at a time, while the event loop reads the next batch: at most two
batches (:data:`WRITE_BATCH_BYTES`) of one attachment are in memory.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from gateway.crypto.keys.kek import KekRing
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


class PartTooLarge(GatewayError):
    """A stream ran over its limit; nothing of it is kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the attachment is over {limit} bytes")
        self.limit = limit


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
) -> StagedPart:
    """Hash, seal and store ``chunks`` as a staged attachment. Raises :class:`PartTooLarge` as
    soon as more than ``limit`` bytes came; on any failure (the client gone, the store down)
    nothing of it is left. ``on_staged`` learns the id first (so a caller can discard it)."""

    def begin() -> attachment_store.Staging:
        with store.transaction() as conn:
            return attachment_store.begin(conn, meta, keys, now)

    staging = await _off_loop(executor, begin)
    if on_staged is not None:
        on_staged(staging.attachment_id)

    def write(data: bytes) -> None:
        with store.transaction() as conn:
            attachment_store.write(conn, staging, data)

    def finish() -> tuple[int, bytes]:
        with store.transaction() as conn:
            return attachment_store.finish(conn, staging)

    pending: asyncio.Future[None] | None = None
    try:
        batch: list[bytes] = []
        batched = total = 0
        async for chunk in chunks:
            total += len(chunk)
            if total > limit:
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
        size, digest = await _off_loop(executor, finish)
    except BaseException:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await discard(store, [staging.attachment_id], executor)
        raise
    return StagedPart(staging.attachment_id, size, digest)


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
    store: Store, opened: attachment_store.Reader, executor: Executor | None = None
) -> AsyncIterator[bytes]:
    """The plaintext of an opened attachment, 1 MiB at a time, each batch its own short read
    transaction; the next batch is decrypted while the caller sends this one."""

    def batch(first: int) -> bytes:
        with store.read() as conn:
            return b"".join(opened.batch(conn, first))

    starts = range(0, opened.segment_count, attachment_store.READ_BATCH_SEGMENTS)
    if not starts:
        return
    ahead = asyncio.ensure_future(_off_loop(executor, batch, starts[0]))
    try:
        for following in [*starts[1:], None]:
            data = await ahead
            if following is not None:
                ahead = asyncio.ensure_future(_off_loop(executor, batch, following))
            yield data
    finally:
        if not ahead.done():
            ahead.cancel()

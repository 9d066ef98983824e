"""Resumable uploads and held parts at the exchange layer, on SQLite and PostgreSQL: the race
that only the segments' primary key can settle, driven step by step."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from gateway.crypto.keys.kek import KekRing
from gateway.crypto.segments import SEGMENT_BYTES
from gateway.exchange.attachments import (
    WRITE_BATCH_BYTES,
    UploadOffsetMismatch,
    append_stream,
    begin_upload,
    upload_state,
)
from gateway.store import Store
from gateway.store import attachments as attachment_store
from gateway.store.attachments import AttachmentMeta
from gateway.store.tables import attachment_segments
from tests.store.conftest import NOW

FILE = secrets.token_bytes(WRITE_BATCH_BYTES + 300_000)


def _segments(store: Store, attachment_id: str) -> int:
    with store.read() as conn:
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(attachment_segments)
            .where(attachment_segments.c.attachment_id == attachment_id)
        ).scalar_one()


async def test_two_parts_from_one_offset_the_second_writer_is_overtaken_by_the_key(
    store: Store, ring: KekRing
) -> None:
    """Both parts pass the offset check (nothing stored yet); the first stores its first batch;
    the second's first batch then collides on the segments' primary key: it is refused as a
    mismatch and stores nothing, and the first completes the file whole."""
    state = await begin_upload(
        store, ring, AttachmentMeta("scan.pdf", "application/pdf"), len(FILE), now=NOW
    )
    first_stored = asyncio.Event()
    stored_then: list[int] = []
    second_done = asyncio.Event()

    async def first() -> AsyncIterator[bytes]:
        yield FILE[:WRITE_BATCH_BYTES]  # one whole batch: written while the next is read
        for _ in range(200):
            if _segments(store, state.attachment_id):
                break
            await asyncio.sleep(0.01)
        stored_then.append(_segments(store, state.attachment_id) * SEGMENT_BYTES)
        first_stored.set()
        await second_done.wait()
        yield FILE[WRITE_BATCH_BYTES:]

    second_read: list[bool] = []

    async def second() -> AsyncIterator[bytes]:
        second_read.append(True)  # read only once its offset check passed
        await first_stored.wait()
        yield FILE[:WRITE_BATCH_BYTES]
        yield FILE[WRITE_BATCH_BYTES:]

    async def overtaken() -> UploadOffsetMismatch:
        try:
            with pytest.raises(UploadOffsetMismatch) as raised:
                await append_stream(store, ring, state.attachment_id, 0, second())
            return raised.value
        finally:
            second_done.set()

    (done, staged), refused = await asyncio.gather(
        append_stream(store, ring, state.attachment_id, 0, first()), overtaken()
    )
    # The second passed the offset check (its bytes were read) and was refused on writing.
    assert first_stored.is_set() and second_read == [True]
    # The batch's last full segment stays held until a byte beyond it came: 31 of 32 stored.
    assert stored_then == [WRITE_BATCH_BYTES - SEGMENT_BYTES]
    assert not refused.state.complete and refused.state.offset == stored_then[0]
    assert done.complete and staged is not None
    assert staged.sha256 == hashlib.sha256(FILE).digest()
    with store.read() as conn:
        reader = attachment_store.reader(conn, state.attachment_id, ring)
    assert b"".join(attachment_store.stream(store.read, reader)) == FILE
    assert upload_state(store, state.attachment_id).complete

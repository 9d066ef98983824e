"""Attachments at rest: 64 KiB AES-GCM segments under a part key wrapped by the message key."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta

import pytest
import sqlalchemy as sa

from gateway.crypto import segments
from gateway.crypto.at_rest import DecryptionFailed
from gateway.crypto.keys.kek import KekRing
from gateway.store import Store, attachments, messages
from gateway.store.attachments import AttachmentMeta, AttachmentNotFound
from gateway.store.tables import attachment_segments, audit_events, message_keys
from gateway.store.tables import attachments as attachments_table
from tests.store import factory
from tests.store.conftest import NOW

JOB = "job:outbox-retry"

SEG = segments.SEGMENT_BYTES


def _message(store: Store, ring: KekRing) -> str:
    cid = factory.new_id()
    head = factory.header(cid, NOW)
    with store.transaction() as conn:
        factory.open_conversation(conn, NOW, cid)
        messages.insert_received(conn, head, factory.signed_document(head.message_id), ring, NOW)
    return head.message_id


def _staged(store: Store, ring: KekRing, content: bytes, piece: int = 10_000) -> str:
    with store.transaction() as conn:
        staging = attachments.begin(conn, AttachmentMeta("акт.pdf", "application/pdf"), ring, NOW)
    for at in range(0, len(content), piece):  # each piece its own transaction, like an upload
        with store.transaction() as conn:
            attachments.write(conn, staging, content[at : at + piece])
    with store.transaction() as conn:
        size, digest = attachments.finish(conn, staging)
    assert (size, digest) == (len(content), hashlib.sha256(content).digest())
    return staging.attachment_id


def _read(store: Store, ring: KekRing, attachment_id: str) -> bytes:
    with store.read() as conn:
        opened = attachments.reader(conn, attachment_id, ring)
    return b"".join(attachments.stream(store.read, opened))


@pytest.mark.parametrize("size", [0, 1, SEG, SEG + 1, 3 * SEG + 17, 20 * SEG])
def test_round_trip_in_segments(store: Store, ring: KekRing, size: int) -> None:
    content = secrets.token_bytes(size)
    attachment_id = _staged(store, ring, content)
    assert _read(store, ring, attachment_id) == content  # staged: under the KEK ring
    message_id = _message(store, ring)
    with store.transaction() as conn:
        key = messages.data_key(conn, message_id, ring)
        attachments.link(conn, message_id, key, [attachment_id], ring)
    assert _read(store, ring, attachment_id) == content  # linked: under the message key
    with store.read() as conn:
        (info,) = attachments.for_message(conn, message_id, ring)
        count = conn.execute(
            sa.select(sa.func.count()).select_from(attachment_segments)
        ).scalar_one()
    assert info.meta == AttachmentMeta("акт.pdf", "application/pdf")
    assert (info.size, info.sha256, info.ordinal) == (size, hashlib.sha256(content).digest(), 0)
    assert count == max(1, -(-size // SEG))


def _segment_where(attachment_id: str, number: int) -> sa.ColumnElement[bool]:
    return sa.and_(
        attachment_segments.c.attachment_id == attachment_id,
        attachment_segments.c.segment_no == number,
    )


def test_truncation_and_reordering_are_detected(store: Store, ring: KekRing) -> None:
    content = secrets.token_bytes(3 * SEG + 5)
    cut, swapped = _staged(store, ring, content), _staged(store, ring, content)
    with store.transaction() as conn:
        # Cut after a whole segment, and shrink the size to match: the new last segment was
        # sealed as not final, so it does not open as the last one.
        conn.execute(attachment_segments.delete().where(_segment_where(cut, 3)))
        conn.execute(
            attachments_table.update()
            .where(attachments_table.c.attachment_id == cut)
            .values(size=3 * SEG)
        )
        first, second = (
            conn.execute(
                sa.select(attachment_segments.c.ciphertext).where(_segment_where(swapped, n))
            ).scalar_one()
            for n in (0, 1)
        )
        conn.execute(
            attachment_segments.update().where(_segment_where(swapped, 0)).values(ciphertext=second)
        )
        conn.execute(
            attachment_segments.update().where(_segment_where(swapped, 1)).values(ciphertext=first)
        )
    for attachment_id in (cut, swapped):
        with pytest.raises(DecryptionFailed):
            _read(store, ring, attachment_id)


def test_a_missing_segment_is_refused(store: Store, ring: KekRing) -> None:
    attachment_id = _staged(store, ring, secrets.token_bytes(2 * SEG + 1))
    with store.transaction() as conn:
        conn.execute(attachment_segments.delete().where(_segment_where(attachment_id, 1)))
    with pytest.raises(DecryptionFailed, match="not all stored"):
        _read(store, ring, attachment_id)


def test_shredding_the_message_key_covers_its_attachments(store: Store, ring: KekRing) -> None:
    message_id = _message(store, ring)
    with store.transaction() as conn:
        attachment_id = factory.add_attachment(conn, message_id, b"scan" * 40_000, ring, NOW)
    with store.transaction() as conn:
        conn.execute(message_keys.delete().where(message_keys.c.message_id == message_id))
    with store.read() as conn, pytest.raises(messages.KeyShredded):
        attachments.reader(conn, attachment_id, ring)


def test_discard_and_sweep_delete_staged_only(store: Store, ring: KekRing) -> None:
    message_id = _message(store, ring)
    with store.transaction() as conn:
        linked = factory.add_attachment(conn, message_id, b"kept", ring, NOW)
    fresh = _staged(store, ring, b"x" * (SEG + 3))
    old = _staged(store, ring, b"y" * 10)
    with store.transaction() as conn:
        assert attachments.discard(conn, [linked, fresh]) == [fresh]
        assert attachments.discard(conn, [linked, fresh, "no-such-id"]) == []
        assert attachments.sweep_staged(conn, NOW + attachments.STAGED_LIFETIME, actor=JOB) == 0
        assert attachments.sweep_staged(conn, NOW + attachments.STAGED_LIFETIME * 2, actor=JOB) == 1
        left = {r.attachment_id for r in conn.execute(sa.select(attachment_segments))}
    assert left == {linked}
    with store.read() as conn, pytest.raises(AttachmentNotFound):
        attachments.staged(conn, [old], ring)


def test_the_sweep_audits_each_upload_it_deletes_and_not_a_peers_held_part(
    store: Store, ring: KekRing
) -> None:
    """An upload was audited ``attachment.uploaded``: its deletion by the sweep is recorded
    too (``attachment.expired``, by the job), in the sweep's transaction; a peer's part held
    for a retried delivery was never the case system's and is deleted without an event."""
    upload = _staged(store, ring, b"u" * 10)
    held = attachments.HeldClaim("KZ-MJ", 10, hashlib.sha256(b"h" * 10).digest())
    with store.transaction() as conn:
        part = attachments.begin(
            conn, AttachmentMeta("p.pdf", "application/pdf"), ring, NOW, held=held
        )
    with store.transaction() as conn:
        swept = attachments.sweep_staged(conn, NOW + attachments.STAGED_LIFETIME * 2, actor=JOB)
    assert swept == 2
    with store.read() as conn:
        events = conn.execute(
            sa.select(audit_events.c.actor, audit_events.c.subjects).where(
                audit_events.c.kind == "attachment.expired"
            )
        ).all()
        left = conn.execute(sa.select(attachments_table.c.attachment_id)).scalars().all()
    assert [(e.actor, json.loads(e.subjects)) for e in events] == [(JOB, {"attachment": upload})]
    assert part.attachment_id not in left and upload not in left


def test_staged_lists_in_order_and_refuses_linked(store: Store, ring: KekRing) -> None:
    a, b = _staged(store, ring, b"a"), _staged(store, ring, b"bb")
    with store.read() as conn:
        assert [i.size for i in attachments.staged(conn, [b, a], ring)] == [2, 1]
    message_id = _message(store, ring)
    with store.transaction() as conn:
        attachments.link(conn, message_id, messages.data_key(conn, message_id, ring), [a], ring)
    with store.read() as conn, pytest.raises(AttachmentNotFound, match=a):
        attachments.staged(conn, [b, a], ring)


def test_nothing_personal_in_clear(store: Store, ring: KekRing) -> None:
    name = f"{factory.DEBTOR_NAME}.pdf"
    with store.transaction() as conn:
        staging = attachments.begin(conn, AttachmentMeta(name, "application/pdf"), ring, NOW)
        attachments.write(conn, staging, factory.DEBTOR_NAME.encode() * 9000)
        attachments.finish(conn, staging)
    needle = factory.DEBTOR_NAME.encode()
    with store.read() as conn:
        for table in (attachments_table, attachment_segments):
            for row in conn.execute(sa.select(table)):
                for value in row:
                    blob = value if isinstance(value, bytes) else str(value).encode()
                    assert needle not in blob


def test_sweep_keeps_young_uploads(store: Store, ring: KekRing) -> None:
    attachment_id = _staged(store, ring, b"z")
    with store.transaction() as conn:
        assert attachments.sweep_staged(conn, NOW + timedelta(hours=23), actor=JOB) == 0
        assert attachments.staged(conn, [attachment_id], ring)[0].size == 1


@pytest.mark.parametrize("size", [0, SEG, 3 * SEG + 17])
def test_a_part_received_sealed_is_stored_as_it_came_and_shredded_with_its_message(
    store: Store, ring: KekRing, size: int
) -> None:
    """A confidential conversation's part: the sender's segments stored as they came (cut at
    any boundary on the way) and opened and hashed in that pass, then read with the sender's
    key and id once linked; its check recorded keeps that id; shredding the message key makes
    it unreadable."""
    content = secrets.token_bytes(size)
    key, prefix, sealed_as = segments.new_part_key(), segments.new_prefix(), factory.new_id()
    writer = segments.SegmentWriter(key, prefix, sealed_as)
    wire = b"".join(c for _, c in writer.feed(content)) + writer.finish()[0][1]
    assert len(wire) == segments.sealed_size(size)
    opener = segments.SegmentOpener(key, prefix, sealed_as, size)
    with store.transaction() as conn:
        staging = attachments.begin_sealed(conn, AttachmentMeta("part", "x/y"), ring, NOW, opener)
    for at in range(0, len(wire), 9_999):  # boundaries unrelated to the segments'
        with store.transaction() as conn:
            attachments.write_sealed(conn, staging, wire[at : at + 9_999])
    with store.transaction() as conn:
        stored_size, opened = attachments.finish_sealed(conn, staging)
    attachment_id = staging.attachment_id
    assert stored_size == len(wire) and opened is not None  # opened and hashed as stored
    assert (opened.failure, opened.sha256) == (None, hashlib.sha256(content).digest())
    message_id = _message(store, ring)
    checked = attachments.SealedKey(key, prefix, sealed_as, size, hashlib.sha256(content).digest())
    with store.transaction() as conn:
        message_key = messages.data_key(conn, message_id, ring)
        attachments.link(
            conn,
            message_id,
            message_key,
            [attachment_id],
            ring,
            [AttachmentMeta("акт.pdf", "application/pdf")],
            [checked],
        )
        stored = b"".join(
            r.ciphertext
            for r in conn.execute(
                sa.select(attachment_segments.c.ciphertext)
                .where(attachment_segments.c.attachment_id == attachment_id)
                .order_by(attachment_segments.c.segment_no)
            )
        )
    assert stored == wire
    assert _read(store, ring, attachment_id) == content
    with store.transaction() as conn:
        attachments.record_check(conn, attachments.reader(conn, attachment_id, ring), {"v": 1})
        (info,) = attachments.for_message(conn, message_id, ring)
    assert info.meta == AttachmentMeta("акт.pdf", "application/pdf", None, sealed_as)
    assert (info.size, info.sha256) == (size, checked.sha256)
    assert _read(store, ring, attachment_id) == content  # the check kept the segments' id
    with store.transaction() as conn:
        conn.execute(message_keys.delete().where(message_keys.c.message_id == message_id))
    with store.read() as conn, pytest.raises(messages.KeyShredded):
        attachments.reader(conn, attachment_id, ring)


def _held_part(store: Store, ring: KekRing, content: bytes) -> str:
    """A peer's part of ``content``'s claim, its first segments stored, still streaming."""
    claim = attachments.HeldClaim("RU-FSSP", len(content), hashlib.sha256(content).digest())
    with store.transaction() as conn:
        staging = attachments.begin(conn, AttachmentMeta("part", "x/y"), ring, NOW, held=claim)
        attachments.write(conn, staging, content[: 3 * SEG + 1])  # 3 segments stored
    return staging.attachment_id


def test_only_parts_held_since_a_break_are_offered_trimmed_and_taken_once(
    store: Store, ring: KekRing
) -> None:
    """A part still streaming in (its delivery not broken) is neither offered to a retry nor
    deleted by a trim another delivery's break runs; a part held since a break is, and a retry
    takes it once."""
    streaming_file, broken_file = secrets.token_bytes(5 * SEG), secrets.token_bytes(5 * SEG)
    streaming = _held_part(store, ring, streaming_file)
    broken = _held_part(store, ring, broken_file)

    def claim(content: bytes) -> attachments.HeldClaim:
        return attachments.HeldClaim("RU-FSSP", len(content), hashlib.sha256(content).digest())

    with store.transaction() as conn:
        assert attachments.held_parts(conn, claim(broken_file)) == []  # not broken yet
        attachments.hold(conn, [broken], NOW)
        (state,) = attachments.held_parts(conn, claim(broken_file))
        assert (state.attachment_id, state.offset) == (broken, 3 * SEG)
        assert attachments.held_parts(conn, claim(streaming_file)) == []
        assert attachments.trim_held(conn, "RU-FSSP", 0) == 1  # the broken one only
        rows = {r.attachment_id for r in conn.execute(sa.select(attachments_table))}
    assert streaming in rows and broken not in rows
    with store.transaction() as conn:
        attachments.hold(conn, [streaming], NOW)
        assert attachments.take_held(conn, streaming)
        assert not attachments.take_held(conn, streaming)  # a second retry gets nothing
        assert attachments.held_parts(conn, claim(streaming_file)) == []
        assert attachments.trim_held(conn, "RU-FSSP", 0) == 0  # taken on: not trimmed

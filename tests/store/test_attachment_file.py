"""A stored attachment read as a seekable file: random access over the encrypted segments, and
a signed PDF of any size verified in place (docs/attachments.md), on both stores."""

from __future__ import annotations

import io
import secrets
import tracemalloc

import pytest
import sqlalchemy as sa
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from gateway.crypto import segments
from gateway.crypto.at_rest import DecryptionFailed
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.pades import MAX_PDF_BYTES, sign_pdf, simple_signer_from, verify_pdf
from gateway.crypto.report import Indication
from gateway.crypto.trust import TrustList
from gateway.exchange.attachments import AttachmentCheckRefused, open_file, verify_pdf_in_place
from gateway.render.rendition import render_pdf
from gateway.store import Store, attachments
from gateway.store.tables import attachment_segments
from tests.render import samples
from tests.render.conftest import AT, make_pki
from tests.store.test_store_attachments import _staged

SEG = segments.SEGMENT_BYTES


def _opened(store: Store, ring: KekRing, attachment_id: str) -> attachments.Reader:
    with store.read() as conn:
        return attachments.reader(conn, attachment_id, ring)


def test_random_reads_equal_the_file(store: Store, ring: KekRing) -> None:
    content = secrets.token_bytes(5 * 1024 * 1024 + 12_345)  # three 2 MiB batches, a short end
    attachment_id = _staged(store, ring, content, piece=1_000_000)
    with open_file(store, _opened(store, ring, attachment_id)) as file:
        assert file.seek(0, io.SEEK_END) == len(content)
        for at, count in [(len(content) - 100, 500), (0, 10), (2 * 1024 * 1024 - 3, 7), (SEG, SEG)]:
            file.seek(at)
            assert file.read(count) == content[at : at + count]
        file.seek(4_000_000)
        assert file.read() == content[4_000_000:]
        assert file.read(1) == b""
        with pytest.raises(ValueError):
            file.seek(-1)


def test_a_cut_file_fails_when_its_end_is_read(store: Store, ring: KekRing) -> None:
    content = secrets.token_bytes(3 * SEG + 10)
    attachment_id = _staged(store, ring, content)
    with store.transaction() as conn:
        conn.execute(
            sa.delete(attachment_segments).where(
                attachment_segments.c.attachment_id == attachment_id,
                attachment_segments.c.segment_no == 3,
            )
        )
    with open_file(store, _opened(store, ring, attachment_id)) as file:
        file.seek(-5, io.SEEK_END)
        with pytest.raises(DecryptionFailed):
            file.read()


def _large_pdf(padding: int) -> bytes:
    """A rendition with ``padding`` random bytes in a stream of its own: a scan's size."""
    writer = IncrementalPdfFileWriter(
        io.BytesIO(render_pdf(samples.cis_receipt(), generated_at=AT))
    )
    writer.add_object(generic.StreamObject(stream_data=secrets.token_bytes(padding)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_signed_pdf_larger_than_the_in_memory_limit_is_verified_in_place(
    store: Store, ring: KekRing
) -> None:
    pki = make_pki()
    signer = simple_signer_from(pki.seal_key, pki.seal, [pki.ca])
    signed = sign_pdf(_large_pdf(MAX_PDF_BYTES + 1), signer, reason="скан", location="Москва")
    attachment_id = _staged(store, ring, signed, piece=4 * 1024 * 1024)
    opened = _opened(store, ring, attachment_id)
    (too_large,) = verify_pdf(signed, [pki.ca], AT, crls=[pki.crl()])
    assert too_large.indication is Indication.TOTAL_FAILED  # as bytes: refused, over the limit
    del signed
    tracemalloc.start()
    try:
        # What the node's use case runs (LocalNodeService.verify_attachment): in place.
        (report,) = verify_pdf_in_place(store, opened, TrustList([pki.ca], [pki.crl()]), AT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.indication is Indication.TOTAL_PASSED, report
    assert peak < 16 * 1024 * 1024, f"verifying {MAX_PDF_BYTES} bytes in place held {peak} bytes"


def test_a_pdf_altered_before_storing_fails_in_place(store: Store, ring: KekRing) -> None:
    pki = make_pki()
    signer = simple_signer_from(pki.seal_key, pki.seal, [pki.ca])
    signed = bytearray(
        sign_pdf(_large_pdf(3 * 1024 * 1024), signer, reason="скан", location="Москва")
    )
    signed[len(signed) // 2] ^= 0x01  # inside the random stream: still a readable PDF
    attachment_id = _staged(store, ring, bytes(signed), piece=1024 * 1024)
    with open_file(store, _opened(store, ring, attachment_id)) as file:
        (report,) = verify_pdf(file, [pki.ca], AT, crls=[pki.crl()])
    assert report.indication is not Indication.TOTAL_PASSED, report


def test_a_segment_altered_inside_the_signed_range_is_named_damaged(
    store: Store, ring: KekRing
) -> None:
    """pyHanko swallows a read error while hashing the signed bytes (it reports a malformed
    signature): the file remembers the authentication failure, and the check names it."""
    pki = make_pki()
    signer = simple_signer_from(pki.seal_key, pki.seal, [pki.ca])
    signed = sign_pdf(_large_pdf(5 * 1024 * 1024), signer, reason="скан", location="Москва")
    attachment_id = _staged(store, ring, signed, piece=1024 * 1024)
    where = (attachment_segments.c.attachment_id == attachment_id) & (
        attachment_segments.c.segment_no == 40  # in the second 2 MiB batch, mid-file
    )
    with store.transaction() as conn:
        sealed = bytearray(
            conn.execute(sa.select(attachment_segments.c.ciphertext).where(where)).scalar_one()
        )
        sealed[100] ^= 0x01
        conn.execute(attachment_segments.update().where(where).values(ciphertext=bytes(sealed)))
    opened = _opened(store, ring, attachment_id)
    with pytest.raises(AttachmentCheckRefused) as refused:
        verify_pdf_in_place(store, opened, TrustList([pki.ca], [pki.crl()]), AT)
    assert refused.value.code == AttachmentCheckRefused.DAMAGED

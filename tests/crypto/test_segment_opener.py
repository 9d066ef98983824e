"""A confidential part opened and hashed as it is stored (``segments.SegmentOpener``): any
record altered, moved, missing or extra, or a stream cut at a segment boundary, is a failure
named by the opener, never a digest. And a resumable upload's writer, rebuilt from its stored
segments (``segments.SegmentWriter.resumed``), ends as one writer fed the whole file would."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

import pytest

from gateway.crypto import segments

SEG = segments.SEGMENT_BYTES
CONTENT = secrets.token_bytes(3 * SEG + 1234)


def _records(content: bytes) -> tuple[bytes, bytes, str, list[tuple[int, bytes]]]:
    key, prefix, sealed_as = segments.new_part_key(), segments.new_prefix(), "sender-part-id"
    writer = segments.SegmentWriter(key, prefix, sealed_as)
    records = writer.feed(content)
    records.append(writer.finish()[0])
    return key, prefix, sealed_as, records


def _opened(
    records: list[tuple[int, bytes]], size: int, *, key: bytes, prefix: bytes, sealed_as: str
) -> segments.OpenedStream:
    opener = segments.SegmentOpener(key, prefix, sealed_as, size)
    for at in range(0, len(records), 2):  # in batches, as the store writes them
        opener.feed(records[at : at + 2])
    return opener.finish()


def test_an_intact_stream_opens_to_its_sha256() -> None:
    key, prefix, sealed_as, records = _records(CONTENT)
    opened = _opened(records, len(CONTENT), key=key, prefix=prefix, sealed_as=sealed_as)
    assert opened.failure is None and opened.sha256 == hashlib.sha256(CONTENT).digest()
    assert (opened.key, opened.prefix, opened.sealed_as, opened.size) == (
        key,
        prefix,
        sealed_as,
        len(CONTENT),
    )


@pytest.mark.parametrize("size", [0, 1, SEG, SEG + 1])
def test_short_and_boundary_sizes_open(size: int) -> None:
    content = secrets.token_bytes(size)
    key, prefix, sealed_as, records = _records(content)
    opened = _opened(records, size, key=key, prefix=prefix, sealed_as=sealed_as)
    assert (opened.failure, opened.sha256) == (None, hashlib.sha256(content).digest())


def _flipped(records: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    number, ciphertext = records[1]
    return [records[0], (number, bytes([ciphertext[0] ^ 1]) + ciphertext[1:]), *records[2:]]


def _swapped(records: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    return [records[0], (1, records[2][1]), (2, records[1][1]), *records[3:]]


@pytest.mark.parametrize(
    ("change", "failure"),
    [
        (_flipped, "failed authentication"),
        (_swapped, "failed authentication"),
        (lambda r: r[:-1], "cut before its final segment"),
        (lambda r: [*r, (len(r), r[-1][1])], "where 4 of 4 was expected"),
        (lambda r: [r[0], *r[2:]], "segment 2 where 1"),
    ],
    ids=["bit flipped", "two swapped", "last missing", "one too many", "one missing"],
)
def test_a_changed_stream_fails_by_name(
    change: Callable[[list[tuple[int, bytes]]], list[tuple[int, bytes]]], failure: str
) -> None:
    key, prefix, sealed_as, records = _records(CONTENT)
    opened = _opened(change(records), len(CONTENT), key=key, prefix=prefix, sealed_as=sealed_as)
    assert opened.sha256 is None and opened.failure is not None
    assert failure in opened.failure


def test_a_stream_cut_at_a_segment_boundary_is_not_final() -> None:
    """Listed one segment shorter than sealed: its last segment there was sealed not final."""
    key, prefix, sealed_as, records = _records(CONTENT)
    opened = _opened(records[:2], 2 * SEG, key=key, prefix=prefix, sealed_as=sealed_as)
    assert opened.failure is not None and "failed authentication" in opened.failure


@pytest.mark.parametrize("wrong", ["key", "prefix", "sealed_as"])
def test_another_key_prefix_or_id_does_not_open(wrong: str) -> None:
    key, prefix, sealed_as, records = _records(CONTENT)
    if wrong == "key":
        key = segments.new_part_key()
    elif wrong == "prefix":
        prefix = segments.new_prefix()
    else:
        sealed_as = "another-id"
    opened = _opened(records, len(CONTENT), key=key, prefix=prefix, sealed_as=sealed_as)
    assert opened.failure is not None and "segment 0" in opened.failure


@pytest.mark.parametrize("cut", [1, 1000, SEG - 1, SEG, SEG + 1, 3 * SEG])
def test_the_writer_seals_the_same_segments_however_the_stream_is_cut(cut: int) -> None:
    """Fed in pieces of ``cut`` bytes (within a segment, at its edge, across several), the
    writer seals what it seals fed whole, and the opener opens it to the same digest."""
    key, prefix = segments.new_part_key(), segments.new_prefix()
    whole = segments.SegmentWriter(key, prefix, "id")
    expected = [*whole.feed(CONTENT), whole.finish()[0]]
    pieces = segments.SegmentWriter(key, prefix, "id")
    records = [r for at in range(0, len(CONTENT), cut) for r in pieces.feed(CONTENT[at : at + cut])]
    last, digest = pieces.finish()
    assert [*records, last] == expected and digest == hashlib.sha256(CONTENT).digest()
    opened = _opened(expected, len(CONTENT), key=key, prefix=prefix, sealed_as="id")
    assert opened.sha256 == digest


@pytest.mark.parametrize("cut", [1, 1000, segments.RECORD_BYTES, segments.RECORD_BYTES + 1])
def test_the_splitter_cuts_the_same_records_however_the_stream_is_cut(cut: int) -> None:
    *_, expected = _records(CONTENT)
    wire = b"".join(c for _, c in expected)
    splitter = segments.SegmentSplitter()
    records = [r for at in range(0, len(wire), cut) for r in splitter.feed(wire[at : at + cut])]
    assert [*records, *splitter.finish()] == expected and splitter.size == len(wire)


def test_a_resumed_writer_seals_and_hashes_as_one_writer_would() -> None:
    """A resumable upload's later part: the writer rebuilt from the stored (full, non-final)
    segments ends with the same segments and the same SHA-256 as one writer fed it all."""
    key, prefix = segments.new_part_key(), segments.new_prefix()
    data = secrets.token_bytes(5 * segments.SEGMENT_BYTES + 1234)
    whole = segments.SegmentWriter(key, prefix, "upload")
    expected = [*whole.feed(data), (last := whole.finish())[0]]

    first = segments.SegmentWriter(key, prefix, "upload")
    stored = first.feed(data[: 3 * segments.SEGMENT_BYTES]) + first.seal_held()
    assert [number for number, _ in stored] == [0, 1, 2], "the held full segment is sealed too"
    resumed = segments.SegmentWriter.resumed(key, prefix, "upload", (c for _, c in stored))
    assert resumed.size == 3 * segments.SEGMENT_BYTES
    rest = resumed.feed(data[3 * segments.SEGMENT_BYTES :])
    final, digest = resumed.finish()
    assert digest == last[1] == hashlib.sha256(data).digest()
    # Sealing is randomised only by the key and prefix, so the segments are the same bytes.
    assert [*stored, *rest, final] == expected


def test_a_resumed_writer_refuses_stored_segments_altered_or_short() -> None:
    key, prefix = segments.new_part_key(), segments.new_prefix()
    writer = segments.SegmentWriter(key, prefix, "upload")
    stored = [c for _, c in writer.feed(bytes(3 * segments.SEGMENT_BYTES))]
    altered = [stored[0], bytes([stored[1][0] ^ 1]) + stored[1][1:]]
    with pytest.raises(segments.DecryptionFailed, match="segment 1"):
        segments.SegmentWriter.resumed(key, prefix, "upload", altered)
    short = segments.seal_segment(key, prefix, "upload", 0, b"short", final=False)
    with pytest.raises(segments.DecryptionFailed, match="only full segments"):
        segments.SegmentWriter.resumed(key, prefix, "upload", [short])
    final = segments.seal_segment(key, prefix, "upload", 0, bytes(segments.SEGMENT_BYTES), True)
    with pytest.raises(segments.DecryptionFailed):
        segments.SegmentWriter.resumed(key, prefix, "upload", [final])

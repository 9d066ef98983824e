"""Streaming AEAD for attachments at rest: 64 KiB segments, each sealed on its own.

Every attachment has its own random *part key*. Segment ``n`` is AES-256-GCM under that key
with the nonce ``prefix (8 random bytes) || n (4 bytes, big endian)`` and the associated data
``domain || attachment id || n || final flag``. So:

* a segment moved to another place (reordered) or into another attachment fails to open;
* a stream cut after a non-final segment fails, because that segment was sealed with
  ``final = 0`` and is opened as the last one with ``final = 1`` (truncation is detected);
* nothing after the final segment is accepted.

The part key is itself wrapped (AES-GCM) under the *message data key* once the attachment
belongs to a message (:func:`wrap_part_key`), so destroying the message's data key (purge,
crypto-shredding) makes its attachments unreadable with it. Before that (an upload not yet
referenced by a submission, or a part still streaming in from a peer) the part key is wrapped
by the KEK ring like a message's data key (``at_rest.wrap_data_key``).

Why a part key under the message key, and not the message key itself: an upload is encrypted
while it streams in, before the submission that makes the message (and its data key) exists.
Re-encrypting a gigabyte at submission would double the work; re-wrapping 32 bytes does not.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.crypto.at_rest import DecryptionFailed

SEGMENT_BYTES = 64 * 1024
"""Plaintext bytes per segment: large enough that the 16-byte tag and one database row per
segment cost little (0.02 %), small enough that a reader holds a few of them at a time."""

PREFIX_BYTES = 8
TAG_BYTES = 16
PART_KEY_BYTES = 32
MAX_SEGMENTS = 2**32
"""The counter is 4 bytes: 256 TiB per attachment, far above any published limit."""

_SEGMENT_DOMAIN = b"cis-exchange/attachment-segment/1"
_PART_KEY_DOMAIN = b"cis-exchange/attachment-part-key/1"


RECORD_BYTES = SEGMENT_BYTES + TAG_BYTES
"""One full sealed segment: what a confidential part carries on the wire per segment."""


def segment_count(size: int) -> int:
    """Segments of a ``size``-byte plaintext (an empty one still has its final segment)."""
    return max(1, -(-size // SEGMENT_BYTES))


def sealed_size(size: int) -> int:
    """Bytes of a ``size``-byte plaintext's segments, tags included (as sent sealed)."""
    return size + TAG_BYTES * segment_count(size)


def new_part_key() -> bytes:
    return secrets.token_bytes(PART_KEY_BYTES)


def new_prefix() -> bytes:
    return secrets.token_bytes(PREFIX_BYTES)


def _nonce(prefix: bytes, number: int) -> bytes:
    if not 0 <= number < MAX_SEGMENTS:
        raise ValueError(f"segment number {number} out of range")
    return prefix + struct.pack(">I", number)


def _aad(attachment_id: str, number: int, final: bool) -> bytes:
    return b"\x00".join(
        (_SEGMENT_DOMAIN, attachment_id.encode(), struct.pack(">QB", number, int(final)))
    )


def seal_segment(
    key: bytes,
    prefix: bytes,
    attachment_id: str,
    number: int,
    plaintext: bytes | bytearray | memoryview,
    final: bool,
) -> bytes:
    """One segment's ciphertext (with its tag)."""
    if len(plaintext) > SEGMENT_BYTES:
        raise ValueError(f"segment of {len(plaintext)} bytes; at most {SEGMENT_BYTES}")
    return AESGCM(key).encrypt(
        _nonce(prefix, number), plaintext, _aad(attachment_id, number, final)
    )


def open_segment(
    key: bytes, prefix: bytes, attachment_id: str, number: int, ciphertext: bytes, final: bool
) -> bytes:
    try:
        return AESGCM(key).decrypt(
            _nonce(prefix, number), ciphertext, _aad(attachment_id, number, final)
        )
    except (InvalidTag, ValueError):
        raise DecryptionFailed(
            f"attachment {attachment_id}, segment {number}: stored ciphertext failed "
            "authentication (altered, moved, or the stream was cut); restore it from a backup"
        ) from None


def open_stream(
    key: bytes, prefix: bytes, attachment_id: str, segments: Iterable[tuple[int, bytes]]
) -> Iterator[bytes]:
    """The plaintext of ``(number, ciphertext)`` segments in order; refuses a gap, a reorder
    or a stream that ends before its final segment (:class:`DecryptionFailed`)."""
    pending: tuple[int, bytes] | None = None
    for expected, (number, ciphertext) in enumerate(segments):
        if number != expected:
            raise DecryptionFailed(
                f"attachment {attachment_id}: segment {number} where {expected} was expected"
            )
        if pending is not None:
            yield open_segment(key, prefix, attachment_id, pending[0], pending[1], final=False)
        pending = (number, ciphertext)
    if pending is None:
        raise DecryptionFailed(f"attachment {attachment_id}: no segment stored")
    yield open_segment(key, prefix, attachment_id, pending[0], pending[1], final=True)


def _part_key_aad(message_id: str, attachment_id: str) -> bytes:
    return b"\x00".join((_PART_KEY_DOMAIN, message_id.encode(), attachment_id.encode()))


def wrap_part_key(
    message_key: bytes, message_id: str, attachment_id: str, part_key: bytes
) -> bytes:
    """``nonce || AES-GCM(message data key, part key)``, bound to the message and attachment."""
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(message_key).encrypt(
        nonce, part_key, _part_key_aad(message_id, attachment_id)
    )


def unwrap_part_key(
    message_key: bytes, message_id: str, attachment_id: str, wrapped: bytes
) -> bytes:
    try:
        return AESGCM(message_key).decrypt(
            wrapped[:12], wrapped[12:], _part_key_aad(message_id, attachment_id)
        )
    except (InvalidTag, ValueError):
        raise DecryptionFailed(
            f"attachment {attachment_id}: its key does not open under message {message_id}'s "
            "data key (altered or moved to another message)"
        ) from None


@dataclass
class _Counted:
    """What both stream cutters keep: bytes seen, the next segment's number, and what is held
    back until more comes."""

    size: int = field(default=0, init=False)
    _next: int = field(default=0, init=False)
    _buffer: bytearray = field(default_factory=bytearray, init=False)

    def _count(self, data: bytes) -> None:
        self.size += len(data)

    def _number(self) -> int:
        number = self._next
        self._next += 1
        return number

    def _cut(
        self,
        data: bytes,
        size: int,
        emit: Callable[[bytearray | memoryview], tuple[int, bytes]],
        *,
        hold_full: bool,
    ) -> list[tuple[int, bytes]]:
        """Count ``data`` and cut the stream into ``size``-byte pieces as it comes: each piece
        complete so far goes through ``emit``, the rest is held back for the next feed.
        ``hold_full``: a complete piece is held too until a byte beyond it arrives (the
        writer's last segment must be sealed final, so it cannot be sealed before the end)."""
        self._count(data)
        view = memoryview(data)
        out: list[tuple[int, bytes]] = []
        beyond = 1 if hold_full else 0  # bytes past a complete piece before it goes out
        if self._buffer:  # the piece begun by the previous feed, completed from this one
            need = size - len(self._buffer)
            if len(view) < need + beyond:
                self._buffer += view
                return out
            self._buffer += view[:need]
            out.append(emit(self._buffer))
            view = view[need:]
        start = 0
        while len(view) - start >= size + beyond:  # cut from the caller's bytes, not copied
            out.append(emit(view[start : start + size]))
            start += size
        self._buffer = bytearray(view[start:])
        return out


@dataclass
class SegmentWriter(_Counted):
    """Hashes and seals a stream as it comes: :meth:`feed` returns the segments complete so
    far, :meth:`finish` the last one. Holds at most one segment of plaintext."""

    key: bytes
    prefix: bytes
    attachment_id: str
    _hash: Any = field(default_factory=hashlib.sha256, init=False)

    def _count(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        # A segment is sealed only once a byte beyond it arrived: the last one must be final.
        return self._cut(
            data, SEGMENT_BYTES, lambda piece: self._seal(piece, final=False), hold_full=True
        )

    @classmethod
    def resumed(
        cls, key: bytes, prefix: bytes, attachment_id: str, stored: Iterable[bytes]
    ) -> SegmentWriter:
        """A writer that goes on after ``stored``, the first segments of the stream (each
        full, none final: a resumable upload's parts so far). They are opened and hashed again,
        because a SHA-256 in progress cannot be stored; a segment that does not open or is not
        full raises :class:`DecryptionFailed`."""
        writer = cls(key, prefix, attachment_id)
        for number, ciphertext in enumerate(stored):
            plaintext = open_segment(key, prefix, attachment_id, number, ciphertext, final=False)
            if len(plaintext) != SEGMENT_BYTES:
                raise DecryptionFailed(
                    f"attachment {attachment_id}, segment {number}: {len(plaintext)} bytes "
                    f"where a stored part holds only full segments of {SEGMENT_BYTES}"
                )
            writer._count(plaintext)
            writer._next += 1
        return writer

    def seal_held(self) -> list[tuple[int, bytes]]:
        """The full segment held back, sealed as not final, when the caller knows more of the
        stream comes later (a resumable upload's part ended before the declared length); a
        shorter remainder cannot be sealed before the end and stays held."""
        if len(self._buffer) != SEGMENT_BYTES:
            return []
        held = self._seal(self._buffer, final=False)
        self._buffer = bytearray()
        return [held]

    def finish(self) -> tuple[tuple[int, bytes], bytes]:
        """The final segment and the SHA-256 of everything fed."""
        last = self._seal(bytes(self._buffer), final=True)
        self._buffer = bytearray()
        return last, self._hash.digest()

    def _seal(self, plaintext: bytes | bytearray | memoryview, *, final: bool) -> tuple[int, bytes]:
        number = self._number()
        return number, seal_segment(
            self.key, self.prefix, self.attachment_id, number, plaintext, final
        )


@dataclass
class SegmentSplitter(_Counted):
    """Cuts a stream of sealed segments, sent back to back (a confidential part on the wire),
    into its :data:`RECORD_BYTES` records as it comes; opening (and hashing) them is
    :class:`SegmentOpener`'s. Holds at most one record."""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        # One copy each, out of the caller's bytes: the records outlive this feed.
        return self._cut(
            data, RECORD_BYTES, lambda piece: (self._number(), bytes(piece)), hold_full=False
        )

    @classmethod
    def resumed(cls, count: int) -> SegmentSplitter:
        """A splitter that goes on after ``count`` whole records (held from a delivery that
        broke off; the caller has fed them to its opener)."""
        splitter = cls()
        splitter.size = count * RECORD_BYTES
        splitter._next = count
        return splitter

    def finish(self) -> list[tuple[int, bytes]]:
        """The last, shorter record (if any)."""
        last = [(self._number(), bytes(self._buffer))] if self._buffer else []
        self._buffer = bytearray()
        return last


@dataclass(frozen=True, slots=True)
class OpenedStream:
    """What :class:`SegmentOpener` found: the parameters it opened with, and either the
    plaintext's SHA-256 or why the stream did not open."""

    key: bytes
    prefix: bytes
    sealed_as: str
    size: int
    sha256: bytes | None
    failure: str | None


@dataclass
class SegmentOpener:
    """Opens a sealed part's records as they are stored (:class:`SegmentSplitter`'s, in
    order) and hashes the plaintext: a receiver checks a confidential part in the pass that
    stores it, not by reading it back. ``size`` is the plaintext's, as listed: it says which
    segment is the final one. After the first record that fails it opens no more and keeps
    the failure; holds no plaintext between records."""

    key: bytes
    prefix: bytes
    sealed_as: str
    size: int
    _failure: str | None = field(default=None, init=False)
    _opened: int = field(default=0, init=False)
    _bytes: int = field(default=0, init=False)
    _hash: Any = field(default_factory=hashlib.sha256, init=False)

    def feed(self, records: Iterable[tuple[int, bytes]]) -> None:
        count = segment_count(self.size)
        for number, ciphertext in records:
            if self._failure is not None:
                return
            if number != self._opened or number >= count:
                self._failure = (
                    f"segment {number} where {self._opened} of {count} was expected "
                    f"({self.size} bytes seal to {count} segments)"
                )
                return
            try:
                plaintext = open_segment(
                    self.key, self.prefix, self.sealed_as, number, ciphertext, number == count - 1
                )
            except DecryptionFailed as error:
                self._failure = str(error)
                return
            self._hash.update(plaintext)
            self._opened += 1
            self._bytes += len(plaintext)

    def finish(self) -> OpenedStream:
        failure = self._failure
        if failure is None and (self._opened, self._bytes) != (segment_count(self.size), self.size):
            failure = (
                f"{self._opened} segments of {self._bytes} bytes opened; the stream was cut "
                f"before its final segment ({self.size} bytes listed)"
            )
        digest = self._hash.digest() if failure is None else None
        return OpenedStream(self.key, self.prefix, self.sealed_as, self.size, digest, failure)

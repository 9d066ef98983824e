"""At-rest envelope encryption: per-message data keys wrapped by a key-encryption key.

Theory of operation
-------------------
Every stored message gets its own random 256-bit **data key** (DEK). The signed document and
each attachment are encrypted with it under AES-256-GCM, each with a fresh 96-bit nonce and
*associated data* that names the message id and the part (``payload_aad``), so a ciphertext
moved to another row, or to another part of the same message, fails authentication.

The DEK is stored only **wrapped** by a key-encryption key (KEK, key role ``kek``): any
:class:`KeyEncryptionKey`, or a :class:`KeyRing` of several by id (one active) that opens old
rows while new rows and re-wrapping use the active one. The KEKs themselves (file, token) and
the ring are :mod:`gateway.crypto.keys.kek`.

The store puts one more key between the two: a message's DEK is wrapped under the
*retention period key* of its week of storage, an AES key that the KEK wraps in turn
(``gateway.store.period_keys``). Destroying that period key after a purge (crypto-shredding)
makes every copy of the purged messages' wrapped DEKs useless, whatever copy of the store they
live in; a backup made before, which also holds the wrapped period key, dies with the KEK that
wrapped it, once that KEK is rotated out and destroyed.

Recipes (safe): :func:`seal_payload` / :func:`open_payload`, :func:`search_tag`. Lower layer
(hazardous: the caller must choose associated data that binds the ciphertext to its place):
:func:`new_data_key`,
:func:`encrypt_part`, :func:`decrypt_part`, :func:`wrap_data_key`, :func:`unwrap_data_key`.

Exception tree::

    GatewayError
    └── AtRestError
        ├── DecryptionFailed     ciphertext, nonce, wrapped key or associated data altered
        ├── UnknownKek           a wrapped key names a KEK the ring does not hold
        └── KekFileError         a KEK file is unreadable, malformed or the passphrase is wrong
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.model.problems import GatewayError

DATA_KEY_BYTES = 32
"""AES-256: a data key and a KEK are 256 bits (the brief and NIST SP 800-57 for data kept years)."""
NONCE_BYTES = 12
"""96-bit GCM nonce, the size GCM is defined for; random, and a DEK encrypts only a few parts."""
WRAPPED_KEY_BYTES = DATA_KEY_BYTES + 8
"""RFC 3394 adds one 64-bit integrity block."""
_SEARCH_TAG_DOMAIN = b"gateway:search-index:v1\x00"
_SEARCH_TAG_INFO = b"gateway:search-index:v1:tag"
_DISPLAY_INFO = b"gateway:search-index:v1:display"
_DASHES = re.compile(r"[\-‐‑‒–—―]")
SearchField = Literal["debtor", "case"]
"""What a search tag indexes: a debtor's name or a case (proceeding) number."""
_PAYLOAD_AAD_DOMAIN = "gateway:payload:v1"


class AtRestError(GatewayError):
    """Root of at-rest encryption errors."""


class DecryptionFailed(AtRestError):
    """A stored ciphertext did not authenticate: it, its nonce, its wrapped data key or its
    associated data (the message id it belongs to) was changed. Nothing was decrypted."""


class UnknownKek(AtRestError):
    """A wrapped data key names a KEK that is not loaded."""


class KekFileError(AtRestError):
    """A KEK file cannot be used: unreadable, malformed, too weak, or the passphrase is wrong."""


@runtime_checkable
class KeyEncryptionKey(Protocol):
    """A key-encryption key: wraps and unwraps 256-bit data keys. The key itself never leaves."""

    @property
    def key_id(self) -> str:
        """Stable id stored beside every data key this KEK wraps."""
        ...

    def wrap(self, dek: bytes) -> bytes:
        """Wrap a 32-byte data key; the result is safe to store."""
        ...

    def unwrap(self, blob: bytes) -> bytes:
        """Unwrap what :meth:`wrap` produced; raise :class:`DecryptionFailed` if altered."""
        ...


class KeyRing(Protocol):
    """Several KEKs by id, one active (:class:`gateway.crypto.keys.kek.KekRing`)."""

    @property
    def active(self) -> KeyEncryptionKey:
        """The KEK new data keys are wrapped under."""
        ...

    def get(self, key_id: str) -> KeyEncryptionKey:
        """The KEK with this id, or :class:`UnknownKek`."""
        ...


def unknown_kek(key_id: str, loaded: Iterable[str]) -> UnknownKek:
    """The error for a data key wrapped under a KEK that is not among ``loaded``."""
    return UnknownKek(
        f"data key wrapped under KEK {key_id!r}, which is not loaded "
        f"(loaded: {', '.join(sorted(loaded)) or 'none'}); add its file to the key ring"
    )


def check_data_key(dek: bytes) -> bytes:
    if len(dek) != DATA_KEY_BYTES:
        raise AtRestError(f"a data key is {DATA_KEY_BYTES} bytes, got {len(dek)}")
    return dek


@dataclass(frozen=True, slots=True)
class WrappedKey:
    kek_id: str
    """Id of the KEK that wrapped :attr:`blob`."""
    blob: bytes
    """The wrapped data key."""


@dataclass(frozen=True, slots=True)
class SealedPayload:
    ciphertext: bytes
    """AES-256-GCM ciphertext with its 16-byte tag appended."""
    nonce: bytes
    wrapped_dek: bytes
    kek_id: str


@dataclass(frozen=True, slots=True)
class SearchKeys:
    """Keys of the conversation search index (:func:`search_keys`)."""

    tag: bytes
    """HMAC key of the debtor and case-number tags."""
    display: bytes
    """AES-256-GCM key of the list's sealed display values."""


def _active(keys: KeyEncryptionKey | KeyRing) -> KeyEncryptionKey:
    return keys if isinstance(keys, KeyEncryptionKey) else keys.active


def _named(keys: KeyEncryptionKey | KeyRing, key_id: str) -> KeyEncryptionKey:
    if not isinstance(keys, KeyEncryptionKey):
        return keys.get(key_id)
    if keys.key_id != key_id:
        raise unknown_kek(key_id, [keys.key_id])
    return keys


def new_data_key() -> bytes:
    """A fresh random 256-bit data key (hazardous layer: keep it only as long as needed)."""
    return secrets.token_bytes(DATA_KEY_BYTES)


def wrap_data_key(dek: bytes, keys: KeyEncryptionKey | KeyRing) -> WrappedKey:
    """Wrap ``dek`` under the given KEK (or the ring's active one)."""
    kek = _active(keys)
    return WrappedKey(kek.key_id, kek.wrap(check_data_key(dek)))


def unwrap_data_key(wrapped: WrappedKey, keys: KeyEncryptionKey | KeyRing) -> bytes:
    """Unwrap with the KEK the key names; :class:`UnknownKek` or :class:`DecryptionFailed`."""
    dek = _named(keys, wrapped.kek_id).unwrap(wrapped.blob)
    return check_data_key(dek)


def encrypt_part(dek: bytes, plaintext: bytes, associated_data: bytes) -> tuple[bytes, bytes]:
    """Encrypt one part under a data key: ``(nonce, ciphertext)`` (hazardous layer)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce, AESGCM(check_data_key(dek)).encrypt(nonce, plaintext, associated_data)


def decrypt_part(dek: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
    """Decrypt one part; :class:`DecryptionFailed` if anything was altered (hazardous layer)."""
    try:
        return AESGCM(check_data_key(dek)).decrypt(nonce, ciphertext, associated_data)
    except (InvalidTag, ValueError):
        raise DecryptionFailed(
            "stored ciphertext failed authentication: the ciphertext, its nonce, its data key "
            "or the message id it is bound to was changed; restore the row from a backup"
        ) from None


def payload_aad(message_id: str, part: str = "document") -> bytes:
    """Associated data binding a ciphertext to its message and part (``document``,
    ``attachment:<n>``): the same bytes sealed for message A cannot be opened as message B."""
    return f"{_PAYLOAD_AAD_DOMAIN}\x00{message_id}\x00{part}".encode()


def seal_payload(
    plaintext: bytes, kek: KeyEncryptionKey | KeyRing, associated_data: bytes
) -> SealedPayload:
    """Encrypt ``plaintext`` under a fresh data key wrapped by ``kek`` (or a ring's active KEK)."""
    dek = new_data_key()
    wrapped = wrap_data_key(dek, kek)
    nonce, ciphertext = encrypt_part(dek, plaintext, associated_data)
    return SealedPayload(ciphertext, nonce, wrapped.blob, wrapped.kek_id)


def open_payload(
    sealed: SealedPayload, kek: KeyEncryptionKey | KeyRing, associated_data: bytes
) -> bytes:
    """Decrypt what :func:`seal_payload` produced with the same associated data.

    Raises :class:`DecryptionFailed` if the ciphertext, nonce, wrapped key or associated data
    changed, :class:`UnknownKek` if the KEK that wrapped the data key is not given.
    """
    dek = unwrap_data_key(WrappedKey(sealed.kek_id, sealed.wrapped_dek), kek)
    return decrypt_part(dek, sealed.nonce, sealed.ciphertext, associated_data)


_SPACES = re.compile(r"\s+")
_NAME_PUNCTUATION = re.compile(r"[\-‐‑‒–—'’`.,]")


def normalise_debtor_name(full_name: str) -> str:
    """The form of a name that the debtor index hashes: NFKC, case-folded, ``ё`` → ``е``,
    hyphens, apostrophes, dots and commas removed, runs of spaces made one.

    It does not transliterate: ``Иванов`` and ``Ivanov`` are different names to the index.
    """
    text = unicodedata.normalize("NFKC", full_name).casefold().replace("ё", "е")
    text = _NAME_PUNCTUATION.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def normalise_case_number(number: str) -> str:
    """The form of a case (proceeding) number the search index hashes: NFKC, case-folded,
    ``ё`` → ``е``, every dash one ``-``, ``№`` and all spaces removed — so «184512/26/77039-ИП»,
    «184512/26/77039 – ип» and «№184512/26/77039-ИП» find the same conversation."""
    # «№» goes before NFKC, which would make it «No».
    text = unicodedata.normalize("NFKC", number.replace("№", "")).casefold().replace("ё", "е")
    text = _DASHES.sub("-", text)
    return _SPACES.sub("", text)


def search_keys(secret: bytes) -> SearchKeys:
    """The search index's tag key and the list's display key, derived (HKDF-SHA-256, distinct
    ``info``) from the node's one search secret, so neither key serves two purposes."""
    if len(secret) != DATA_KEY_BYTES:
        raise AtRestError(f"the search secret is {DATA_KEY_BYTES} bytes")
    return SearchKeys(_hkdf(secret, _SEARCH_TAG_INFO), _hkdf(secret, _DISPLAY_INFO))


def search_tag(tag_key: bytes, field: SearchField, value: str) -> bytes:
    """HMAC-SHA-256 of a normalised debtor name or case number under the node's tag key.

    Lets the store find conversations by debtor or case number without keeping either: without
    the key the tag says nothing, and it cannot be reversed by guessing names. ``field`` is in
    the MAC's input, so a name and a case number that normalise alike never share a tag.
    """
    if len(tag_key) != DATA_KEY_BYTES:
        raise AtRestError(f"the search tag key is {DATA_KEY_BYTES} bytes")
    text = normalise_case_number(value) if field == "case" else normalise_debtor_name(value)
    if not text:
        raise AtRestError(f"the {field} is empty after normalisation; nothing to index")
    message = _SEARCH_TAG_DOMAIN + field.encode() + b"\x00" + text.encode("utf-8")
    return hmac.new(tag_key, message, hashlib.sha256).digest()


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=DATA_KEY_BYTES, salt=None, info=info).derive(
        secret
    )

"""At-rest envelope encryption: per-message data keys wrapped by a key-encryption key.

Theory of operation
-------------------
Every stored message gets its own random 256-bit **data key** (DEK). The signed document and
each attachment are encrypted with it under AES-256-GCM, each with a fresh 96-bit nonce and
*associated data* that names the message id and the part (``payload_aad``), so a ciphertext
moved to another row, or to another part of the same message, fails authentication.

The DEK is stored only **wrapped** by a key-encryption key (KEK, key role ``kek``): AES key
wrap (RFC 3394, NIST SP 800-38F) for a :class:`FileKek`, the same mechanism on the token for a
:class:`Pkcs11Kek`. Each wrapped DEK records the KEK's id, so a :class:`KekRing` of several
KEKs (one active) lets old rows be opened while new rows and re-wrapping use the active one.

The store puts one more key between the two: a message's DEK is wrapped under the
*retention period key* of its week of storage, an AES key that the KEK wraps in turn
(``gateway.store.period_keys``). Destroying that period key after a purge (crypto-shredding)
makes every copy of the purged messages' wrapped DEKs useless, whatever copy of the store they
live in; a backup made before, which also holds the wrapped period key, dies with the KEK that
wrapped it, once that KEK is rotated out and destroyed.

Recipes (safe): :func:`seal_payload` / :func:`open_payload`, :func:`generate_file_kek` /
:func:`load_file_kek`, :func:`search_tag`. Lower layer (hazardous: the caller must
choose associated data that binds the ciphertext to its place): :func:`new_data_key`,
:func:`encrypt_part`, :func:`decrypt_part`, :func:`wrap_data_key`, :func:`unwrap_data_key`.

Exception tree::

    GatewayError
    └── AtRestError
        ├── DecryptionFailed     ciphertext, nonce, wrapped key or associated data altered
        ├── UnknownKek           a wrapped key names a KEK the ring does not hold
        └── KekFileError         a KEK file is unreadable, malformed or the passphrase is wrong
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from gateway.model.problems import GatewayError

DATA_KEY_BYTES = 32
"""AES-256: a data key and a KEK are 256 bits (the brief and NIST SP 800-57 for data kept years)."""
NONCE_BYTES = 12
"""96-bit GCM nonce, the size GCM is defined for; random, and a DEK encrypts only a few parts."""
WRAPPED_KEY_BYTES = DATA_KEY_BYTES + 8
"""RFC 3394 adds one 64-bit integrity block."""
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
"""A KEK id goes into every wrapped-key row and log line: short, printable, no spaces."""

KEK_FILE_FORMAT = "gateway-kek"
KEK_FILE_VERSION = 1
SCRYPT_LOG2_N = 17
"""scrypt cost N = 2**17, r = 8, p = 1 (OWASP's recommendation; ~128 MiB and ~0.3 s once per
process start: the KEK is unlocked at start-up, not per message)."""
SCRYPT_MIN_LOG2_N = 14
"""A KEK file asking for less work than this is refused: someone weakened it."""
SCRYPT_MAX_LOG2_N = 20
"""A KEK file asking for more is refused: N = 2**20 already needs 1 GiB of memory."""
SCRYPT_R = 8
SCRYPT_P = 1
KEK_FILE_MAX_BYTES = 4096
"""A KEK file is a few hundred bytes; anything far larger is not ours."""

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


def _check_key_id(key_id: str) -> str:
    if not KEY_ID_PATTERN.match(key_id):
        raise AtRestError(
            f"KEK id {key_id!r} must be 1–64 characters of letters, digits, '.', '_', ':' or '-'"
        )
    return key_id


def _check_dek(dek: bytes) -> bytes:
    if len(dek) != DATA_KEY_BYTES:
        raise AtRestError(f"a data key is {DATA_KEY_BYTES} bytes, got {len(dek)}")
    return dek


class FileKek:
    """A KEK held in memory, loaded from a passphrase-protected file (:func:`load_file_kek`)."""

    __slots__ = ("_key", "_key_id")

    def __init__(self, key_id: str, key: bytes) -> None:
        if len(key) != DATA_KEY_BYTES:
            raise AtRestError(f"a KEK is {DATA_KEY_BYTES} bytes, got {len(key)}")
        self._key_id = _check_key_id(key_id)
        self._key = bytes(key)

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, dek: bytes) -> bytes:
        return aes_key_wrap(self._key, _check_dek(dek))

    def unwrap(self, blob: bytes) -> bytes:
        try:
            return aes_key_unwrap(self._key, blob)
        except (InvalidUnwrap, ValueError):
            raise DecryptionFailed(
                f"a data key wrapped under KEK {self._key_id!r} failed its integrity check: "
                "the wrapped key was altered or belongs to another KEK"
            ) from None

    def __repr__(self) -> str:  # never show the key
        return f"FileKek(key_id={self._key_id!r})"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise KekFileError(f"{where} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise KekFileError(f"{where} is not valid base64") from None


def _passphrase_key(passphrase: bytes, salt: bytes, log2_n: int) -> bytes:
    if not passphrase:
        raise KekFileError("the KEK passphrase is empty: set it in the configured variable or file")
    kdf = Scrypt(salt=salt, length=DATA_KEY_BYTES, n=2**log2_n, r=SCRYPT_R, p=SCRYPT_P)
    return kdf.derive(passphrase)


def _file_aad(header: dict[str, Any]) -> bytes:
    # The header (format, version, key id, KDF parameters) is authenticated with the key, so a
    # file whose key id was edited is refused rather than wrapping rows under a false id.
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def generate_file_kek(
    path: Path,
    passphrase: bytes,
    *,
    key_id: str | None = None,
    scrypt_log2_n: int = SCRYPT_LOG2_N,
) -> str:
    """Create a new random KEK in ``path`` (mode 0600, refuses to overwrite); return its id.

    The 256-bit key is encrypted with AES-256-GCM under a key derived from ``passphrase`` with
    scrypt; the JSON file records the format version, the key id and the KDF parameters.
    """
    if not SCRYPT_MIN_LOG2_N <= scrypt_log2_n <= SCRYPT_MAX_LOG2_N:
        raise KekFileError(
            f"scrypt_log2_n must be {SCRYPT_MIN_LOG2_N}..{SCRYPT_MAX_LOG2_N}, got {scrypt_log2_n}"
        )
    key_id = _check_key_id(key_id or f"kek-{secrets.token_hex(8)}")
    salt = secrets.token_bytes(16)
    header = {
        "format": KEK_FILE_FORMAT,
        "version": KEK_FILE_VERSION,
        "key_id": key_id,
        "kdf": {"name": "scrypt", "log2_n": scrypt_log2_n, "r": SCRYPT_R, "p": SCRYPT_P},
        "salt": _b64(salt),
        "cipher": "AES-256-GCM",
    }
    nonce = secrets.token_bytes(NONCE_BYTES)
    wrapping = _passphrase_key(passphrase, salt, scrypt_log2_n)
    sealed = AESGCM(wrapping).encrypt(nonce, secrets.token_bytes(DATA_KEY_BYTES), _file_aad(header))
    document = {**header, "nonce": _b64(nonce), "ciphertext": _b64(sealed)}
    path = Path(path)
    if path.exists():
        # Never overwrite a KEK: losing one loses every message wrapped under it.
        raise FileExistsError(f"{path}: a KEK file is already there; choose another path")
    # Write a temporary file (0600), flush it to disk, then link it into place: the KEK file
    # appears whole or not at all, and ``link`` refuses to replace one that appeared meanwhile.
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2, sort_keys=True)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return key_id


def load_file_kek(path: Path, passphrase: bytes) -> FileKek:
    """Load a KEK file written by :func:`generate_file_kek`; raise :class:`KekFileError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KekFileError(f"{path}: cannot read the KEK file: {exc.strerror}") from None
    if len(raw) > KEK_FILE_MAX_BYTES:
        raise KekFileError(f"{path}: {len(raw)} bytes is too large for a KEK file")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise KekFileError(f"{path}: not JSON; is this a KEK file?") from None
    if not isinstance(doc, dict) or doc.get("format") != KEK_FILE_FORMAT:
        raise KekFileError(f"{path}: 'format' must be {KEK_FILE_FORMAT!r}")
    if doc.get("version") != KEK_FILE_VERSION:
        raise KekFileError(
            f"{path}: KEK file version {doc.get('version')!r} is not supported "
            f"(this gateway reads version {KEK_FILE_VERSION})"
        )
    kdf = doc.get("kdf")
    if (
        not isinstance(kdf, dict)
        or kdf.get("name") != "scrypt"
        or kdf.get("r") != SCRYPT_R
        or kdf.get("p") != SCRYPT_P
        or type(kdf.get("log2_n")) is not int
        or not SCRYPT_MIN_LOG2_N <= kdf["log2_n"] <= SCRYPT_MAX_LOG2_N
    ):
        raise KekFileError(
            f"{path}: 'kdf' must be scrypt with r={SCRYPT_R}, p={SCRYPT_P} and "
            f"log2_n in {SCRYPT_MIN_LOG2_N}..{SCRYPT_MAX_LOG2_N}"
        )
    if doc.get("cipher") != "AES-256-GCM":
        raise KekFileError(f"{path}: 'cipher' must be 'AES-256-GCM'")
    key_id = doc.get("key_id")
    if not isinstance(key_id, str) or not KEY_ID_PATTERN.match(key_id):
        raise KekFileError(f"{path}: 'key_id' is missing or malformed")
    salt = _unb64(doc.get("salt"), f"{path}: 'salt'")
    nonce = _unb64(doc.get("nonce"), f"{path}: 'nonce'")
    sealed = _unb64(doc.get("ciphertext"), f"{path}: 'ciphertext'")
    if len(nonce) != NONCE_BYTES or len(salt) < 16:
        raise KekFileError(f"{path}: 'nonce' or 'salt' has the wrong length")
    header = {k: doc[k] for k in ("format", "version", "key_id", "kdf", "salt", "cipher")}
    wrapping = _passphrase_key(passphrase, salt, kdf["log2_n"])
    try:
        key = AESGCM(wrapping).decrypt(nonce, sealed, _file_aad(header))
    except InvalidTag:
        raise KekFileError(
            f"{path}: wrong passphrase, or the file was altered; check the passphrase variable"
        ) from None
    return FileKek(key_id, key)


class Pkcs11Kek:
    """A KEK that is an AES key on a PKCS#11 token: wrapping happens on the token.

    The data key is imported as a session object and wrapped with ``CKM_AES_KEY_WRAP``
    (RFC 3394); unwrapping creates a session object marked extractable and reads its value.
    Calls are serialised with a lock because one PKCS#11 session is not safe across threads.
    """

    def __init__(self, module_path: str, token_label: str, pin: str, key_label: str) -> None:
        import pkcs11  # deferred: only nodes with a token load the module

        self._pkcs11 = pkcs11
        self._key_id = _check_key_id(key_label)
        self._lock = threading.Lock()
        try:
            lib = pkcs11.lib(module_path)
            token = lib.get_token(token_label=token_label)
            self._session = token.open(user_pin=pin)
        except (pkcs11.PKCS11Error, RuntimeError) as exc:
            raise AtRestError(
                f"PKCS#11 module {module_path!r}, token {token_label!r}: cannot open a session "
                f"({type(exc).__name__}); check the module path, the token label and the PIN"
            ) from None
        try:
            key = self._session.get_key(
                object_class=pkcs11.ObjectClass.SECRET_KEY,
                key_type=pkcs11.KeyType.AES,
                label=key_label,
            )
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned) as exc:
            self._session.close()
            raise AtRestError(
                f"PKCS#11 token {token_label!r}: expected exactly one AES key labelled "
                f"{key_label!r} ({type(exc).__name__}); create it with generate_pkcs11_kek"
            ) from None
        # python-pkcs11 gives a key its wrap/unwrap methods only when CKA_WRAP/CKA_UNWRAP are set.
        if not isinstance(key, pkcs11.types.WrapMixin) or not isinstance(
            key, pkcs11.types.UnwrapMixin
        ):
            self._session.close()
            raise AtRestError(
                f"PKCS#11 token {token_label!r}: key {key_label!r} may not wrap and unwrap keys "
                "(CKA_WRAP, CKA_UNWRAP); create it with generate_pkcs11_kek"
            )
        self._key = key

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, dek: bytes) -> bytes:
        p = self._pkcs11
        with self._lock:
            temp = self._session.create_object(
                {
                    p.Attribute.CLASS: p.ObjectClass.SECRET_KEY,
                    p.Attribute.KEY_TYPE: p.KeyType.AES,
                    p.Attribute.VALUE: _check_dek(dek),
                    p.Attribute.TOKEN: False,
                    p.Attribute.EXTRACTABLE: True,
                    p.Attribute.SENSITIVE: False,
                }
            )
            try:
                # A CKO_SECRET_KEY object is made a SecretKey by python-pkcs11.
                assert isinstance(temp, p.types.SecretKey)
                return bytes(self._key.wrap_key(temp, mechanism=p.Mechanism.AES_KEY_WRAP))
            finally:
                temp.destroy()

    def unwrap(self, blob: bytes) -> bytes:
        p = self._pkcs11
        with self._lock:
            try:
                temp = self._key.unwrap_key(
                    p.ObjectClass.SECRET_KEY,
                    p.KeyType.AES,
                    blob,
                    mechanism=p.Mechanism.AES_KEY_WRAP,
                    store=False,
                    template={p.Attribute.EXTRACTABLE: True, p.Attribute.SENSITIVE: False},
                )
            except p.PKCS11Error:
                raise DecryptionFailed(
                    f"the token refused to unwrap a data key under KEK {self._key_id!r}: "
                    "the wrapped key was altered or belongs to another KEK"
                ) from None
            try:
                return bytes(temp[p.Attribute.VALUE])
            finally:
                temp.destroy()

    def close(self) -> None:
        """Close the token session."""
        with self._lock:
            self._session.close()

    def __repr__(self) -> str:
        return f"Pkcs11Kek(key_id={self._key_id!r})"


def generate_pkcs11_kek(module_path: str, token_label: str, pin: str, key_label: str) -> str:
    """Generate a non-extractable AES-256 KEK on the token labelled ``key_label``; return its id."""
    import pkcs11

    lib = pkcs11.lib(module_path)
    token = lib.get_token(token_label=token_label)
    with token.open(user_pin=pin, rw=True) as session:
        session.generate_key(
            pkcs11.KeyType.AES,
            DATA_KEY_BYTES * 8,
            label=_check_key_id(key_label),
            store=True,
            template={
                pkcs11.Attribute.EXTRACTABLE: False,
                pkcs11.Attribute.SENSITIVE: True,
                pkcs11.Attribute.WRAP: True,
                pkcs11.Attribute.UNWRAP: True,
            },
        )
    return key_label


class KekRing:
    """Several KEKs by id, one of them active (the one new data keys are wrapped under)."""

    def __init__(self, keks: Iterable[KeyEncryptionKey], active_id: str) -> None:
        self._keks: dict[str, KeyEncryptionKey] = {}
        for kek in keks:
            if kek.key_id in self._keks:
                raise AtRestError(f"KEK id {kek.key_id!r} is loaded twice")
            self._keks[kek.key_id] = kek
        if active_id not in self._keks:
            raise AtRestError(
                f"the active KEK {active_id!r} is not among the loaded ones: "
                f"{', '.join(sorted(self._keks)) or 'none'}"
            )
        self._active_id = active_id

    @classmethod
    def single(cls, kek: KeyEncryptionKey) -> KekRing:
        """A ring of one KEK, active."""
        return cls([kek], kek.key_id)

    @property
    def active(self) -> KeyEncryptionKey:
        return self._keks[self._active_id]

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keks)

    def get(self, key_id: str) -> KeyEncryptionKey:
        """The KEK with this id, or :class:`UnknownKek` naming what to load."""
        try:
            return self._keks[key_id]
        except KeyError:
            raise UnknownKek(
                f"data key wrapped under KEK {key_id!r}, which is not loaded "
                f"(loaded: {', '.join(sorted(self._keks))}); add its file to the key ring"
            ) from None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keks


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


def _as_ring(keys: KeyEncryptionKey | KekRing) -> KekRing:
    return keys if isinstance(keys, KekRing) else KekRing.single(keys)


def new_data_key() -> bytes:
    """A fresh random 256-bit data key (hazardous layer: keep it only as long as needed)."""
    return secrets.token_bytes(DATA_KEY_BYTES)


def wrap_data_key(dek: bytes, keys: KeyEncryptionKey | KekRing) -> WrappedKey:
    """Wrap ``dek`` under the given KEK (or the ring's active one)."""
    kek = _as_ring(keys).active
    return WrappedKey(kek.key_id, kek.wrap(_check_dek(dek)))


def unwrap_data_key(wrapped: WrappedKey, keys: KeyEncryptionKey | KekRing) -> bytes:
    """Unwrap with the KEK the key names; :class:`UnknownKek` or :class:`DecryptionFailed`."""
    dek = _as_ring(keys).get(wrapped.kek_id).unwrap(wrapped.blob)
    return _check_dek(dek)


def encrypt_part(dek: bytes, plaintext: bytes, associated_data: bytes) -> tuple[bytes, bytes]:
    """Encrypt one part under a data key: ``(nonce, ciphertext)`` (hazardous layer)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce, AESGCM(_check_dek(dek)).encrypt(nonce, plaintext, associated_data)


def decrypt_part(dek: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
    """Decrypt one part; :class:`DecryptionFailed` if anything was altered (hazardous layer)."""
    try:
        return AESGCM(_check_dek(dek)).decrypt(nonce, ciphertext, associated_data)
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
    plaintext: bytes, kek: KeyEncryptionKey | KekRing, associated_data: bytes
) -> SealedPayload:
    """Encrypt ``plaintext`` under a fresh data key wrapped by ``kek`` (or a ring's active KEK)."""
    dek = new_data_key()
    wrapped = wrap_data_key(dek, kek)
    nonce, ciphertext = encrypt_part(dek, plaintext, associated_data)
    return SealedPayload(ciphertext, nonce, wrapped.blob, wrapped.kek_id)


def open_payload(
    sealed: SealedPayload, kek: KeyEncryptionKey | KekRing, associated_data: bytes
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

"""Key-encryption keys (KEKs, key role ``kek``): in a passphrase-protected file or on a
PKCS#11 token, and the ring of several by id (one active).

A KEK wraps the 256-bit data keys of :mod:`gateway.crypto.at_rest` with AES key wrap (RFC 3394,
NIST SP 800-38F): in memory for a :class:`FileKek`, on the token for a :class:`TokenKek`. Each
wrapped key records the KEK's id, so a :class:`KekRing` of several KEKs (one active) opens old
rows while new rows and re-wrapping use the active one. Which KEKs the node's ring holds and
when each is active is the keys folder's (:mod:`gateway.crypto.keys.kek_ring`).

Recipes: :func:`generate_file_kek` / :func:`load_file_kek`, :func:`generate_token_kek`.
Errors are those of :mod:`gateway.crypto.at_rest` (``KekFileError``, ``UnknownKek``, …).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from gateway.crypto.at_rest import (
    DATA_KEY_BYTES,
    NONCE_BYTES,
    AtRestError,
    DecryptionFailed,
    KekFileError,
    KeyEncryptionKey,
    check_data_key,
    unknown_kek,
)
from gateway.crypto.files import check_format, parse_json, write_atomically
from gateway.crypto.keys.pkcs11 import TokenSession

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
"""A KEK id goes into every wrapped-key row and log line: short, printable, no spaces."""

KEK_FILE_FORMAT = "gateway-kek"
KEK_FILE_VERSION = 1
SCRYPT_LOG2_N = 17
"""scrypt cost N = 2**17, r = 8, p = 1 (OWASP's recommendation; ~128 MiB and ~0.3 s once per
process start: the KEK is unlocked at start-up, not per message; the memory is the helper
process's, :data:`SCRYPT_IN_PROCESS_MAX_LOG2_N`)."""
SCRYPT_MIN_LOG2_N = 14
"""A KEK file asking for less work than this is refused: someone weakened it."""
SCRYPT_MAX_LOG2_N = 20
"""A KEK file asking for more is refused: N = 2**20 already needs 1 GiB of memory."""
SCRYPT_R = 8
SCRYPT_P = 1
KEK_FILE_MAX_BYTES = 4096
"""A KEK file is a few hundred bytes; anything far larger is not ours."""


def _check_key_id(key_id: str) -> str:
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise AtRestError(
            f"KEK id {key_id!r} must be 1–64 characters of letters, digits, '.', '_', ':' or '-'"
        )
    return key_id


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
        return aes_key_wrap(self._key, check_data_key(dek))

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


SCRYPT_IN_PROCESS_MAX_LOG2_N = 14
"""Up to this cost (16 MiB) scrypt runs in the calling process; above it in a helper process
(:func:`_scrypt_in_helper`), so that its 128 MiB at the default cost are never part of the
node's resident memory: not at start-up, where they made the node's one peak (~270 MB against
the ~150 MB it serves with, docs/attachments.md), nor when a rotation adds a KEK to a serving
node's ring while a large file streams through it."""

_SCRYPT_HELPER = """
import hashlib, sys
log2_n, salt = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
key = hashlib.scrypt(
    sys.stdin.buffer.read(), salt=salt, n=2**log2_n, r=int(sys.argv[3]), p=int(sys.argv[4]),
    maxmem=2**31 - 1, dklen=int(sys.argv[5]),
)
sys.stdout.buffer.write(key)
"""
"""The helper: the interpreter running the node, isolated (``-I``: no PYTHONPATH, user site or
working directory on its path), with the standard library's scrypt (OpenSSL's, the same
function as ``cryptography``'s). The passphrase goes in on its standard input, the key comes
out on its standard output: neither is ever in an argument or the environment."""


def _scrypt_in_helper(passphrase: bytes, salt: bytes, log2_n: int) -> bytes:
    import subprocess
    import sys

    arguments = [str(log2_n), salt.hex(), str(SCRYPT_R), str(SCRYPT_P), str(DATA_KEY_BYTES)]
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", _SCRYPT_HELPER, *arguments],
            input=passphrase,
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise KekFileError(
            f"cannot start {sys.executable} to derive the KEK passphrase's key (scrypt): "
            f"{exc.strerror}"
        ) from None
    if done.returncode != 0 or len(done.stdout) != DATA_KEY_BYTES:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise KekFileError(
            f"deriving the KEK passphrase's key (scrypt, N=2**{log2_n}) failed in its helper "
            f"process (exit code {done.returncode}{': ' + reason[0] if reason else ''}); "
            f"scrypt at that cost needs {2**log2_n * 128 * SCRYPT_R // 2**20} MiB of memory"
        )
    return done.stdout


def _passphrase_key(passphrase: bytes, salt: bytes, log2_n: int) -> bytes:
    if not passphrase:
        raise KekFileError("the KEK passphrase is empty: set it in the configured variable or file")
    if log2_n > SCRYPT_IN_PROCESS_MAX_LOG2_N:
        return _scrypt_in_helper(passphrase, salt, log2_n)
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
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    try:
        # Never overwrite a KEK: losing one loses every message wrapped under it.
        write_atomically(Path(path), text.encode("utf-8"), overwrite=False)
    except FileExistsError:
        raise FileExistsError(f"{path}: a KEK file is already there; choose another path") from None
    return key_id


def load_file_kek(path: Path, passphrase: bytes) -> FileKek:
    """Load a KEK file written by :func:`generate_file_kek`; raise :class:`KekFileError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KekFileError(f"{path}: cannot read the KEK file: {exc.strerror}") from None
    doc = parse_json(
        path,
        raw,
        limit=KEK_FILE_MAX_BYTES,
        what="a KEK file",
        remedy="is this a KEK file?",
        error=KekFileError,
    )
    doc = check_format(
        doc, str(path), format=KEK_FILE_FORMAT, version=KEK_FILE_VERSION, error=KekFileError
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
    if not isinstance(key_id, str) or not KEY_ID_PATTERN.fullmatch(key_id):
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


# --- a KEK on the token, sharing the process's login ------------------------------------------


class TokenKek:
    """An AES KEK on the PKCS#11 token, used through the process's shared logged-in session.

    A token allows one login per process, so every KEK on it (old and new during a rotation)
    and the token-held signing keys share one :class:`~gateway.crypto.keys.pkcs11.TokenSession`.
    The data key is imported as a session object and wrapped on the token with
    ``CKM_AES_KEY_WRAP`` (RFC 3394); unwrapping creates a session object marked extractable and
    reads its value. Calls take the session's lock: one PKCS#11 session is not thread-safe.
    """

    def __init__(self, token: TokenSession, key_label: str) -> None:
        import pkcs11

        self._p = pkcs11
        self._token = token
        self._key_id = _check_key_id(key_label)
        with token.lock:
            try:
                self._key = token.session.get_key(
                    object_class=pkcs11.ObjectClass.SECRET_KEY,
                    key_type=pkcs11.KeyType.AES,
                    label=key_label,
                )
            except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned) as exc:
                raise AtRestError(
                    f"PKCS#11 token {token.token_label!r}: expected exactly one AES key labelled "
                    f"{key_label!r} ({type(exc).__name__}); is kek.ring.json from this token?"
                ) from None
            # python-pkcs11 gives a key its wrap/unwrap methods only with CKA_WRAP/CKA_UNWRAP.
            if not isinstance(self._key, pkcs11.types.WrapMixin) or not isinstance(
                self._key, pkcs11.types.UnwrapMixin
            ):
                raise AtRestError(
                    f"PKCS#11 token {token.token_label!r}: key {key_label!r} may not wrap and "
                    "unwrap keys (CKA_WRAP, CKA_UNWRAP); make KEKs with generate_token_kek"
                )

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, dek: bytes) -> bytes:
        p = self._p
        with self._token.lock:
            temp = self._token.session.create_object(
                {
                    p.Attribute.CLASS: p.ObjectClass.SECRET_KEY,
                    p.Attribute.KEY_TYPE: p.KeyType.AES,
                    p.Attribute.VALUE: check_data_key(dek),
                    p.Attribute.TOKEN: False,
                    p.Attribute.EXTRACTABLE: True,
                    p.Attribute.SENSITIVE: False,
                }
            )
            try:
                return bytes(self._key.wrap_key(temp, mechanism=p.Mechanism.AES_KEY_WRAP))
            finally:
                temp.destroy()

    def unwrap(self, blob: bytes) -> bytes:
        p = self._p
        with self._token.lock:
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

    def __repr__(self) -> str:
        return f"TokenKek(key_id={self._key_id!r})"


def generate_token_kek(token: TokenSession, key_label: str) -> str:
    """A non-extractable AES-256 KEK on the token, labelled ``key_label``; return its id."""
    import pkcs11

    with token.lock:
        if list(token.session.get_objects({pkcs11.Attribute.LABEL: key_label})):
            raise AtRestError(f"token {token.token_label!r} already holds {key_label!r}")
        token.session.generate_key(
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


# --- the ring -------------------------------------------------------------------------------------


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
            raise unknown_kek(key_id, self._keks) from None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keks

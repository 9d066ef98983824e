"""Keys on a PKCS#11 token (an HSM, a smart card; SoftHSM2 in tests).

A token key is presented to the rest of the gateway as a ``cryptography`` private key
(:class:`TokenEcPrivateKey`, :class:`TokenRsaPrivateKey`): the XAdES signer, ``cryptography``'s
CSR builder and our own code call its ``sign()`` exactly as for a key in memory, and the private key
never leaves the token. Hashing is done in software, the signature on the token (mechanisms
``ECDSA`` and ``RSA_PKCS``/``RSA_PKCS_PSS`` over the digest), so any token that can sign a
digest will do. PAdES uses pyHanko's own :class:`~pyhanko.sign.pkcs11.PKCS11Signer` on the
same session.

GOST R 34.10-2012 keys (:class:`TokenGostPrivateKey`) sign with the TC26 mechanisms
``CKM_GOSTR3410_WITH_GOSTR3411_12_256`` / ``_512`` (vendor range ``0xD4321000``, R 1323565.1.012):
the token hashes with Streebog and signs, as certified tokens (Rutoken, JaCarta, CryptoPro HSM)
expose them. SoftHSM2 as Debian builds it has no GOST mechanism at all, so this path is tested
against the constants and the key decoding only (docs/keys-and-signatures.md, "GOST on tokens").

A PKCS#11 session must not run two operations at once, so every token call takes the
session's lock: signatures from several executor threads are serialised, not corrupted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import pkcs11
from asn1crypto import core
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import (
    encode_ec_public_key,
    encode_ecdsa_signature,
    encode_named_curve_parameters,
)
from pkcs11.util.rsa import encode_rsa_public_key

from gateway.crypto import gost
from gateway.crypto.algorithms import KeySpec

TC26_VENDOR = 0xD4321000
"""CK_VENDOR_PKCS11_RU_TEAM_TC26: the vendor range of the GOST 2012 PKCS#11 extensions."""
CKK_GOSTR3410_512 = TC26_VENDOR | 0x003
GOST_KEY_TYPES = {int(KeyType.GOSTR3410): 256, CKK_GOSTR3410_512: 512}
"""Key types of GOST 2012 keys: CKK_GOSTR3410 (256-bit, also 2001) and CKK_GOSTR3410_512."""
GOST_SIGN_MECHANISMS = {256: TC26_VENDOR | 0x008, 512: TC26_VENDOR | 0x009}
"""CKM_GOSTR3410_WITH_GOSTR3411_12_256 / _512: sign ``data`` with Streebog inside the token."""

_CURVE_OIDS = {"ec-p256": "1.2.840.10045.3.1.7", "ec-p384": "1.3.132.0.34"}

P = TypeVar("P")
"""The public half of a token key."""

_LIBRARIES: dict[str, Any] = {}
_LIBRARIES_LOCK = threading.RLock()
_SESSIONS: dict[tuple[str, str], TokenSession] = {}
"""Logged-in sessions by (module, token label). PKCS#11 logs in per process, not per
session: a second login to the same token fails (CKR_USER_ALREADY_LOGGED_IN), so every key
store of this process shares one session per token."""


class TokenError(Exception):
    """The token could not be opened or used; the message says which module/token and why."""


def _library(module: Path) -> Any:
    # A PKCS#11 module may be initialised once per process: keep one handle per path.
    with _LIBRARIES_LOCK:
        key = str(module)
        if key not in _LIBRARIES:
            if not module.exists():
                raise TokenError(
                    f"PKCS#11 module {module} does not exist; check [keys] pkcs11_module"
                )
            _LIBRARIES[key] = pkcs11.lib(key)
        return _LIBRARIES[key]


@dataclass(slots=True)
class TokenSession:
    """An open, logged-in session on one token; keep it for the node's lifetime."""

    session: Any
    token_label: str
    module: Path
    token: Any = None
    """python-pkcs11's Token, to open further sessions (they share the login)."""
    lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def open(cls, module: Path, token_label: str, pin: str) -> TokenSession:
        """The process's session on the token, logging in with ``pin`` the first time."""
        with _LIBRARIES_LOCK:
            existing = _SESSIONS.get((str(module), token_label))
            if existing is not None:
                return existing
            opened = cls._login(module, token_label, pin)
            _SESSIONS[(str(module), token_label)] = opened
            return opened

    @classmethod
    def _login(cls, module: Path, token_label: str, pin: str) -> TokenSession:
        lib = _library(module)
        try:
            token = lib.get_token(token_label=token_label)
        except pkcs11.NoSuchToken:
            raise TokenError(
                f"no PKCS#11 token labelled {token_label!r} in {module}; "
                "check [keys] pkcs11_token_label"
            ) from None
        except pkcs11.MultipleTokensReturned:
            raise TokenError(f"several tokens are labelled {token_label!r} in {module}") from None
        try:
            session = token.open(user_pin=pin, rw=True)
        except pkcs11.PinIncorrect:
            raise TokenError(
                f"PKCS#11 token {token_label!r}: wrong PIN; check the PIN variable"
            ) from None
        except pkcs11.PKCS11Error as exc:
            raise TokenError(f"PKCS#11 token {token_label!r}: cannot log in ({exc!r})") from None
        return cls(session=session, token_label=token_label, module=module, token=token)

    def extra_session(self) -> Any:
        """A further session on the logged-in token, for a user that does not take our lock
        (pyHanko's PKCS11Signer): two threads must never interleave C_SignInit/C_Sign on one
        session."""
        with self.lock:
            return self.token.open(rw=False)

    def close(self) -> None:
        """Close the shared session (logging out): every key of this token stops working."""
        with _LIBRARIES_LOCK, self.lock:
            if _SESSIONS.get((str(self.module), self.token_label)) is self:
                del _SESSIONS[(str(self.module), self.token_label)]
            self.session.close()

    def has_key(self, label: str) -> bool:
        with self.lock:
            found = list(
                self.session.get_objects(
                    {Attribute.LABEL: label, Attribute.CLASS: ObjectClass.PRIVATE_KEY}
                )
            )
        return bool(found)

    def generate(self, label: str, spec: KeySpec) -> TokenPrivateKey:
        """Generate a non-extractable key pair labelled ``label`` on the token."""
        if self.has_key(label):
            raise TokenError(f"token {self.token_label!r} already holds a key labelled {label!r}")
        if spec.gost_bits:
            # Certified GOST tokens generate keys with their vendor's tool and parameters
            # (the key's CKA_GOSTR3410_PARAMS); the gateway uses such a key by its label.
            raise TokenError(
                f"GOST keys are generated with the token vendor's tool; give the key the label "
                f"{label!r} and the gateway signs with it (CKM_GOSTR3410_WITH_GOSTR3411_12_"
                f"{spec.gost_bits})"
            )
        with self.lock:
            if spec.is_rsa:
                self.session.generate_keypair(
                    KeyType.RSA,
                    spec.rsa_bits,
                    store=True,
                    label=label,
                    private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
                )
            else:
                params = self.session.create_domain_parameters(
                    KeyType.EC,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVE_OIDS[spec.value])},
                    local=True,
                )
                params.generate_keypair(
                    store=True,
                    label=label,
                    private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
                )
        return self.private_key(label)

    def supports_gost(self, bits: int) -> bool:
        """Whether the token offers ``CKM_GOSTR3410_WITH_GOSTR3411_12_<bits>``."""
        with self.lock:
            mechanisms = self.token.slot.get_mechanisms()
        return GOST_SIGN_MECHANISMS[bits] in {int(m) for m in mechanisms}

    def private_key(
        self, label: str
    ) -> TokenEcPrivateKey | TokenRsaPrivateKey | TokenGostPrivateKey:
        """The token key labelled ``label``, as a ``cryptography`` private key (GOST: as a key
        our GOST code takes, :class:`TokenGostPrivateKey`)."""
        with self.lock:
            try:
                private = self.session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
                public = self.session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
            except pkcs11.NoSuchKey:
                raise TokenError(
                    f"token {self.token_label!r} holds no key labelled {label!r}; "
                    f"run `gateway keys generate` for it"
                ) from None
            key_type = int(private[Attribute.KEY_TYPE])
            if key_type in GOST_KEY_TYPES:
                gost_key = gost_public_key(
                    bytes(public[Attribute.VALUE]), bytes(public[Attribute.GOSTR3410_PARAMS])
                )
                if not self.supports_gost(gost_key.bits):
                    raise TokenError(
                        f"token {self.token_label!r}: key {label!r} is GOST "
                        f"{gost_key.bits} but the token lacks "
                        f"CKM_GOSTR3410_WITH_GOSTR3411_12_{gost_key.bits}"
                    )
                return TokenGostPrivateKey(self, private, gost_key, label)
            if private.key_type == KeyType.EC:
                der = encode_ec_public_key(public)
            elif private.key_type == KeyType.RSA:
                der = encode_rsa_public_key(public)
            else:
                raise TokenError(f"token key {label!r} is neither EC nor RSA")
        public_key = serialization.load_der_public_key(der)
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            return TokenEcPrivateKey(self, private, public_key, label)
        if isinstance(public_key, rsa.RSAPublicKey):
            return TokenRsaPrivateKey(self, private, public_key, label)
        raise TokenError(f"token key {label!r}: unexpected public key type")

    def _sign(
        self, private: Any, data: bytes, mechanism: Mechanism | int, param: Any = None
    ) -> bytes:
        with self.lock:
            try:
                return bytes(private.sign(data, mechanism=mechanism, mechanism_param=param))
            except pkcs11.PKCS11Error as exc:
                raise TokenError(f"token {self.token_label!r}: signing failed ({exc!r})") from None


def _digest(
    data: bytes | bytearray | memoryview, algorithm: Any
) -> tuple[bytes, hashes.HashAlgorithm]:
    if isinstance(algorithm, utils.Prehashed):
        return bytes(data), algorithm._algorithm
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize(), algorithm


def _not_exportable(*_: Any, **__: Any) -> Any:
    raise TypeError("a token key cannot be exported")


class _OnToken(Generic[P]):
    """What every token key shares: the session and handle it signs through, its public half,
    and no way out (copies are the same key; export raises)."""

    def __init__(self, token: TokenSession, handle: Any, public: P, label: str) -> None:
        self._token = token
        self._handle = handle
        self._public = public
        self.label = label

    @property
    def token(self) -> TokenSession:
        """The session the key signs through."""
        return self._token

    def public_key(self) -> P:
        return self._public

    private_bytes = _not_exportable

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: Any) -> Self:
        return self


class TokenEcPrivateKey(_OnToken[ec.EllipticCurvePublicKey], ec.EllipticCurvePrivateKey):
    """An EC key on a token, usable wherever ``cryptography`` expects a private key."""

    def sign(
        self,
        data: bytes | bytearray | memoryview,
        signature_algorithm: ec.EllipticCurveSignatureAlgorithm,
    ) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise TypeError("only ECDSA signatures")
        digest, _ = _digest(data, signature_algorithm.algorithm)
        raw = self._token._sign(self._handle, digest, Mechanism.ECDSA)
        return encode_ecdsa_signature(raw)

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.key_size

    exchange = _not_exportable
    private_numbers = _not_exportable


_PKCS11_HASH = {
    "sha256": (Mechanism.SHA256, pkcs11.MGF.SHA256, Mechanism.SHA256_RSA_PKCS_PSS),
    "sha384": (Mechanism.SHA384, pkcs11.MGF.SHA384, Mechanism.SHA384_RSA_PKCS_PSS),
    "sha512": (Mechanism.SHA512, pkcs11.MGF.SHA512, Mechanism.SHA512_RSA_PKCS_PSS),
}

# DER DigestInfo prefixes (RFC 8017 section 9.2 note 1): RSA_PKCS signs what it is given.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


class TokenRsaPrivateKey(_OnToken[rsa.RSAPublicKey], rsa.RSAPrivateKey):
    """An RSA key on a token, usable wherever ``cryptography`` expects a private key."""

    def sign(self, data: bytes, padding: asym_padding.AsymmetricPadding, algorithm: Any) -> bytes:
        padding_ = padding
        digest, hash_algorithm = _digest(data, algorithm)
        name = hash_algorithm.name
        if name not in _PKCS11_HASH:
            raise TypeError(f"hash {name} is not accepted")
        if isinstance(padding_, asym_padding.PKCS1v15):
            return self._token._sign(self._handle, _DIGEST_INFO[name] + digest, Mechanism.RSA_PKCS)
        if isinstance(padding_, asym_padding.PSS):
            mech, mgf, _ = _PKCS11_HASH[name]
            salt = hash_algorithm.digest_size
            return self._token._sign(
                self._handle, digest, Mechanism.RSA_PKCS_PSS, (mech, mgf, salt)
            )
        raise TypeError("only PKCS#1 v1.5 and PSS padding")

    @property
    def key_size(self) -> int:
        return self._public.key_size

    decrypt = _not_exportable
    private_numbers = _not_exportable


def gost_public_key(value: bytes, params: bytes) -> gost.GostPublicKey:
    """The GOST public key of a token's CKA_VALUE (``X || Y``, little-endian, PKCS#11 v2.40
    §2.55) and CKA_GOSTR3410_PARAMS (the DER OID of the curve's parameter set)."""
    paramset = core.ObjectIdentifier.load(params).dotted
    bits = gost.PARAMSETS.get(paramset, (0, ""))[0]
    if not bits or len(value) != bits // 4:
        raise TokenError(f"token GOST key: parameter set {paramset} with {len(value)} key bytes")
    size = bits // 8
    return gost.GostPublicKey(paramset, value[:size][::-1] + value[size:][::-1])


class TokenGostPrivateKey(_OnToken[gost.GostPublicKey]):
    """A GOST R 34.10-2012 key on a token; signs as :class:`gateway.crypto.gost.GostPrivateKey`
    does (``sign(data)`` → ``s || r``), with the private key never leaving the token."""

    def __init__(
        self, token: TokenSession, handle: Any, public: gost.GostPublicKey, label: str
    ) -> None:
        super().__init__(token, handle, public, label)
        self.bits = public.bits

    def sign(self, data: bytes) -> bytes:
        """``s || r`` over Streebog of ``data``, hashed and signed on the token: PKCS#11 gives
        the signature as ``s || r`` big-endian (v2.40 §2.55.4), the order of RFC 4491."""
        return self._token._sign(self._handle, data, GOST_SIGN_MECHANISMS[self.bits])


TokenPrivateKey = TokenEcPrivateKey | TokenRsaPrivateKey | TokenGostPrivateKey

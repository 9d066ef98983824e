"""GOST R 34.10-2012 signatures and GOST R 34.11-2012 (Streebog) digests, in software.

Why ``gostcrypto``: it is MIT-licensed and pure Python (``pygost`` is GPLv3, which an
Apache-2.0 project cannot ship; OpenSSL's GOST engine is C but reachable only through the
system libcrypto, not through ``cryptography``'s own). It is slow — see
docs/keys-and-signatures.md, "GOST" — so signatures and Streebog go through the system
libcrypto's GOST engine and provider when they are installed
(:mod:`gateway.crypto.gost_native`), and tokens
(PKCS#11, ``CKM_GOSTR3410_WITH_GOSTR3411_12_256``) are the production path for keys.

Byte orders (checked against ``openssl dgst -engine gost`` in tests/crypto/test_gost_interop.py):

* a Streebog digest is the byte string the hash function outputs (what ``openssl dgst
  -md_gost12_256`` prints); the signature takes it as a LITTLE-endian integer ``e``;
* a signature is ``s || r``, each big-endian and as long as the key (RFC 4491 §2.2.2, RFC 7091;
  the same bytes OpenSSL writes and CryptoPro/SMEV 3 put in ds:SignatureValue);
* a public key in SubjectPublicKeyInfo is an OCTET STRING of ``X || Y``, each LITTLE-endian
  (RFC 4491 §2.3.2); a private key in PKCS#8 is an OCTET STRING of ``d``, little-endian
  (what ``openssl genpkey -engine gost`` writes).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Protocol

from asn1crypto import algos, core, keys, pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.padding import PKCS7
from gostcrypto import gosthash, gostsignature

from gateway.crypto import gost_native

KEY_OIDS = {256: "1.2.643.7.1.1.1.1", 512: "1.2.643.7.1.1.1.2"}
"""id-tc26-gost3410-12-256 / -512: the key algorithm in SubjectPublicKeyInfo and PKCS#8."""
SIGNATURE_OIDS = {256: "1.2.643.7.1.1.3.2", 512: "1.2.643.7.1.1.3.3"}
"""id-tc26-signwithdigest-gost3410-12-256 / -512: certificates and CRLs signed with GOST."""
DIGEST_OIDS = {256: "1.2.643.7.1.1.2.2", 512: "1.2.643.7.1.1.2.3"}
"""id-tc26-gost3411-12-256 / -512 (Streebog)."""

PARAMSETS: dict[str, tuple[int, str]] = {
    # CryptoPro sets, what CryptoPro CSP and most national CAs issue 256-bit keys on; they are
    # the TC26 256-bit sets B, C, D under their older names (R 1323565.1.024-2019).
    "1.2.643.2.2.35.1": (256, "id-tc26-gost-3410-2012-256-paramSetB"),
    "1.2.643.2.2.35.2": (256, "id-tc26-gost-3410-2012-256-paramSetC"),
    "1.2.643.2.2.35.3": (256, "id-tc26-gost-3410-2012-256-paramSetD"),
    "1.2.643.2.2.36.0": (256, "id-tc26-gost-3410-2012-256-paramSetB"),
    "1.2.643.2.2.36.1": (256, "id-tc26-gost-3410-2012-256-paramSetD"),
    "1.2.643.7.1.2.1.1.1": (256, "id-tc26-gost-3410-2012-256-paramSetA"),
    "1.2.643.7.1.2.1.1.2": (256, "id-tc26-gost-3410-2012-256-paramSetB"),
    "1.2.643.7.1.2.1.1.3": (256, "id-tc26-gost-3410-2012-256-paramSetC"),
    "1.2.643.7.1.2.1.1.4": (256, "id-tc26-gost-3410-2012-256-paramSetD"),
    "1.2.643.7.1.2.1.2.1": (512, "id-tc26-gost-3410-12-512-paramSetA"),
    "1.2.643.7.1.2.1.2.2": (512, "id-tc26-gost-3410-12-512-paramSetB"),
    "1.2.643.7.1.2.1.2.3": (512, "id-tc26-gost-3410-2012-512-paramSetC"),
}
"""Curve parameter sets we know: OID → (key bits, gostcrypto's curve name)."""

DEFAULT_PARAMSETS = {256: "1.2.643.2.2.35.1", 512: "1.2.643.7.1.2.1.2.1"}
"""What we generate on: CryptoPro-A for 256 bits (the set ``openssl genpkey -engine gost
-pkeyopt paramset:A`` uses, and CryptoPro CSP's default), TC26 512-A for 512 bits."""


class GostError(ValueError):
    """A GOST key, certificate or signature we cannot read or that does not fit."""


def streebog(data: bytes, bits: int) -> bytes:
    """GOST R 34.11-2012 of ``data`` (256 or 512 bits), as the hash function outputs it."""
    native = gost_native.digest(data, bits)
    if native is not None:
        return native
    return bytes(gosthash.new(f"streebog{bits}", data=data).digest())


@functools.lru_cache(maxsize=16)
def _curve(paramset: str) -> Any:
    """The gostcrypto signer of one parameter set (stateless between calls: shared)."""
    bits, name = PARAMSETS[paramset]
    mode = gostsignature.MODE_256 if bits == 256 else gostsignature.MODE_512
    return gostsignature.new(mode, gostsignature.CURVES_R_1323565_1_024_2019[name])


def _paramset_bits(paramset: str) -> int:
    try:
        return PARAMSETS[paramset][0]
    except KeyError:
        raise GostError(f"GOST curve parameter set {paramset} is not one we know") from None


# --- keys ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GostPublicKey:
    """A GOST R 34.10-2012 public key (duck-types what the gateway asks of ``cryptography``'s
    public keys: ``public_bytes``)."""

    paramset: str
    """OID of the curve parameter set."""
    point: bytes
    """``X || Y``, big-endian (gostcrypto's order; the SPKI holds them little-endian)."""

    @property
    def bits(self) -> int:
        return _paramset_bits(self.paramset)

    @property
    def key_size(self) -> int:
        return self.bits

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Does ``signature`` (``s || r``, RFC 4491) sign ``data`` with Streebog of our size?"""
        if len(signature) != self.bits // 4:
            return False
        native = gost_native.verify(self.spki_der(), self.bits, signature, data)
        if native is not None:
            return native
        return self.verify_digest(signature, streebog(data, self.bits))

    def verify_digest(self, signature: bytes, digest: bytes) -> bool:
        size = self.bits // 8
        if len(signature) != 2 * size:
            return False
        r_s = signature[size:] + signature[:size]
        try:
            return bool(
                _curve(self.paramset).verify(
                    bytearray(self.point), bytearray(digest[::-1]), bytearray(r_s)
                )
            )
        except gostsignature.GOSTSignatureError:
            return False

    def spki_der(self) -> bytes:
        return _spki_der(self.paramset, self.point)

    def public_bytes(self, encoding: serialization.Encoding, fmt: Any = None) -> bytes:
        der = self.spki_der()
        if encoding is serialization.Encoding.PEM:
            return bytes(pem.armor("PUBLIC KEY", der))
        return der

    def key_identifier(self) -> bytes:
        """RFC 5280 §4.2.1.2 method 1 (SHA-1 of the key bits): an identifier, not a
        signature, so SHA-1's weakness does not matter here."""
        return hashlib.sha1(self.spki_der()[-(2 * self.bits // 8) :]).digest()  # noqa: S324

    @classmethod
    def from_spki(cls, der: bytes) -> GostPublicKey:
        try:
            algorithm, bit_string = _children(der)
            oid, params = _children(algorithm)
            key_oid = core.ObjectIdentifier.load(oid).dotted
            paramset = core.ObjectIdentifier.load(_children(params)[0]).dotted
            raw = core.OctetString.load(core.BitString.load(bit_string).contents[1:]).native
        except (ValueError, TypeError, IndexError) as exc:
            raise GostError(f"unreadable GOST SubjectPublicKeyInfo: {exc}") from None
        bits = _paramset_bits(paramset)
        if KEY_OIDS.get(bits) != key_oid or len(raw) != bits // 4:
            raise GostError(f"key algorithm {key_oid} does not fit parameter set {paramset}")
        size = bits // 8
        return cls(paramset, raw[:size][::-1] + raw[size:][::-1])


@functools.lru_cache(maxsize=256)
def _spki_der(paramset: str, point: bytes) -> bytes:
    """SubjectPublicKeyInfo of a GOST key (cached: the native verifier looks keys up by it)."""
    bits = _paramset_bits(paramset)
    size = bits // 8
    raw = point[:size][::-1] + point[size:][::-1]
    # The digest parameter set is named for both sizes, as OpenSSL's engine writes it.
    params = [
        core.ObjectIdentifier(paramset),
        core.ObjectIdentifier(DIGEST_OIDS[bits]),
    ]
    algorithm = _sequence(
        core.ObjectIdentifier(KEY_OIDS[bits]).dump(),
        _sequence(*(p.dump() for p in params)),
    )
    return _sequence(
        algorithm, core.BitString.load(_bit_string(core.OctetString(raw).dump())).dump()
    )


class GostPrivateKey:
    """A software GOST R 34.10-2012 private key (tests, the demo; production keys live on a
    token). Duck-types ``cryptography``'s private keys where the gateway uses them:
    ``public_key()``, ``private_bytes()``."""

    def __init__(self, paramset: str, secret: int) -> None:
        self.paramset = paramset
        self.bits = _paramset_bits(paramset)
        self._secret = secret
        self._public: GostPublicKey | None = None
        self._der: bytes | None = None

    @classmethod
    def generate(cls, bits: int) -> GostPrivateKey:
        paramset = DEFAULT_PARAMSETS[bits]
        q = _curve(paramset)._q
        while True:
            secret = int.from_bytes(os.urandom(bits // 8), "big")
            if 0 < secret < q:
                return cls(paramset, secret)

    def _secret_bytes(self) -> bytearray:
        # gostcrypto zeroes the buffer it is given: a fresh one every call.
        return bytearray(self._secret.to_bytes(self.bits // 8, "big"))

    def public_key(self) -> GostPublicKey:
        if self._public is None:
            point = bytes(_curve(self.paramset).public_key_generate(self._secret_bytes()))
            self._public = GostPublicKey(self.paramset, point)
        return self._public

    def sign(self, data: bytes) -> bytes:
        """``s || r`` (RFC 4491 §2.2.2) over Streebog of ``data``."""
        native = gost_native.sign(self._pkcs8(), self.bits, data)
        if native is not None:
            return native
        return self.sign_digest(streebog(data, self.bits))

    def sign_digest(self, digest: bytes) -> bytes:
        size = self.bits // 8
        r_s = bytes(_curve(self.paramset).sign(self._secret_bytes(), bytearray(digest[::-1])))
        return r_s[size:] + r_s[:size]

    def _pkcs8(self) -> bytes:
        # Kept: the native signer parses (and caches) the key by these bytes.
        if self._der is None:
            self._der = self.pkcs8_der()
        return self._der

    def pkcs8_der(self) -> bytes:
        public = self.public_key()
        algorithm = _children(public.spki_der())[0]
        secret = self._secret.to_bytes(self.bits // 8, "little")
        return _sequence(core.Integer(0).dump(), algorithm, core.OctetString(secret).dump())

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        fmt: serialization.PrivateFormat,
        encryption: serialization.KeySerializationEncryption,
    ) -> bytes:
        """PKCS#8 PEM; encrypted (PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC) when a passphrase is
        given — the form ``openssl pkey -engine gost -passin`` reads."""
        if encoding is not serialization.Encoding.PEM:
            raise GostError("GOST keys are written as PEM only")
        if isinstance(encryption, serialization.BestAvailableEncryption):
            return bytes(
                pem.armor(
                    "ENCRYPTED PRIVATE KEY", _encrypt_pkcs8(self.pkcs8_der(), encryption.password)
                )
            )
        return bytes(pem.armor("PRIVATE KEY", self.pkcs8_der()))

    @classmethod
    def from_pkcs8(cls, der: bytes) -> GostPrivateKey:
        try:
            _version, algorithm, secret = _children(der)[:3]
            params = _children(algorithm)[1]
            paramset = core.ObjectIdentifier.load(_children(params)[0]).dotted
            number = _secret_number(core.Asn1Value.load(secret), _paramset_bits(paramset))
        except (ValueError, TypeError, IndexError) as exc:
            raise GostError(f"unreadable GOST private key: {exc}") from None
        return cls(paramset, number)


def _secret_number(value: core.Asn1Value, bits: int) -> int:
    """The private key of PKCS#8's privateKey: an OCTET STRING holding ``d`` little-endian
    (OpenSSL's engine), or wrapping an OCTET STRING (little-endian) or INTEGER (RFC 9215)."""
    raw = value.contents
    if value.tag == 4 and len(raw) == bits // 8:
        return int.from_bytes(raw, "little")
    inner = core.Asn1Value.load(raw, strict=True) if value.tag == 4 else value
    if inner.tag == 2:
        return int.from_bytes(inner.contents, "big")
    if inner.tag == 4:
        return int.from_bytes(inner.contents, "little")
    raise GostError("GOST private key: privateKey is neither OCTET STRING nor INTEGER")


def load_pem_private_key(data: bytes, passphrase: bytes | None) -> GostPrivateKey:
    """A GOST key from PKCS#8 PEM, encrypted (PBES2) or not."""
    try:
        kind, _headers, der = pem.unarmor(data)
    except ValueError as exc:
        raise GostError(f"not a PEM private key: {exc}") from None
    if kind == "ENCRYPTED PRIVATE KEY":
        if not passphrase:
            raise GostError("the GOST key is encrypted and no passphrase was given")
        der = _decrypt_pkcs8(der, passphrase)
    elif kind != "PRIVATE KEY":
        raise GostError(f"PEM block {kind!r} is not a PKCS#8 private key")
    return GostPrivateKey.from_pkcs8(der)


_PBKDF2_ROUNDS = 100_000
"""PBKDF2-HMAC-SHA256 rounds for a key file: the node reads its keys at every start and the
demo several times; the passphrase is a generated secret, not a person's password."""


def _encrypt_pkcs8(der: bytes, password: bytes) -> bytes:
    salt, iv = os.urandom(16), os.urandom(16)
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, _PBKDF2_ROUNDS).derive(password)
    padder = PKCS7(128).padder()
    padded = padder.update(der) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    info = keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": "pbes2",
                "parameters": {
                    "key_derivation_func": {
                        "algorithm": "pbkdf2",
                        "parameters": {
                            "salt": algos.Pbkdf2Salt(name="specified", value=salt),
                            "iteration_count": _PBKDF2_ROUNDS,
                            "prf": {"algorithm": "sha256"},
                        },
                    },
                    "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
                },
            },
            "encrypted_data": ciphertext,
        }
    )
    return bytes(info.dump())


def _decrypt_pkcs8(der: bytes, password: bytes) -> bytes:
    try:
        info = keys.EncryptedPrivateKeyInfo.load(der)
        scheme = info["encryption_algorithm"]
        if scheme["algorithm"].native != "pbes2":
            raise GostError("only PBES2-encrypted GOST keys are read")
        params = scheme["parameters"]
        kdf = params["key_derivation_func"]["parameters"]
        cipher = params["encryption_scheme"]
        if cipher["algorithm"].native not in ("aes128_cbc", "aes192_cbc", "aes256_cbc"):
            raise GostError(f"GOST key encrypted with {cipher['algorithm'].native}: use AES-CBC")
        prf = kdf["prf"]["algorithm"].native
        hash_algorithm = {"sha256": hashes.SHA256(), "sha512": hashes.SHA512()}[prf]
        key = PBKDF2HMAC(
            hash_algorithm, cipher.key_length, kdf["salt"].native, kdf["iteration_count"].native
        ).derive(password)
        decryptor = Cipher(algorithms.AES(key), modes.CBC(cipher["parameters"].native)).decryptor()
        padded = decryptor.update(info["encrypted_data"].native) + decryptor.finalize()
        unpadder = PKCS7(128).unpadder()
        return bytes(unpadder.update(padded) + unpadder.finalize())
    except (KeyError, ValueError, TypeError) as exc:
        raise GostError(f"cannot decrypt the GOST key (wrong passphrase?): {exc}") from None


# --- certificates and CRLs -----------------------------------------------------------------------


def is_gost_certificate(cert: x509.Certificate) -> bool:
    """Whether the certificate's key is a GOST key."""
    return cert.public_key_algorithm_oid.dotted_string in KEY_OIDS.values()


def is_gost_signed(
    item: x509.Certificate | x509.CertificateRevocationList | x509.CertificateSigningRequest,
) -> bool:
    return item.signature_algorithm_oid.dotted_string in SIGNATURE_OIDS.values()


@functools.lru_cache(maxsize=1024)
def public_key_of(cert: x509.Certificate) -> GostPublicKey:
    """The GOST key a certificate carries (``cryptography`` cannot load it)."""
    tbs = _children(cert.tbs_certificate_bytes)
    # version [0] is present in v3 certificates: SPKI is the 7th field then, else the 6th.
    spki = tbs[6] if tbs[0][:1] == b"\xa0" else tbs[5]
    return GostPublicKey.from_spki(spki)


def csr_public_key(csr: x509.CertificateSigningRequest) -> GostPublicKey:
    """The GOST key a certificate request asks to certify."""
    return GostPublicKey.from_spki(_children(csr.tbs_certrequest_bytes)[2])


def signature_verifies(
    item: x509.Certificate | x509.CertificateRevocationList | x509.CertificateSigningRequest,
    issuer_key: GostPublicKey,
) -> bool:
    """Does a GOST-signed certificate, CRL or request verify with the issuer's GOST key (the
    request's own)?"""
    bits = {v: k for k, v in SIGNATURE_OIDS.items()}.get(item.signature_algorithm_oid.dotted_string)
    if bits is None or bits != issuer_key.bits:
        return False
    if isinstance(item, x509.Certificate):
        tbs = item.tbs_certificate_bytes
    elif isinstance(item, x509.CertificateRevocationList):
        tbs = item.tbs_certlist_bytes
    else:
        tbs = item.tbs_certrequest_bytes
    return issuer_key.verify(item.signature, tbs)


class GostSigner(Protocol):
    """A GOST private key in memory (:class:`GostPrivateKey`) or on a token
    (``gateway.crypto.keys.pkcs11.TokenGostPrivateKey``)."""

    bits: int

    def sign(self, data: bytes) -> bytes: ...

    def public_key(self) -> GostPublicKey: ...


def resign_certificate(
    der: bytes, issuer_key: GostSigner, subject_key: GostPublicKey | None
) -> x509.Certificate:
    """``der`` (built by ``cryptography`` with a stand-in key) signed with GOST instead, its
    SubjectPublicKeyInfo replaced by ``subject_key`` when the subject's key is GOST too.

    ``cryptography``'s builders cannot sign with GOST; everything else they build (names,
    extensions, validity) is right, so only the algorithm, key and signature are redone."""
    tbs = _children(_children(der)[0])
    offset = 1 if tbs[0][:1] == b"\xa0" else 0
    tbs[offset + 1] = _algorithm(issuer_key.bits)
    if subject_key is not None:
        tbs[offset + 5] = subject_key.spki_der()
    return x509.load_der_x509_certificate(_signed(_sequence(*tbs), issuer_key))


def resign_crl(der: bytes, issuer_key: GostSigner) -> x509.CertificateRevocationList:
    """A CRL built by ``cryptography`` with a stand-in key, signed with GOST instead."""
    tbs = _children(_children(der)[0])
    offset = 1 if tbs[0][:1] == b"\x02" else 0  # version INTEGER, present in v2 CRLs
    tbs[offset] = _algorithm(issuer_key.bits)
    return x509.load_der_x509_crl(_signed(_sequence(*tbs), issuer_key))


def resign_csr(der: bytes, key: GostSigner) -> x509.CertificateSigningRequest:
    """A certificate request built by ``cryptography`` with a stand-in key, for ``key``'s
    GOST public key and self-signed with it (PKCS#10: version, subject, SPKI, attributes)."""
    info = _children(_children(der)[0])
    info[2] = key.public_key().spki_der()
    return x509.load_der_x509_csr(_signed(_sequence(*info), key))


def _signed(tbs: bytes, key: GostSigner) -> bytes:
    signature = core.BitString.load(_bit_string(key.sign(tbs))).dump()
    return _sequence(tbs, _algorithm(key.bits), signature)


def _algorithm(bits: int) -> bytes:
    return _sequence(core.ObjectIdentifier(SIGNATURE_OIDS[bits]).dump())


# --- DER, just enough ----------------------------------------------------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _sequence(*parts: bytes) -> bytes:
    body = b"".join(parts)
    return b"\x30" + _length(len(body)) + body


def _bit_string(data: bytes) -> bytes:
    body = b"\x00" + data
    return b"\x03" + _length(len(body)) + body


def _children(der: bytes) -> list[bytes]:
    """The encoded elements (tag, length, value) inside one constructed DER element."""
    if not der or not der[0] & 0x20:
        raise GostError("expected a constructed DER element")
    start, end = _element(der, 0)
    content, items, pointer = der[start:end], [], 0
    while pointer < len(content):
        _, item_end = _element(content, pointer)
        items.append(content[pointer:item_end])
        pointer = item_end
    return items


def _element(der: bytes, pointer: int) -> tuple[int, int]:
    """(start of the value, end of the element) of the DER element at ``pointer`` (single-byte
    tags: all X.509 needs)."""
    if pointer + 2 > len(der) or der[pointer] & 0x1F == 0x1F:
        raise GostError("truncated or unsupported DER")
    first = der[pointer + 1]
    if first < 0x80:
        start, size = pointer + 2, first
    else:
        count = first & 0x7F
        if not 0 < count <= 4:
            raise GostError("unsupported DER length")
        start = pointer + 2 + count
        size = int.from_bytes(der[pointer + 2 : start], "big")
    if start + size > len(der):
        raise GostError("truncated DER")
    return start, start + size

"""Encryption to the recipient: a confidential document, once signed, is readable by one body only.

Theory of operation
-------------------
A confidential document (``<env:Confidential>true</env:Confidential>``; CIS Art. 16, SC Art. 8)
is first signed (official and seal, XAdES) and then encrypted to the recipient body's
``encryption`` certificate from the directory of bodies. TLS protects the hop; this protects
the document end to end, so a TLS-terminating proxy, a load balancer or a mis-routed copy sees
only ciphertext. The receiver decrypts first and then verifies the signatures inside, as for
any other document (sign-then-encrypt: the signatures stay on the plaintext and remain
verifiable after decryption, in the archive, for years).

Format: CMS (RFC 5652) ``AuthEnvelopedData`` (RFC 5083) with AES-256-GCM (RFC 5084), so that
any CMS implementation (OpenSSL 3, Bouncy Castle, …) can read it:

* content: a fresh random 256-bit content-encryption key (CEK), a random 96-bit nonce, a
  128-bit tag; encrypted content type ``id-data``; no authenticated attributes;
* EC P-256 / P-384 recipient: ``KeyAgreeRecipientInfo`` (RFC 5753) — ephemeral-static ECDH
  with a new ephemeral key per recipient, ``dhSinglePass-stdDH-sha256kdf-scheme`` (P-256) or
  ``…-sha384kdf-scheme`` (P-384), X9.63 KDF over ``ECC-CMS-SharedInfo``, CEK wrapped with
  AES-256 key wrap (RFC 3394);
* RSA recipient (≥ 2048 bits): ``KeyTransRecipientInfo`` with RSAES-OAEP, SHA-256 and
  MGF1-SHA-256 (RFC 8017, RFC 4055);
* recipients are named by issuer and serial number (what every implementation matches on);
  when reading, a subjectKeyIdentifier is matched too.

``cryptography``'s own ``PKCS7EnvelopeBuilder`` (version 50) was checked first: it writes only
``EnvelopedData`` with AES-CBC and RSA PKCS#1 v1.5 key transport and cannot address EC keys,
and its ``pkcs7_decrypt_*`` functions read only that. So the ASN.1 is built and parsed here
with ``asn1crypto`` and the primitives come from ``cryptography``.

Refused when reading (each with its own message): unauthenticated ``EnvelopedData`` (no
integrity: a padding oracle and silent bit flips), RSA PKCS#1 v1.5 key transport
(Bleichenbacher), SHA-1/SHA-224 in OAEP or in the ECDH KDF, cofactor ECDH, key wraps or
content ciphers other than AES-256, tags shorter than 128 bits, input over
:data:`MAX_CMS_BYTES`, and anything that is not well-formed ASN.1.

Recipes (safe): :func:`encrypt_for`, :func:`decrypt`, :func:`decrypt_with_any` (key rollover),
:func:`is_encrypted`. A private key held
on a PKCS#11 token plugs in through :class:`KeyAgreementKey` / :class:`KeyTransportKey`.

Exception tree::

    GatewayError
    └── RecipientEncryptionError
        ├── UnsuitableCertificate  (encrypting) a recipient certificate cannot receive
        ├── DocumentTooLarge       (encrypting) over MAX_DOCUMENT_BYTES
        ├── UnsupportedScheme      (decrypting) well-formed, but an algorithm we refuse
        ├── NotARecipient          (decrypting) encrypted to other keys, not to our certificate
        └── DecryptionFailed       (decrypting) addressed to us, but altered or not our key
            └── MalformedCms       not CMS, too large, truncated, broken or unexpected ASN.1

Toward a peer these collapse into one stable code (:attr:`RecipientEncryptionError.code`);
the messages are for our own operator and logs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from gateway.crypto.algorithms import RSA_MIN_VERIFY_BITS
from gateway.model.limits import MAX_MESSAGE_BYTES
from gateway.model.problems import ConfigurationError, GatewayError, Problem

# --- limits ------------------------------------------------------------------------------------

MAX_DOCUMENT_BYTES = MAX_MESSAGE_BYTES
"""Largest document we encrypt: the largest signed envelope a peer takes
(``gateway.model.limits.MAX_MESSAGE_BYTES``, 16 MiB); the whole of it is held in memory."""

MAX_CMS_BYTES = MAX_DOCUMENT_BYTES + 1024 * 1024
"""Largest CMS we parse: the largest document plus 1 MiB for the recipient infos (a few hundred
bytes each) and the DER headers. Larger input is refused before any parsing."""

MAX_RECIPIENTS = 16
"""Recipient infos per message: a body has one encryption certificate, two during a rollover;
a few more for copies. A bound keeps a hostile message from making us walk thousands."""

CEK_BYTES = 32
"""AES-256 content-encryption key (RFC 5084); also the only key-wrap size we use (RFC 3394)."""

GCM_NONCE_BYTES = 12
"""96-bit GCM nonce: the size RFC 5084 recommends and every CMS implementation writes."""

GCM_TAG_BYTES = 16
"""128-bit GCM tag. RFC 5084 allows 12–16 bytes (default 12); we write 16, as OpenSSL does,
and refuse shorter tags rather than accept weaker integrity."""

# --- object identifiers ------------------------------------------------------------------------

_OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_OID_DATA = "1.2.840.113549.1.7.1"
_OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
_OID_AUTH_ENVELOPED_DATA = "1.2.840.113549.1.9.16.1.23"

_ECDH_SCHEMES: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    # RFC 5753 section 7.1.4 / SEC 1: dhSinglePass-stdDH-shaXkdf-scheme
    "1.3.132.1.11.1": ("dhSinglePass-stdDH-sha256kdf-scheme", hashes.SHA256),
    "1.3.132.1.11.2": ("dhSinglePass-stdDH-sha384kdf-scheme", hashes.SHA384),
    "1.3.132.1.11.3": ("dhSinglePass-stdDH-sha512kdf-scheme", hashes.SHA512),
}
_REFUSED_ECDH_SCHEMES = {
    "1.3.133.16.840.63.0.2": "dhSinglePass-stdDH-sha1kdf-scheme (SHA-1; OpenSSL's default)",
    "1.3.132.1.11.0": "dhSinglePass-stdDH-sha224kdf-scheme (SHA-224)",
    "1.3.133.16.840.63.0.3": "dhSinglePass-cofactorDH-sha1kdf-scheme",
    "1.3.132.1.14.0": "dhSinglePass-cofactorDH-sha224kdf-scheme",
    "1.3.132.1.14.1": "dhSinglePass-cofactorDH-sha256kdf-scheme",
    "1.3.132.1.14.2": "dhSinglePass-cofactorDH-sha384kdf-scheme",
    "1.3.132.1.14.3": "dhSinglePass-cofactorDH-sha512kdf-scheme",
}

_CURVE_SCHEME: dict[str, str] = {
    # The KDF hash matches the curve's strength (RFC 5753 section 8; RFC 6318 Suite B pairing).
    "secp256r1": "1.3.132.1.11.1",
    "secp384r1": "1.3.132.1.11.2",
}
_CURVES: dict[str, ec.EllipticCurve] = {"secp256r1": ec.SECP256R1(), "secp384r1": ec.SECP384R1()}

_OAEP_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

# Cheap sniff (is_encrypted): the DER of the two ContentType OIDs that open an encrypted CMS.
_AUTH_ENVELOPED_OID_DER = bytes.fromhex("060b2a864886f70d0109100117")
_ENVELOPED_OID_DER = bytes.fromhex("06092a864886f70d010703")


_ASN1_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    RecursionError,
)
"""What asn1crypto raises on bad input (lazily, when a field is first read)."""

# --- errors ------------------------------------------------------------------------------------


class RecipientEncryptionError(GatewayError):
    """Root of the errors of encryption to the recipient."""

    code = "CMS_DECRYPTION_FAILED"
    """The one stable code a peer is told, whatever the detail (no oracle for an attacker:
    "not for you", "altered" and "bad padding" must look the same from outside)."""
    message_ru = "Зашифрованный документ не удалось расшифровать."
    remedy_ru = (
        "Попросите отправителя повторить отправку, зашифровав документ на действующий "
        "сертификат шифрования получателя из справочника органов (AES-256-GCM)."
    )

    def problem(self) -> Problem:
        """The error as a :class:`Problem` for a rejection: the stable code and Russian text;
        ``message_en`` holds the detail, for our own log, not for the peer."""
        return Problem(
            code=self.code,
            path="/",
            message_ru=self.message_ru,
            message_en=str(self),
            remedy_ru=self.remedy_ru,
            article="CIS Art. 16; SC Art. 8",
        )


class UnsuitableCertificate(RecipientEncryptionError):
    """A recipient certificate cannot receive encrypted documents (key type, curve, size or
    key usage). Fix the directory entry of that body; nothing was encrypted."""

    code = "CMS_RECIPIENT_UNSUITABLE"
    message_ru = "Сертификат получателя непригоден для шифрования документа."
    remedy_ru = (
        "Проверьте сертификат шифрования органа-получателя в справочнике органов: EC P-256, "
        "EC P-384 или RSA не короче 2048 бит, с keyAgreement / keyEncipherment."
    )


class DocumentTooLarge(RecipientEncryptionError):
    """(Encrypting) the document is over :data:`MAX_DOCUMENT_BYTES`; nothing was encrypted."""

    code = "CMS_DOCUMENT_TOO_LARGE"
    message_ru = "Документ слишком велик для шифрования."
    remedy_ru = "Отправьте объёмные приложения отдельными сообщениями."


class UnsupportedScheme(RecipientEncryptionError):
    """The CMS is well-formed but uses an algorithm the gateway refuses; the message names it
    and what the sender must use instead."""


class NotARecipient(RecipientEncryptionError):
    """The document is encrypted to other certificates, not to the one we decrypt with."""


class DecryptionFailed(RecipientEncryptionError):
    """A recipient info names our certificate, but the wrapped key or the content did not
    authenticate: the document was altered, or it was encrypted to another key that carries
    our certificate's issuer and serial. Nothing of the plaintext is returned."""


class MalformedCms(DecryptionFailed):
    """The payload is not a CMS structure we can read: too large, truncated, not DER/BER, or
    not AuthEnvelopedData. A kind of :class:`DecryptionFailed`: an altered (e.g. truncated)
    document often stops being well-formed ASN.1 before its tag is ever checked."""


# --- the seam for keys that never leave a token -----------------------------------------------


@runtime_checkable
class KeyAgreementKey(Protocol):
    """An EC private key that can do ECDH where it lives (a PKCS#11 token: ``CKM_ECDH1_DERIVE``
    with ``CKD_NULL``). Returns the raw shared secret Z (the x coordinate), nothing derived."""

    def exchange(self, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        """ECDH with ``peer_public_key`` (the sender's ephemeral key); returns Z."""
        ...


@runtime_checkable
class KeyTransportKey(Protocol):
    """An RSA private key that can undo RSAES-OAEP where it lives (``CKM_RSA_PKCS_OAEP``)."""

    def decrypt_oaep(self, ciphertext: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
        """OAEP-decrypt with ``hash_algorithm`` for the label hash and MGF1, empty label.
        Raise ``ValueError`` when the ciphertext does not decrypt."""
        ...


class _SoftwareEcdh:
    """Adapts a ``cryptography`` EC private key to :class:`KeyAgreementKey`."""

    __slots__ = ("_key",)

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    def exchange(self, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        try:
            return self._key.exchange(ec.ECDH(), peer_public_key)
        except (TypeError, NotImplementedError):
            raise _cannot_use(self._key, "ECDH", "KeyAgreementKey") from None


class _SoftwareOaep:
    """Adapts a ``cryptography`` RSA private key to :class:`KeyTransportKey`."""

    __slots__ = ("_key",)

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key

    def decrypt_oaep(self, ciphertext: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
        try:
            return self._key.decrypt(ciphertext, _oaep(hash_algorithm))
        except (TypeError, NotImplementedError):
            raise _cannot_use(self._key, "RSA-OAEP decryption", "KeyTransportKey") from None


def _cannot_use(key: Any, operation: str, seam: str) -> ConfigurationError:
    # E.g. gateway.crypto.keys.pkcs11's token keys, which sign but do not (yet) decrypt.
    return ConfigurationError(
        f"the encryption key ({type(key).__name__}) cannot do {operation}: a key on a token "
        f"needs an adapter implementing gateway.crypto.recipient.{seam}"
    )


def _oaep(hash_algorithm: hashes.HashAlgorithm) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hash_algorithm), algorithm=hash_algorithm, label=None)


# --- ASN.1 that asn1crypto does not define ----------------------------------------------------


class _AlgorithmIdentifier(asn1_core.Sequence):
    """A plain AlgorithmIdentifier whose parameters we encode ourselves (absent for AES wrap,
    RFC 3565 section 2.3.2; absent for id-ecPublicKey in originatorKey, as OpenSSL writes)."""

    _fields = [  # noqa: RUF012 — asn1crypto's declarative spec
        ("algorithm", asn1_core.ObjectIdentifier),
        ("parameters", asn1_core.Any, {"optional": True}),
    ]


class _EccCmsSharedInfo(asn1_core.Sequence):
    """ECC-CMS-SharedInfo (RFC 5753 section 7.2): the X9.63 KDF's SharedInfo."""

    _fields = [  # noqa: RUF012
        ("key_info", _AlgorithmIdentifier),
        ("entity_u_info", asn1_core.OctetString, {"explicit": 0, "optional": True}),
        ("supp_pub_info", asn1_core.OctetString, {"explicit": 2}),
    ]


class _GcmParameters(asn1_core.Sequence):
    """GCMParameters (RFC 5084 section 3.2)."""

    _fields = [  # noqa: RUF012
        ("aes_nonce", asn1_core.OctetString),
        ("aes_icvlen", asn1_core.Integer, {"default": 12}),
    ]


# --- the recipe: encrypting --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Recipient:
    certificate: x509.Certificate
    issuer_and_serial: asn1_cms.IssuerAndSerialNumber


def encrypt_for(document: bytes, recipient_certificates: Sequence[x509.Certificate]) -> bytes:
    """Encrypt a signed ``document`` to every certificate given; return DER CMS.

    ``recipient_certificates`` are the recipient body's ``encryption`` certificates from the
    directory of bodies (two during a key rollover: the old and the new one); each of them can
    decrypt alone. The caller has already checked them against the directory and the trust
    list: this function checks only that each one can technically receive (EC P-256/P-384
    or RSA ≥ 2048 bits, key usage keyAgreement/keyEncipherment), else
    :class:`UnsuitableCertificate` naming the certificate.
    """
    if not isinstance(document, bytes | bytearray | memoryview):
        raise TypeError("document must be bytes (the signed envelope as it will be verified)")
    document = bytes(document)
    if len(document) > MAX_DOCUMENT_BYTES:
        raise DocumentTooLarge(
            f"the document is {len(document)} bytes; at most {MAX_DOCUMENT_BYTES} are encrypted"
            " (MAX_DOCUMENT_BYTES): files travel beside the XML (docs/attachments.md)"
        )
    recipients = [_check_recipient(c) for c in recipient_certificates]
    if not recipients:
        raise UnsuitableCertificate(
            "no recipient certificate given: publish an encryption certificate for the "
            "recipient body in the directory of bodies before sending it confidential documents"
        )
    if len(recipients) > MAX_RECIPIENTS:
        raise UnsuitableCertificate(
            f"{len(recipients)} recipient certificates given; at most {MAX_RECIPIENTS} "
            "(MAX_RECIPIENTS)"
        )

    cek = AESGCM.generate_key(bit_length=CEK_BYTES * 8)
    nonce = os.urandom(GCM_NONCE_BYTES)
    sealed = AESGCM(cek).encrypt(nonce, document, None)
    ciphertext, tag = sealed[:-GCM_TAG_BYTES], sealed[-GCM_TAG_BYTES:]

    infos = [_recipient_info(r, cek) for r in recipients]
    content_algorithm = asn1_algos.EncryptionAlgorithm(
        {
            "algorithm": "aes256_gcm",
            "parameters": _GcmParameters({"aes_nonce": nonce, "aes_icvlen": GCM_TAG_BYTES}),
        }
    )
    enveloped = asn1_cms.AuthEnvelopedData(
        {
            "version": "v0",  # RFC 5083 section 2.1: always 0
            "recipient_infos": infos,
            "auth_encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": content_algorithm,
                "encrypted_content": ciphertext,
            },
            "mac": tag,
        }
    )
    content_info = asn1_cms.ContentInfo(
        {"content_type": "authenticated_enveloped_data", "content": enveloped}
    )
    return bytes(content_info.dump())


def _check_recipient(certificate: x509.Certificate) -> _Recipient:
    if not isinstance(certificate, x509.Certificate):
        raise TypeError("recipient certificates must be cryptography x509.Certificate objects")
    who = _describe(certificate)
    public_key = certificate.public_key()
    usage = _key_usage(certificate)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in _CURVE_SCHEME:
            raise UnsuitableCertificate(
                f"recipient certificate {who}: curve {public_key.curve.name} is not supported; "
                "an encryption certificate must be EC P-256, EC P-384 or RSA"
            )
        if usage is not None and not usage.key_agreement:
            raise UnsuitableCertificate(
                f"recipient certificate {who}: its key usage lacks keyAgreement, so it is not "
                "an encryption certificate (RFC 5280 section 4.2.1.3); use the body's "
                "certificate of role 'encryption' from the directory"
            )
    elif isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < RSA_MIN_VERIFY_BITS:
            raise UnsuitableCertificate(
                f"recipient certificate {who}: RSA key of {public_key.key_size} bits; at least "
                f"{RSA_MIN_VERIFY_BITS} are required (NIST SP 800-57)"
            )
        if usage is not None and not usage.key_encipherment:
            raise UnsuitableCertificate(
                f"recipient certificate {who}: its key usage lacks keyEncipherment, so it is "
                "not an encryption certificate (RFC 5280 section 4.2.1.3); use the body's "
                "certificate of role 'encryption' from the directory"
            )
    else:
        raise UnsuitableCertificate(
            f"recipient certificate {who}: key type {type(public_key).__name__} cannot receive "
            "encrypted documents; an encryption certificate must be EC P-256, EC P-384 or RSA"
        )
    parsed = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    issuer_and_serial = asn1_cms.IssuerAndSerialNumber(
        {"issuer": parsed.issuer, "serial_number": parsed.serial_number}
    )
    return _Recipient(certificate, issuer_and_serial)


def _recipient_info(recipient: _Recipient, cek: bytes) -> asn1_cms.RecipientInfo:
    public_key = recipient.certificate.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        encrypted_key = public_key.encrypt(cek, _oaep(hashes.SHA256()))
        oaep_params = asn1_algos.RSAESOAEPParams(
            {
                "hash_algorithm": {"algorithm": "sha256"},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
            }
        )
        return asn1_cms.RecipientInfo(
            name="ktri",
            value={
                "version": "v0",  # rid is issuerAndSerialNumber (RFC 5652 section 6.2.1)
                "rid": asn1_cms.RecipientIdentifier(
                    name="issuer_and_serial_number", value=recipient.issuer_and_serial
                ),
                "key_encryption_algorithm": {
                    "algorithm": "rsaes_oaep",
                    "parameters": oaep_params,
                },
                "encrypted_key": encrypted_key,
            },
        )
    assert isinstance(public_key, ec.EllipticCurvePublicKey)  # _check_recipient saw to it
    scheme_oid = _CURVE_SCHEME[public_key.curve.name]
    hash_type = _ECDH_SCHEMES[scheme_oid][1]
    # A fresh ephemeral key per recipient (RFC 5753 section 3.1.1): the originator key is
    # never reused, so one recipient's shared secret says nothing about another's.
    ephemeral = ec.generate_private_key(public_key.curve)
    shared_secret = ephemeral.exchange(ec.ECDH(), public_key)
    kek = _derive_kek(shared_secret, hash_type(), ukm=None)
    originator_point = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    originator_key = asn1_keys.PublicKeyInfo(
        {
            "algorithm": asn1_keys.PublicKeyAlgorithm({"algorithm": "ec"}),
            "public_key": originator_point,
        }
    )
    return asn1_cms.RecipientInfo(
        name="kari",
        value={
            "version": "v3",  # RFC 5652 section 6.2.2: always 3
            "originator": asn1_cms.OriginatorIdentifierOrKey(
                name="originator_key", value=originator_key
            ),
            "key_encryption_algorithm": asn1_cms.KeyEncryptionAlgorithm(
                {"algorithm": scheme_oid, "parameters": _aes256_wrap_identifier()}
            ),
            "recipient_encrypted_keys": [
                {
                    "rid": asn1_cms.KeyAgreementRecipientIdentifier(
                        name="issuer_and_serial_number", value=recipient.issuer_and_serial
                    ),
                    "encrypted_key": aes_key_wrap(kek, cek),
                }
            ],
        },
    )


def _aes256_wrap_identifier() -> _AlgorithmIdentifier:
    # Parameters absent (RFC 3565 section 2.3.2), the encoding OpenSSL writes and expects in
    # ECC-CMS-SharedInfo: a NULL here would change the derived key and break interoperability.
    return _AlgorithmIdentifier({"algorithm": "2.16.840.1.101.3.4.1.45"})


def _derive_kek(
    shared_secret: bytes, hash_algorithm: hashes.HashAlgorithm, ukm: bytes | None
) -> bytes:
    shared_info = _EccCmsSharedInfo(
        {
            "key_info": _aes256_wrap_identifier(),
            "entity_u_info": ukm,
            "supp_pub_info": (CEK_BYTES * 8).to_bytes(4, "big"),  # key length in bits
        }
    )
    kdf = X963KDF(algorithm=hash_algorithm, length=CEK_BYTES, sharedinfo=shared_info.dump())
    return kdf.derive(shared_secret)


# --- the recipe: decrypting --------------------------------------------------------------------


def is_encrypted(payload: bytes) -> bool:
    """Whether ``payload`` looks like CMS encrypted content rather than an XML document.

    A sniff of the first bytes only (a DER SEQUENCE whose first element is the ContentType
    ``id-ct-authEnvelopedData`` or ``id-envelopedData``), for routing a received payload;
    :func:`decrypt` does the real checks. XML can never match: it starts with ``<``, a BOM or
    white space, never with byte 0x30 followed by a length and that OID.
    """
    head = bytes(payload[:32])
    if len(head) < 2 or head[0] != 0x30:
        return False
    first = head[1]
    if first <= 0x80:  # short definite length, or BER indefinite length (streamed CMS)
        offset = 2
    elif first <= 0x84:
        offset = 2 + (first & 0x7F)
    else:
        return False
    rest = head[offset:]
    return rest.startswith(_AUTH_ENVELOPED_OID_DER) or rest.startswith(_ENVELOPED_OID_DER)


def decrypt(cms: bytes, private_key: Any, certificate: x509.Certificate) -> bytes:
    """Decrypt CMS from :func:`encrypt_for` (or any AuthEnvelopedData / AES-256-GCM sender).

    ``certificate`` is our body's encryption certificate and ``private_key`` its key: a
    ``cryptography`` EC or RSA private key, or a token key implementing
    :class:`KeyAgreementKey` / :class:`KeyTransportKey`. The recipient info naming
    ``certificate`` (issuer and serial, or subjectKeyIdentifier) is used; during a rollover,
    call once per key still held.

    Returns the whole plaintext (the signed document, to verify next) or raises: nothing is
    returned unless the GCM tag authenticated all of it. Raises :class:`MalformedCms`,
    :class:`UnsupportedScheme`, :class:`NotARecipient`, :class:`DecryptionFailed`.
    """
    if not isinstance(certificate, x509.Certificate):
        raise TypeError("certificate must be our encryption certificate (x509.Certificate)")
    _check_key_matches(private_key, certificate)
    enveloped = _parse(cms)
    try:
        nonce, ciphertext, tag, aad = _content_parts(enveloped)
        ours = _our_recipient_info(enveloped, certificate)
    except _ASN1_ERRORS as exc:
        # Fields that are absent or of the wrong type where the algorithm needs them: the
        # lookups above raise these, and hostile input must not escape as a bare KeyError.
        raise MalformedCms(
            f"the encrypted payload's recipient or content info is malformed ({_short(exc)})"
        ) from None
    # The key operation runs outside that net: a token's failure is not a malformed document.
    cek = ours.unwrap(private_key, certificate)
    try:
        return AESGCM(cek).decrypt(nonce, ciphertext + tag, aad)
    except InvalidTag:
        raise DecryptionFailed(
            "the encrypted document did not authenticate (AES-GCM tag mismatch): it was "
            "altered in transit or storage, or it was not encrypted for our key; ask the "
            "sender to send it again"
        ) from None


def decrypt_with_any(cms: bytes, keys: Sequence[tuple[Any, x509.Certificate]]) -> bytes:
    """:func:`decrypt` with the first of our encryption keys the CMS is addressed to.

    ``keys`` are (private key, certificate) pairs: during a rollover, the new and the old
    encryption key, so that messages encrypted before a sender reloaded the directory still
    open. Only :class:`NotARecipient` moves on to the next key; any other error is final (a
    document altered in transit does not get a second try with another key).
    """
    if not keys:
        raise ConfigurationError("no encryption key configured to decrypt with")
    refusals: list[str] = []
    for private_key, certificate in keys:
        try:
            return decrypt(cms, private_key, certificate)
        except NotARecipient as refusal:
            refusals.append(str(refusal))
    if len(refusals) == 1:
        raise NotARecipient(refusals[0])
    held = ", ".join(_describe(certificate) for _, certificate in keys)
    raise NotARecipient(
        f"the document is encrypted to none of our {len(keys)} encryption certificates "
        f"({held}); {refusals[0].split('; ', 1)[-1]}"
    )


def _check_key_matches(private_key: Any, certificate: x509.Certificate) -> None:
    # A key and certificate that do not belong together is our configuration error, not a
    # damaged document: say so instead of a misleading "altered" later.
    public_of = getattr(private_key, "public_key", None)
    if public_of is None:
        return
    try:
        ours = public_of().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except Exception:  # a token key may not export it; the unwrap will tell
        return
    theirs = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if ours != theirs:
        raise ConfigurationError(
            f"the encryption private key does not belong to certificate {_describe(certificate)}:"
            " check [keys] (encryption.key.pem / encryption.crt.pem or the token label)"
        )


def _parse(cms: bytes) -> asn1_cms.AuthEnvelopedData:
    if not isinstance(cms, bytes | bytearray | memoryview):
        raise TypeError("cms must be bytes (DER)")
    if len(cms) > MAX_CMS_BYTES:
        raise MalformedCms(
            f"the encrypted payload is {len(cms)} bytes; at most {MAX_CMS_BYTES} are accepted "
            "(MAX_CMS_BYTES): refused unread"
        )
    if not is_encrypted(cms):
        raise MalformedCms(
            "the payload is not CMS encrypted content (no AuthEnvelopedData ContentInfo at its "
            "start): it may be a plain XML document or garbage"
        )
    try:
        content_info = asn1_cms.ContentInfo.load(bytes(cms), strict=True)
        content_type = content_info["content_type"].dotted
        if content_type == _OID_ENVELOPED_DATA:
            raise UnsupportedScheme(
                "the payload is CMS EnvelopedData, which has no integrity protection; the "
                "gateway accepts only AuthEnvelopedData with AES-256-GCM (RFC 5083/5084): "
                "the sender must encrypt with AES-256-GCM (openssl cms -encrypt -aes-256-gcm)"
            )
        if content_type != _OID_AUTH_ENVELOPED_DATA:
            raise MalformedCms(f"the CMS content type is {content_type}, not AuthEnvelopedData")
        enveloped = content_info["content"]
        if not isinstance(enveloped, asn1_cms.AuthEnvelopedData):
            raise MalformedCms("the CMS content is not an AuthEnvelopedData structure")
        # Touch every field now, so that broken inner encodings fail here, as MalformedCms.
        enveloped.native  # noqa: B018
    except RecipientEncryptionError:
        raise
    except _ASN1_ERRORS as exc:
        raise MalformedCms(
            f"the encrypted payload is not well-formed CMS (ASN.1 error: {_short(exc)})"
        ) from None
    if enveloped["version"].native != "v0":
        raise MalformedCms(
            f"AuthEnvelopedData version is {enveloped['version'].native}; RFC 5083 requires 0"
        )
    return enveloped


def _content_parts(
    enveloped: asn1_cms.AuthEnvelopedData,
) -> tuple[bytes, bytes, bytes, bytes | None]:
    """Nonce, ciphertext, tag and associated data, after checking the content algorithm."""
    info = enveloped["auth_encrypted_content_info"]
    if info["content_type"].dotted != _OID_DATA:
        raise UnsupportedScheme(
            f"the encrypted content type is {info['content_type'].dotted}; only id-data "
            "(the signed document's bytes) is accepted"
        )
    algorithm = info["content_encryption_algorithm"]
    if algorithm["algorithm"].native != "aes256_gcm":
        raise UnsupportedScheme(
            f"content encryption {algorithm['algorithm'].native} is refused; the gateway "
            "accepts only AES-256-GCM (RFC 5084)"
        )
    try:
        params = _GcmParameters.load(algorithm["parameters"].dump(), strict=True)
        nonce = params["aes_nonce"].native
        tag_length = params["aes_icvlen"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedCms(f"the AES-GCM parameters are malformed ({_short(exc)})") from None
    if len(nonce) != GCM_NONCE_BYTES:
        raise UnsupportedScheme(
            f"the AES-GCM nonce is {len(nonce)} bytes; only {GCM_NONCE_BYTES} are accepted"
        )
    if tag_length != GCM_TAG_BYTES:
        raise UnsupportedScheme(
            f"the AES-GCM tag length is {tag_length} bytes; only {GCM_TAG_BYTES} are accepted"
        )
    ciphertext = info["encrypted_content"].native
    if ciphertext is None:
        raise MalformedCms(
            "the encrypted content is detached (absent); the gateway sends and accepts it inline"
        )
    tag = enveloped["mac"].native
    if len(tag) != GCM_TAG_BYTES:
        raise DecryptionFailed(
            f"the AES-GCM tag is {len(tag)} bytes, not {GCM_TAG_BYTES}: the document was "
            "altered or truncated"
        )
    aad = None
    auth_attrs = enveloped["auth_attrs"]
    if not isinstance(auth_attrs, asn1_core.Void):
        # RFC 5083 section 2.2: the authenticated attributes, DER-encoded with the SET OF tag
        # in place of [1], are GCM's associated data.
        aad = _set_of(auth_attrs.contents)
    return nonce, ciphertext, tag, aad


def _set_of(contents: bytes) -> bytes:
    length = len(contents)
    if length < 0x80:
        header = bytes([0x31, length])
    else:
        size = length.to_bytes((length.bit_length() + 7) // 8, "big")
        header = bytes([0x31, 0x80 | len(size)]) + size
    return header + contents


@dataclass(frozen=True, slots=True)
class _OurIdentity:
    issuer: asn1_x509.Name
    serial: int
    subject_key_identifier: bytes | None
    description: str

    def matches_issuer_serial(self, value: asn1_cms.IssuerAndSerialNumber) -> bool:
        return bool(value["serial_number"].native == self.serial and value["issuer"] == self.issuer)

    def matches_ski(self, value: bytes) -> bool:
        return self.subject_key_identifier is not None and value == self.subject_key_identifier


def _identity(certificate: x509.Certificate) -> _OurIdentity:
    parsed = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    return _OurIdentity(
        issuer=parsed.issuer,
        serial=parsed.serial_number,
        subject_key_identifier=parsed.key_identifier,
        description=_describe(certificate),
    )


def _our_recipient_info(
    enveloped: asn1_cms.AuthEnvelopedData, certificate: x509.Certificate
) -> _KeyTransport | _KeyAgreement:
    infos = enveloped["recipient_infos"]
    if len(infos) > MAX_RECIPIENTS:
        raise MalformedCms(
            f"the CMS names {len(infos)} recipients; at most {MAX_RECIPIENTS} are read "
            "(MAX_RECIPIENTS)"
        )
    if len(infos) == 0:
        raise MalformedCms("the CMS names no recipients (RFC 5652 requires at least one)")
    us = _identity(certificate)
    others: list[str] = []
    for info in infos:
        kind = info.name
        value = info.chosen
        if kind == "ktri":
            rid = value["rid"]
            if _rid_matches(us, rid.name, rid.chosen):
                return _key_transport(value, certificate)
            others.append(_describe_rid(rid.name, rid.chosen))
        elif kind == "kari":
            for encrypted_key in value["recipient_encrypted_keys"]:
                rid = encrypted_key["rid"]
                rid_value = rid.chosen
                if rid.name == "r_key_id":
                    rid_name, rid_value = (
                        "subject_key_identifier",
                        rid_value["subject_key_identifier"],
                    )
                else:
                    rid_name = rid.name
                if _rid_matches(us, rid_name, rid_value):
                    return _key_agreement(value, encrypted_key, certificate)
                others.append(_describe_rid(rid_name, rid_value))
        else:
            others.append(f"a {kind} recipient (password/symmetric/other; not ours)")
    listed = "; ".join(others[:4]) + (" …" if len(others) > 4 else "")
    raise NotARecipient(
        f"the document is not encrypted to our certificate {us.description}; it names "
        f"{len(others)} other recipient(s): {listed}. The sender used another encryption "
        "certificate: check that the directory of bodies it holds lists our current one"
    )


def _rid_matches(us: _OurIdentity, name: str, value: Any) -> bool:
    if name == "issuer_and_serial_number":
        return us.matches_issuer_serial(value)
    if name == "subject_key_identifier":
        return us.matches_ski(value.native)
    return False


@dataclass(frozen=True, slots=True)
class _KeyTransport:
    """Our key-transport recipient info, checked: what the RSA key must undo."""

    encrypted_key: bytes
    hash_algorithm: hashes.HashAlgorithm

    def unwrap(self, private_key: Any, certificate: x509.Certificate) -> bytes:
        key = _transport_key(private_key, certificate)
        try:
            cek = key.decrypt_oaep(self.encrypted_key, self.hash_algorithm)
        except ValueError:
            raise DecryptionFailed(
                "the content key addressed to our certificate did not decrypt (RSA-OAEP): it "
                "was altered, or encrypted to another key with our certificate's issuer and "
                "serial"
            ) from None
        return _check_cek(cek)


@dataclass(frozen=True, slots=True)
class _KeyAgreement:
    """Our key-agreement recipient info, checked: the sender's ephemeral key and the rest."""

    ephemeral: ec.EllipticCurvePublicKey
    kdf_hash: hashes.HashAlgorithm
    ukm: bytes | None
    wrapped_key: bytes

    def unwrap(self, private_key: Any, certificate: x509.Certificate) -> bytes:
        key = _agreement_key(private_key, certificate)
        kek = _derive_kek(key.exchange(self.ephemeral), self.kdf_hash, self.ukm)
        try:
            cek = aes_key_unwrap(kek, self.wrapped_key)
        except (InvalidUnwrap, ValueError):
            raise DecryptionFailed(
                "the content key addressed to our certificate did not unwrap (ECDH + AES key "
                "wrap): it was altered, or encrypted to another key with our certificate's "
                "issuer and serial"
            ) from None
        return _check_cek(cek)


def _key_transport(
    info: asn1_cms.KeyTransRecipientInfo, certificate: x509.Certificate
) -> _KeyTransport:
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        # A peer may name our EC certificate in a key-transport info: that is its error (or
        # an attack), not our configuration's.
        raise UnsupportedScheme(
            "a key-transport recipient info names our certificate, but its key is not RSA"
        )
    algorithm = info["key_encryption_algorithm"]
    name = algorithm["algorithm"].native
    if name == "rsaes_pkcs1v15":
        raise UnsupportedScheme(
            "key transport with RSA PKCS#1 v1.5 is refused (open to Bleichenbacher's attack); "
            "the sender must use RSA-OAEP with SHA-256 "
            "(openssl: -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256)"
        )
    if name != "rsaes_oaep":
        raise UnsupportedScheme(f"key transport algorithm {name} is not supported")
    params = algorithm["parameters"]
    hash_name = params["hash_algorithm"]["algorithm"].native
    mgf = params["mask_gen_algorithm"]
    label = params["p_source_algorithm"]
    if hash_name not in _OAEP_HASHES:
        raise UnsupportedScheme(
            f"RSA-OAEP with {hash_name} is refused; use SHA-256, SHA-384 or SHA-512 "
            "(openssl: -keyopt rsa_oaep_md:sha256)"
        )
    if (
        mgf["algorithm"].native != "mgf1"
        or mgf["parameters"]["algorithm"].native != hash_name
        or label["algorithm"].native != "p_specified"
        or label["parameters"].native != b""
    ):
        raise UnsupportedScheme(
            f"RSA-OAEP must use MGF1 with the same hash ({hash_name}) and an empty label"
        )
    return _KeyTransport(info["encrypted_key"].native, _OAEP_HASHES[hash_name]())


def _key_agreement(
    info: asn1_cms.KeyAgreeRecipientInfo,
    encrypted_key: asn1_cms.RecipientEncryptedKey,
    certificate: x509.Certificate,
) -> _KeyAgreement:
    our_public = certificate.public_key()
    if not isinstance(our_public, ec.EllipticCurvePublicKey):
        raise UnsupportedScheme(
            "a key-agreement recipient info names our certificate, but its key is not EC"
        )
    if info["version"].native != "v3":
        raise MalformedCms("KeyAgreeRecipientInfo version must be 3 (RFC 5652 section 6.2.2)")
    scheme = info["key_encryption_algorithm"]["algorithm"].dotted
    if scheme in _REFUSED_ECDH_SCHEMES:
        raise UnsupportedScheme(
            f"key agreement {_REFUSED_ECDH_SCHEMES[scheme]} is refused; the sender must use "
            "dhSinglePass-stdDH-sha256kdf-scheme (P-256) or -sha384kdf-scheme (P-384) "
            "(openssl: -keyopt ecdh_kdf_md:sha256)"
        )
    if scheme not in _ECDH_SCHEMES:
        raise UnsupportedScheme(f"key agreement algorithm {scheme} is not supported")
    try:
        wrap = _AlgorithmIdentifier.load(
            info["key_encryption_algorithm"]["parameters"].dump(), strict=True
        )
        wrap_oid = wrap["algorithm"].dotted
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedCms(f"the key-wrap algorithm is malformed ({_short(exc)})") from None
    if wrap_oid != "2.16.840.1.101.3.4.1.45" or not isinstance(wrap["parameters"], asn1_core.Void):
        raise UnsupportedScheme(
            f"key wrap {wrap_oid} is refused; only AES-256 key wrap (id-aes256-wrap, "
            "RFC 3565, parameters absent) is accepted"
        )
    originator = info["originator"]
    if originator.name != "originator_key":
        raise UnsupportedScheme(
            "the originator is identified by a certificate (static-static ECDH); only an "
            "ephemeral originator key is accepted (RFC 5753 section 3.1.1)"
        )
    originator_key = originator.chosen
    if originator_key["algorithm"]["algorithm"].dotted != _OID_EC_PUBLIC_KEY:
        raise UnsupportedScheme("the originator key is not an EC public key (id-ecPublicKey)")
    curve_parameters = originator_key["algorithm"]["parameters"]
    if (
        isinstance(curve_parameters, asn1_keys.ECDomainParameters)
        and curve_parameters.name == "named"
        and curve_parameters.chosen.native != our_public.curve.name
    ):
        raise UnsupportedScheme(
            f"the originator key is on {curve_parameters.chosen.native}, "
            f"our key on {our_public.curve.name}"
        )
    try:
        point = originator_key["public_key"].native
        ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(
            _CURVES[our_public.curve.name], point
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedCms(
            f"the originator's ephemeral public key is not a point on our curve ({_short(exc)})"
        ) from None
    return _KeyAgreement(
        ephemeral=ephemeral,
        kdf_hash=_ECDH_SCHEMES[scheme][1](),
        ukm=info["ukm"].native,
        wrapped_key=encrypted_key["encrypted_key"].native,
    )


def _check_cek(cek: bytes) -> bytes:
    if len(cek) != CEK_BYTES:
        raise DecryptionFailed(
            f"the content key is {len(cek)} bytes, not {CEK_BYTES} (AES-256): the recipient "
            "info was altered or is not for us"
        )
    return cek


def _agreement_key(private_key: Any, certificate: x509.Certificate) -> KeyAgreementKey:
    # A cryptography key first: its own ``exchange`` takes (algorithm, peer), not (peer).
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return _SoftwareEcdh(private_key)
    if isinstance(private_key, KeyAgreementKey):
        return private_key
    raise ConfigurationError(
        f"certificate {_describe(certificate)} holds an EC key, but the private key given "
        f"({type(private_key).__name__}) cannot do ECDH"
    )


def _transport_key(private_key: Any, certificate: x509.Certificate) -> KeyTransportKey:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return _SoftwareOaep(private_key)
    if isinstance(private_key, KeyTransportKey):
        return private_key
    raise ConfigurationError(
        f"certificate {_describe(certificate)} holds an RSA key, but the private key given "
        f"({type(private_key).__name__}) cannot decrypt RSA-OAEP"
    )


# --- helpers -----------------------------------------------------------------------------------


def _key_usage(certificate: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _describe(certificate: x509.Certificate) -> str:
    return f"'{certificate.subject.rfc4514_string()}' (serial {certificate.serial_number:x})"


def _describe_rid(name: str, value: Any) -> str:
    # Names come from the peer's bytes: printable only and bounded, so they cannot forge log
    # lines or flood them.
    try:
        if name == "issuer_and_serial_number":
            issuer = _printable(value["issuer"].human_friendly, 120)
            return f"issuer '{issuer}' serial {value['serial_number'].native:x}"[:200]
        if name == "subject_key_identifier":
            return f"subjectKeyIdentifier {value.native.hex()[:64]}"
    except _ASN1_ERRORS:
        pass
    return f"an unreadable {name}"


def _short(exc: BaseException) -> str:
    # asn1crypto's messages can quote whole byte strings; keep a log line a line.
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return _printable(text, 160)


def _printable(text: str, limit: int) -> str:
    cleaned = "".join(c if c.isprintable() else "?" for c in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"

"""The one seam that says which signature and digest algorithms the gateway accepts.

Everything that signs or verifies asks this module: XAdES (:mod:`gateway.crypto.xades`),
key generation (:mod:`gateway.crypto.certificates`), path validation (:mod:`gateway.crypto.trust`).

Policy (CIS Art. 11.3; SC Art. 5.1 require signatures that can be relied upon):

* verify: ECDSA on P-256 / P-384 with SHA-256 / SHA-384; RSA PKCS#1 v1.5 and RSA-PSS with
  keys of at least 2048 bits; GOST R 34.10-2012 (256 and 512 bits) with GOST R 34.11-2012
  (Streebog), under the SMEV 3 URIs; digests SHA-256, SHA-384, SHA-512, Streebog-256/-512;
* generate: EC P-256 (default), EC P-384, RSA with at least 3072 bits, GOST 2012-256/-512;
* refused everywhere, with :class:`WeakAlgorithm`: SHA-1, MD5, DSA, short keys, other curves.

GOST is not in ``cryptography``: :mod:`gateway.crypto.gost` does it (gostcrypto, MIT).
Which of these a body signs with and accepts is its suite list in the directory
(:class:`gateway.model.directory.Suite`, :func:`suite_of`).
"""

from __future__ import annotations

import functools
import hashlib
from enum import StrEnum
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from gateway.crypto import gost
from gateway.model.directory import Suite


class SignatureMethod(StrEnum):
    """XML-DSig signature method URIs we know (RFC 6931); :data:`ACCEPTED_SIGNATURE_METHODS`
    says which are accepted. Member names follow signxml's, so either enum can be passed where
    the other is expected."""

    ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
    ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
    RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    RSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
    RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
    SHA256_RSA_MGF1 = "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
    SHA384_RSA_MGF1 = "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1"
    SHA512_RSA_MGF1 = "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1"
    # SMEV 3 / CryptoPro (draft-smirnov-xmldsig, R 1323565.1.033-2020).
    GOST_2012_256 = "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34102012-gostr34112012-256"
    GOST_2012_512 = "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34102012-gostr34112012-512"
    # Known only to be refused by name (tests make such signatures the way a careless peer would).
    ECDSA_SHA1 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"
    RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"


class DigestAlgorithm(StrEnum):
    """XML-DSig digest method URIs we know; :data:`ACCEPTED_DIGESTS` says which are accepted."""

    SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
    SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
    SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
    STREEBOG_256 = "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34112012-256"
    STREEBOG_512 = "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34112012-512"
    SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"

    def digest(self, data: bytes) -> bytes:
        """The digest of ``data`` (Streebog through :mod:`gateway.crypto.gost`)."""
        if self is DigestAlgorithm.STREEBOG_256:
            return gost.streebog(data, 256)
        if self is DigestAlgorithm.STREEBOG_512:
            return gost.streebog(data, 512)
        return hashlib.new(self.name.lower(), data).digest()


RSA_MIN_VERIFY_BITS = 2048
"""Smallest RSA modulus we still verify: NIST SP 800-57 deems 2048 bits adequate until 2030,
and national CAs of the parties still issue 2048-bit certificates."""

RSA_MIN_GENERATE_BITS = 3072
"""Smallest RSA modulus we generate: 128-bit security (NIST SP 800-57), for keys that will
sign documents kept for years (CIS Art. 9.6 retention)."""

ACCEPTED_CURVES = frozenset({"secp256r1", "secp384r1"})
"""NIST P-256 and P-384: what the parties' national CAs and xmlsec1 all support."""

ACCEPTED_SIGNATURE_METHODS = frozenset(
    {
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.SHA256_RSA_MGF1,
        SignatureMethod.SHA384_RSA_MGF1,
        SignatureMethod.SHA512_RSA_MGF1,
        SignatureMethod.GOST_2012_256,
        SignatureMethod.GOST_2012_512,
    }
)
"""XML-DSig signature methods a peer's signature may use."""

ACCEPTED_DIGESTS = frozenset(
    {
        DigestAlgorithm.SHA256,
        DigestAlgorithm.SHA384,
        DigestAlgorithm.SHA512,
        DigestAlgorithm.STREEBOG_256,
        DigestAlgorithm.STREEBOG_512,
    }
)
"""XML-DSig digest methods (references, signing-certificate digests)."""

WEAK_NAMES = ("sha1", "md5", "md2", "md4", "ripemd")
"""Fragments that mark an algorithm URI or name as broken: refused with a named reason."""

WEAK_CERTIFICATE_HASHES = frozenset({"md2", "md5", "sha1"})
"""Hashes refused in the signatures of certificates on a path (:mod:`gateway.crypto.trust`)."""


class WeakAlgorithm(ValueError):
    """An algorithm or key refused by policy (ETSI sub-indication CRYPTO_CONSTRAINTS_FAILURE)."""


class KeySpec(StrEnum):
    """Key types ``gateway keys generate --algorithm`` can create."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    GOST_256 = "gost-256"
    GOST_512 = "gost-512"

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("rsa")

    @property
    def gost_bits(self) -> int:
        return int(self.value.split("-")[1]) if self.value.startswith("gost") else 0

    @property
    def rsa_bits(self) -> int:
        return int(self.value.split("-")[1]) if self.is_rsa else 0

    @property
    def curve(self) -> ec.EllipticCurve | None:
        return {"ec-p256": ec.SECP256R1(), "ec-p384": ec.SECP384R1()}.get(self.value)


DEFAULT_KEY_SPEC = KeySpec.EC_P256


def suite_of(method: SignatureMethod) -> Suite:
    """The suite a signature method belongs to."""
    name = method.name
    if name.startswith("GOST"):
        return Suite.GOST_2012_512 if name.endswith("512") else Suite.GOST_2012_256
    if name.startswith("ECDSA"):
        return Suite.ECDSA
    if name.endswith("RSA_MGF1"):
        return Suite.RSA_PSS
    return Suite.RSA_PKCS1


def suite_name(method_uri: str) -> str:
    """The suite of a signature method URI for reports (``gost2012-256``), or the URI itself
    when it is none we know (a refused algorithm is still named)."""
    try:
        return suite_of(SignatureMethod(method_uri)).value
    except ValueError:
        return method_uri or "?"


def suite_for_key(public_key: Any) -> Suite:
    """The suite a key signs with (RSA keys sign PKCS#1 v1.5, :func:`signature_method_for`)."""
    return suite_of(signature_method_for(public_key)[0])


def generate_private_key(
    spec: KeySpec,
) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | gost.GostPrivateKey:
    """A fresh private key of ``spec`` (software; tokens generate their own, see pkcs11.py)."""
    if spec.gost_bits:
        return gost.GostPrivateKey.generate(spec.gost_bits)
    if spec.is_rsa:
        if spec.rsa_bits < RSA_MIN_GENERATE_BITS:
            raise WeakAlgorithm(
                f"RSA keys are generated with at least {RSA_MIN_GENERATE_BITS} bits"
            )
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.rsa_bits)
    curve = spec.curve
    assert curve is not None
    return ec.generate_private_key(curve)


def describe_key(public_key: Any) -> str:
    """``EC P-256`` / ``RSA-3072``: for listings and reports."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "EC P-256", "secp384r1": "EC P-384", "secp521r1": "EC P-521"}.get(
            public_key.curve.name, f"EC {public_key.curve.name}"
        )
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA-{public_key.key_size}"
    if isinstance(public_key, gost.GostPublicKey):
        return f"GOST 2012-{public_key.bits}"
    return type(public_key).__name__


def check_public_key(public_key: Any, *, for_signing: bool = False) -> None:
    """Refuse keys our policy does not accept.

    ``for_signing`` applies the stricter rule for keys we generate and sign with.
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in ACCEPTED_CURVES:
            raise WeakAlgorithm(
                f"elliptic curve {public_key.curve.name} is not accepted; use P-256 or P-384"
            )
        return
    if isinstance(public_key, rsa.RSAPublicKey):
        minimum = RSA_MIN_GENERATE_BITS if for_signing else RSA_MIN_VERIFY_BITS
        if public_key.key_size < minimum:
            raise WeakAlgorithm(
                f"RSA key of {public_key.key_size} bits is too short; at least {minimum} required"
            )
        return
    if isinstance(public_key, gost.GostPublicKey):
        return  # only known parameter sets can be read (gost.PARAMSETS)
    raise WeakAlgorithm(
        f"key type {type(public_key).__name__} is not accepted (EC, RSA or GOST 2012 only)"
    )


def signature_method_for(public_key: Any) -> tuple[SignatureMethod, DigestAlgorithm]:
    """The XML-DSig signature method and reference digest we sign with for this key.

    RSA signs with PKCS#1 v1.5 (RSA-SHA256): what the parties' national systems (Kazakh NCA,
    xmlsec1 1.2) all verify; RSA-PSS is accepted when verifying.
    """
    check_public_key(public_key)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name == "secp384r1":
            return SignatureMethod.ECDSA_SHA384, DigestAlgorithm.SHA384
        return SignatureMethod.ECDSA_SHA256, DigestAlgorithm.SHA256
    if isinstance(public_key, gost.GostPublicKey):
        if public_key.bits == 512:
            return SignatureMethod.GOST_2012_512, DigestAlgorithm.STREEBOG_512
        return SignatureMethod.GOST_2012_256, DigestAlgorithm.STREEBOG_256
    return SignatureMethod.RSA_SHA256, DigestAlgorithm.SHA256


def cert_hash_for(public_key: Any) -> hashes.SHA256 | hashes.SHA384:
    """Hash used when a CA key of this type signs certificates and CRLs."""
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name == "secp384r1":
        return hashes.SHA384()
    return hashes.SHA256()


@functools.lru_cache(maxsize=64)
def check_signature_method(uri: str | None) -> SignatureMethod:
    """The accepted signature method named by ``uri``, or :class:`WeakAlgorithm` saying why not."""
    return _accepted(
        uri, SignatureMethod, ACCEPTED_SIGNATURE_METHODS, "SignatureMethod", "signature method"
    )


@functools.lru_cache(maxsize=64)
def check_digest(uri: str | None) -> DigestAlgorithm:
    """The accepted digest named by ``uri``, or :class:`WeakAlgorithm` saying why not."""
    return _accepted(uri, DigestAlgorithm, ACCEPTED_DIGESTS, "DigestMethod", "digest")


_Named = TypeVar("_Named", SignatureMethod, DigestAlgorithm)


def _accepted(
    uri: str | None, kind: type[_Named], accepted: frozenset[_Named], element: str, what: str
) -> _Named:
    if not uri:
        raise WeakAlgorithm(f"{element} has no Algorithm")
    if any(weak in uri.lower() for weak in WEAK_NAMES):
        raise WeakAlgorithm(f"{what} {uri} uses SHA-1 or MD5, which are refused")
    try:
        named = kind(uri)
    except ValueError:
        raise WeakAlgorithm(f"{what} {uri} is not accepted") from None
    if named not in accepted:
        raise WeakAlgorithm(f"{what} {uri} is not accepted")
    return named


# --- XML-DSig signature values ---------------------------------------------------------------

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _scheme(method: SignatureMethod) -> tuple[str, hashes.HashAlgorithm]:
    """(``ecdsa`` | ``rsa`` | ``pss`` | ``gost``, hash) of an XML-DSig signature method (for
    GOST the hash is a placeholder: Streebog is not in ``cryptography``)."""
    name = method.name.lower()
    if name.startswith("gost"):
        return "gost", hashes.SHA256()
    if name.endswith("_rsa_mgf1"):
        return "pss", _HASHES[name.removesuffix("_rsa_mgf1")]()
    kind, digest = name.split("_", 1)
    return kind, _HASHES[digest]()


class SignatureMismatch(ValueError):
    """A signature value that does not verify, or does not fit its method or key."""


def _coordinate_bytes(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> int:
    return (key.curve.key_size + 7) // 8


def xmldsig_sign(private_key: Any, method: SignatureMethod, data: bytes) -> bytes:
    """Sign ``data`` (a canonical SignedInfo) the XML-DSig way: ECDSA as raw ``r || s``
    (RFC 4050 / RFC 6931, each integer padded to the curve's size), RSA PKCS#1 v1.5, or
    RSA-PSS with MGF1 of the same hash and a salt as long as the hash (RFC 6931, 2.3.10), or
    GOST R 34.10-2012 as ``s || r`` big-endian (see :func:`gost_signature_value`)."""
    kind, hash_alg = _scheme(method)
    if kind == "gost":
        return gost_signature_value(private_key.sign(data))
    if kind == "ecdsa":
        der = private_key.sign(data, ec.ECDSA(hash_alg))
        r, s = decode_dss_signature(der)
        size = _coordinate_bytes(private_key)
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if kind == "pss":
        pss = padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=hash_alg.digest_size)
        return private_key.sign(data, pss, hash_alg)  # type: ignore[no-any-return]
    return private_key.sign(data, padding.PKCS1v15(), hash_alg)  # type: ignore[no-any-return]


def xmldsig_verify(public_key: Any, method: SignatureMethod, value: bytes, data: bytes) -> None:
    """Check an XML-DSig signature value made as :func:`xmldsig_sign` makes it; raise
    :class:`SignatureMismatch` when it does not verify or does not fit the key."""
    kind, hash_alg = _scheme(method)
    if kind == "gost":
        _verify_gost(public_key, method, value, data)
        return
    try:
        if kind == "ecdsa":
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                raise SignatureMismatch(f"{method.value} needs an EC key")
            size = _coordinate_bytes(public_key)
            if len(value) != 2 * size:
                raise SignatureMismatch(
                    f"an ECDSA value on {public_key.curve.name} is {2 * size} bytes (r || s), "
                    f"not {len(value)}"
                )
            der = encode_dss_signature(
                int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
            )
            public_key.verify(der, data, ec.ECDSA(hash_alg))
            return
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise SignatureMismatch(f"{method.value} needs an RSA key")
        if kind == "pss":
            pss = padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=hash_alg.digest_size)
            public_key.verify(value, data, pss, hash_alg)
        else:
            public_key.verify(value, data, padding.PKCS1v15(), hash_alg)
    except InvalidSignature:
        raise SignatureMismatch("the signature value does not verify") from None


# --- GOST R 34.10-2012 in XML-DSig ---------------------------------------------------------------


def gost_signature_value(signature: bytes) -> bytes:
    """The ds:SignatureValue bytes of a GOST signature: ``s || r``, each big-endian and as long
    as the key — the octet string of RFC 4491 §2.2.2, which R 1323565.1.033-2020 (the CryptoPro
    XML-DSig profile SMEV 3 follows) takes over unchanged. Our signers already produce it (as
    OpenSSL's engine does), so this is the identity; it is kept as a function so the choice has
    one place (docs/keys-and-signatures.md, "GOST")."""
    return signature


def _verify_gost(public_key: Any, method: SignatureMethod, value: bytes, data: bytes) -> None:
    if not isinstance(public_key, gost.GostPublicKey):
        raise SignatureMismatch(f"{method.value} needs a GOST R 34.10-2012 key")
    bits = 512 if method is SignatureMethod.GOST_2012_512 else 256
    if public_key.bits != bits:
        raise SignatureMismatch(f"{method.value} needs a {bits}-bit key, not {public_key.bits}")
    if len(value) != bits // 4:
        raise SignatureMismatch(
            f"a GOST {bits} value is {bits // 4} bytes (s || r), not {len(value)}"
        )
    if not public_key.verify(value, data):
        raise SignatureMismatch("the signature value does not verify")

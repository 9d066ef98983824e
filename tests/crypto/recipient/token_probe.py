"""Run by ``test_recipient_token.py`` in a child process: the PKCS#11 seam on SoftHSM2.

A child process because SoftHSM reads its token directory once, when the module is first
initialised in a process: a token created after that (ours, or another test module's) is not
seen. In a process of its own the token is always fresh and nothing else is disturbed.

Usage: ``python -m tests.crypto.recipient.token_probe MODULE TOKEN_LABEL PIN``
(``SOFTHSM2_CONF`` set);
prints one JSON object: scenario name → outcome.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.crypto.keys.pkcs11 import TokenSession
from gateway.crypto.recipient import KeyAgreementKey, decrypt, encrypt_for
from tests.crypto.recipient.conftest import RecipientCA

CURVE_OIDS = {"secp256r1": "1.2.840.10045.3.1.7", "secp384r1": "1.3.132.0.34"}
DOCUMENT = b"<env:Envelope xmlns:env='urn:cis-exchange:envelope:1'>token</env:Envelope>"


class SoftHsmEcdh:
    """A :class:`KeyAgreementKey` on a PKCS#11 token: ``CKM_ECDH1_DERIVE`` with ``CKD_NULL``.

    The private key is sensitive and not extractable; only Z, the per-message shared secret,
    comes out (as a non-sensitive derived generic secret), as the seam defines."""

    def __init__(self, token: TokenSession, private: Any, curve: ec.EllipticCurve) -> None:
        self._token = token
        self._private = private
        self._bits = (curve.key_size + 7) // 8 * 8

    def exchange(self, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        from pkcs11 import KDF, Attribute, KeyType

        point = peer_public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        with self._token.lock:
            secret = self._private.derive_key(
                KeyType.GENERIC_SECRET,
                self._bits,
                mechanism_param=(KDF.NULL, None, point),
                template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
                store=False,
            )
            return bytes(secret[Attribute.VALUE])


def token_key(token: TokenSession, curve_name: str) -> tuple[SoftHsmEcdh, Any, Any]:
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

    with token.lock:
        params = token.session.create_domain_parameters(
            KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters(CURVE_OIDS[curve_name])},
            local=True,
        )
        public, private = params.generate_keypair(
            store=False,
            private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
        )
        public_key = serialization.load_der_public_key(encode_ec_public_key(public))
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    return SoftHsmEcdh(token, private, public_key.curve), private, public_key


def outcome(cms: bytes, key: SoftHsmEcdh, certificate: Any) -> str:
    """What decrypt() did: "plaintext", or the name of the exception it raised."""
    try:
        result = decrypt(cms, key, certificate)
    except Exception as exc:  # the outcome is what the parent test asserts on
        return type(exc).__name__
    return "plaintext" if result == DOCUMENT else "OTHER-PLAINTEXT"


def main(module: str, label: str, pin: str) -> dict[str, Any]:
    from pkcs11 import Attribute

    token = TokenSession.open(Path(module), label, pin)
    ca = RecipientCA()
    results: dict[str, Any] = {}
    for serial, curve_name in enumerate(CURVE_OIDS, start=9001):
        key, private, public_key = token_key(token, curve_name)
        certificate = ca.issue(public_key, f"token {curve_name}", serial)
        results[f"{curve_name}:is-seam"] = isinstance(key, KeyAgreementKey)
        results[f"{curve_name}:extractable"] = bool(private[Attribute.EXTRACTABLE])
        cms = encrypt_for(DOCUMENT, [certificate])
        results[f"{curve_name}:round-trip"] = outcome(cms, key, certificate)

        stranger = ec.generate_private_key(public_key.curve)
        stranger_cert = ca.issue(stranger.public_key(), "stranger", serial + 100)
        for_stranger = encrypt_for(DOCUMENT, [stranger_cert])
        results[f"{curve_name}:for-another"] = outcome(for_stranger, key, certificate)
        # Another key under the token certificate's issuer and serial: the token's ECDH gives
        # another secret and the key unwrap fails.
        impostor = ca.issue(stranger.public_key(), f"token {curve_name}", serial)
        for_impostor = encrypt_for(DOCUMENT, [impostor])
        results[f"{curve_name}:impostor"] = outcome(for_impostor, key, certificate)
    # The signing-key class of gateway.crypto.keys.pkcs11 refuses ECDH today: that must surface
    # as a configuration error naming the seam, not as a damaged document.
    from gateway.crypto.algorithms import KeySpec

    signing_key = token.generate("recipient-signing-key", KeySpec.EC_P256)
    certificate = ca.issue(signing_key.public_key(), "token signing key", 9500)
    cms = encrypt_for(DOCUMENT, [certificate])
    try:
        decrypt(cms, signing_key, certificate)
        results["pkcs11-signing-key"] = "plaintext"
    except Exception as exc:
        results["pkcs11-signing-key"] = f"{type(exc).__name__}: {exc}"
    token.close()
    return results


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))

"""encrypt_for / decrypt: round trips, several recipients, and who may not read."""

from __future__ import annotations

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from gateway.crypto.recipient import (
    DecryptionFailed,
    KeyAgreementKey,
    KeyTransportKey,
    NotARecipient,
    RecipientEncryptionError,
    UnsuitableCertificate,
    decrypt,
    decrypt_with_any,
    encrypt_for,
    is_encrypted,
)
from gateway.model.problems import ConfigurationError
from tests.crypto.recipient.conftest import KINDS, Party, RecipientCA, new_key

DOCUMENT = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<env:Envelope xmlns:env="urn:cis-exchange:envelope:1"><env:Header Id="header">'
    '<env:Confidential>true</env:Confidential></env:Header><env:Body Id="body">'
    "Должник: Иванов Иван Иванович, ИИН 850101300123</env:Body></env:Envelope>"
).encode()


def test_round_trip(party: Party) -> None:
    cms = encrypt_for(DOCUMENT, [party.certificate])
    assert decrypt(cms, party.key, party.certificate) == DOCUMENT


def test_ciphertext_does_not_contain_the_plaintext(party: Party) -> None:
    cms = encrypt_for(DOCUMENT, [party.certificate])
    assert DOCUMENT not in cms
    for fragment in (b"Envelope", "Иванов".encode(), b"850101300123", b"Confidential"):
        assert fragment not in cms


def test_each_encryption_is_fresh(party: Party) -> None:
    # A new content key, nonce and (EC) ephemeral key every time: equal documents do not
    # give equal ciphertexts, so an observer cannot tell that the same document went twice.
    assert encrypt_for(DOCUMENT, [party.certificate]) != encrypt_for(DOCUMENT, [party.certificate])


def test_the_format_is_auth_enveloped_data_with_aes_256_gcm(party: Party) -> None:
    info = asn1_cms.ContentInfo.load(encrypt_for(DOCUMENT, [party.certificate]))
    assert info["content_type"].native == "authenticated_enveloped_data"
    content = info["content"]["auth_encrypted_content_info"]
    assert content["content_encryption_algorithm"]["algorithm"].native == "aes256_gcm"
    (recipient,) = info["content"]["recipient_infos"]
    if isinstance(party.key, rsa.RSAPrivateKey):
        assert recipient.name == "ktri"
        algorithm = recipient.chosen["key_encryption_algorithm"]
        assert algorithm["algorithm"].native == "rsaes_oaep"
        assert algorithm["parameters"]["hash_algorithm"]["algorithm"].native == "sha256"
    else:
        assert recipient.name == "kari"
        scheme = recipient.chosen["key_encryption_algorithm"]["algorithm"].dotted
        expected = "1.3.132.1.11.2" if party.name == "ec-p384" else "1.3.132.1.11.1"
        assert scheme == expected  # dhSinglePass-stdDH-sha384kdf / -sha256kdf


def test_several_recipients_each_decrypt_alone(parties: dict[str, Party]) -> None:
    # A key rollover publishes the old and the new encryption certificate; either key opens it.
    recipients = [parties[kind] for kind in KINDS]
    cms = encrypt_for(DOCUMENT, [p.certificate for p in recipients])
    assert len(asn1_cms.ContentInfo.load(cms)["content"]["recipient_infos"]) == 3
    for party in recipients:
        assert decrypt(cms, party.key, party.certificate) == DOCUMENT
    with pytest.raises(NotARecipient):
        decrypt(cms, parties["other"].key, parties["other"].certificate)


def test_a_node_without_the_recipients_key_cannot_decrypt(
    party: Party, parties: dict[str, Party]
) -> None:
    cms = encrypt_for(DOCUMENT, [party.certificate])
    other = parties["other"]
    with pytest.raises(NotARecipient) as caught:
        decrypt(cms, other.key, other.certificate)
    message = str(caught.value)
    assert "encryption other" in message  # names our certificate
    assert f"serial {party.certificate.serial_number:x}" in message  # and who it was for
    assert "directory of bodies" in message  # and what to check


def test_an_empty_document_round_trips(party: Party) -> None:
    assert decrypt(encrypt_for(b"", [party.certificate]), party.key, party.certificate) == b""


def test_a_key_that_is_not_the_certificates_is_a_configuration_error(
    parties: dict[str, Party],
) -> None:
    p256 = parties["ec-p256"]
    cms = encrypt_for(DOCUMENT, [p256.certificate])
    with pytest.raises(ConfigurationError, match="does not belong to certificate"):
        decrypt(cms, parties["other"].key, p256.certificate)


# --- the seam for token keys ------------------------------------------------------------------


class FakeTokenEcdh:
    """A seam object that is not a ``cryptography`` key: ECDH through ``exchange(peer)`` alone,
    no private numbers, no ``public_key()``. The real token (SoftHSM) is exercised in
    ``test_recipient_token.py``; this one runs in-process and counts its calls."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self.calls = 0

    def exchange(self, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        self.calls += 1
        return self._key.exchange(ec.ECDH(), peer_public_key)


class FakeTokenOaep:
    """The RSA side of the seam. SoftHSM 2.6 does RSA-OAEP with SHA-1 only, so no real token
    here can stand in for a hardware HSM's OAEP-SHA-256; this software one shows the seam."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key
        self.calls = 0

    def decrypt_oaep(self, ciphertext: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
        self.calls += 1
        oaep = padding.OAEP(padding.MGF1(hash_algorithm), hash_algorithm, None)
        return self._key.decrypt(ciphertext, oaep)


def test_a_token_key_decrypts_through_the_seam(parties: dict[str, Party]) -> None:
    for kind in KINDS:
        party = parties[kind]
        if isinstance(party.key, rsa.RSAPrivateKey):
            token_key: FakeTokenEcdh | FakeTokenOaep = FakeTokenOaep(party.key)
            assert isinstance(token_key, KeyTransportKey)
        else:
            token_key = FakeTokenEcdh(party.key)
            assert isinstance(token_key, KeyAgreementKey)
        cms = encrypt_for(DOCUMENT, [party.certificate])
        assert decrypt(cms, token_key, party.certificate) == DOCUMENT
        assert token_key.calls == 1


def test_a_key_of_the_wrong_kind_is_a_configuration_error(parties: dict[str, Party]) -> None:
    rsa_party = parties["rsa-3072"]
    cms = encrypt_for(DOCUMENT, [rsa_party.certificate])
    with pytest.raises(ConfigurationError, match="cannot decrypt RSA-OAEP"):
        decrypt(cms, FakeTokenEcdh(parties["ec-p256"].key), rsa_party.certificate)


# --- certificates that cannot receive ---------------------------------------------------------


def _signature_only() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


@pytest.mark.parametrize(
    ("make_key", "usage", "reason"),
    [
        (lambda: ec.generate_private_key(ec.SECP521R1()), None, "curve secp521r1"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), None, "curve secp256k1"),
        (lambda: rsa.generate_private_key(65537, 1024), None, "1024 bits"),  # noqa: S505
        (lambda: new_key("ec-p256"), _signature_only(), "lacks keyAgreement"),
        (lambda: ed25519.Ed25519PrivateKey.generate(), _signature_only(), "Ed25519PublicKey"),
    ],
    ids=["p521", "secp256k1", "rsa1024", "seal-not-encryption", "ed25519"],
)
def test_unsuitable_recipient_certificates_are_refused(
    ca: RecipientCA, make_key, usage, reason: str
) -> None:
    certificate = ca.issue(make_key().public_key(), "unsuitable", 77, key_usage=usage)
    with pytest.raises(UnsuitableCertificate, match=reason):
        encrypt_for(DOCUMENT, [certificate])


def test_rsa_certificate_without_key_encipherment_is_refused(
    ca: RecipientCA, parties: dict[str, Party]
) -> None:
    public = parties["rsa-3072"].key.public_key()
    certificate = ca.issue(public, "rsa seal", 78, key_usage=_signature_only())
    with pytest.raises(UnsuitableCertificate, match="lacks keyEncipherment"):
        encrypt_for(DOCUMENT, [certificate])


def test_no_recipients_and_too_many_are_refused(parties: dict[str, Party]) -> None:
    with pytest.raises(UnsuitableCertificate, match="no recipient certificate"):
        encrypt_for(DOCUMENT, [])
    with pytest.raises(UnsuitableCertificate, match="MAX_RECIPIENTS"):
        encrypt_for(DOCUMENT, [parties["ec-p256"].certificate] * 17)


def test_a_document_over_the_limit_is_refused(parties: dict[str, Party]) -> None:
    from gateway.crypto.recipient import MAX_DOCUMENT_BYTES, DocumentTooLarge

    with pytest.raises(DocumentTooLarge, match="MAX_DOCUMENT_BYTES"):
        encrypt_for(bytes(MAX_DOCUMENT_BYTES + 1), [parties["ec-p256"].certificate])


# --- the sniff ---------------------------------------------------------------------------------


def test_is_encrypted_tells_cms_from_xml(party: Party) -> None:
    assert is_encrypted(encrypt_for(DOCUMENT, [party.certificate]))
    assert not is_encrypted(DOCUMENT)
    assert not is_encrypted(b"\xef\xbb\xbf<?xml version='1.0'?><a/>")
    assert not is_encrypted(b"  <a/>")
    assert not is_encrypted(b"")
    assert not is_encrypted(b"\x30")
    assert not is_encrypted(b"\x30\x03\x02\x01\x00")  # some other DER


def test_errors_toward_a_peer_collapse_into_one_code(parties: dict[str, Party]) -> None:
    party, other = parties["ec-p256"], parties["other"]
    cms = encrypt_for(DOCUMENT, [party.certificate])
    caught: list[RecipientEncryptionError] = []
    for payload, key, certificate in (
        (cms, other.key, other.certificate),  # not for us
        (cms[:-1], party.key, party.certificate),  # truncated
        (cms[:-3] + bytes(3), party.key, party.certificate),  # altered tag
    ):
        with pytest.raises(RecipientEncryptionError) as error:
            decrypt(payload, key, certificate)
        caught.append(error.value)
    assert [type(e).__name__ for e in caught] == [
        "NotARecipient",
        "MalformedCms",
        "DecryptionFailed",
    ]
    problems = [e.problem() for e in caught]
    assert {p.code for p in problems} == {"CMS_DECRYPTION_FAILED"}
    assert {p.message_ru for p in problems} == {problems[0].message_ru}  # no detail for a peer
    assert "справочника органов" in problems[0].remedy_ru
    assert problems[0].article == "CIS Art. 16; SC Art. 8"


def test_during_a_rollover_either_of_our_keys_opens_a_message(parties: dict[str, Party]) -> None:
    old, new, stranger = parties["rsa-3072"], parties["ec-p384"], parties["other"]
    ours = [(new.key, new.certificate), (old.key, old.certificate)]
    # A sender that has not reloaded the directory still encrypts to our old certificate.
    assert decrypt_with_any(encrypt_for(DOCUMENT, [old.certificate]), ours) == DOCUMENT
    assert decrypt_with_any(encrypt_for(DOCUMENT, [new.certificate]), ours) == DOCUMENT
    with pytest.raises(NotARecipient, match="none of our 2 encryption certificates"):
        decrypt_with_any(encrypt_for(DOCUMENT, [stranger.certificate]), ours)


def test_a_rollover_gives_an_altered_document_no_second_try(parties: dict[str, Party]) -> None:
    old, new = parties["rsa-3072"], parties["ec-p384"]
    cms = encrypt_for(DOCUMENT, [new.certificate, old.certificate])
    altered = cms[:-1] + bytes([cms[-1] ^ 1])  # the tag is last
    with pytest.raises(DecryptionFailed):
        decrypt_with_any(altered, [(new.key, new.certificate), (old.key, old.certificate)])

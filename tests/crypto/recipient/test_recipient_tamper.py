"""Hostile and damaged input: nothing but the whole, authentic plaintext ever comes out."""

from __future__ import annotations

import os

import pytest
from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.crypto.recipient import (
    MAX_CMS_BYTES,
    DecryptionFailed,
    MalformedCms,
    NotARecipient,
    RecipientEncryptionError,
    UnsupportedScheme,
    decrypt,
    encrypt_for,
)
from tests.crypto.recipient.conftest import KINDS, Party, RecipientCA

DOCUMENT = (
    b"<env:Envelope xmlns:env='urn:cis-exchange:envelope:1'>" + b"x" * 300 + b"</env:Envelope>"
)


def _parts(cms: bytes) -> tuple[bytes, bytes]:
    """The encrypted content and the tag, as they sit in the DER."""
    enveloped = asn1_cms.ContentInfo.load(cms)["content"]
    ciphertext = enveloped["auth_encrypted_content_info"]["encrypted_content"].native
    return ciphertext, enveloped["mac"].native


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def test_flipped_ciphertext_byte_fails(party: Party) -> None:
    cms = encrypt_for(DOCUMENT, [party.certificate])
    ciphertext, _ = _parts(cms)
    start = cms.index(ciphertext)
    for offset in (start, start + len(ciphertext) // 2, start + len(ciphertext) - 1):
        with pytest.raises(DecryptionFailed, match="altered") as caught:
            decrypt(_flip(cms, offset), party.key, party.certificate)
        assert not isinstance(caught.value, MalformedCms)  # it reached the tag check


def test_flipped_tag_fails(party: Party) -> None:
    cms = encrypt_for(DOCUMENT, [party.certificate])
    _, tag = _parts(cms)
    offset = cms.rindex(tag)
    for delta in (0, 15):
        with pytest.raises(DecryptionFailed, match="altered"):
            decrypt(_flip(cms, offset + delta), party.key, party.certificate)


def test_flipped_wrapped_key_fails(party: Party) -> None:
    cms = encrypt_for(DOCUMENT, [party.certificate])
    (info,) = asn1_cms.ContentInfo.load(cms)["content"]["recipient_infos"]
    if info.name == "ktri":
        wrapped = info.chosen["encrypted_key"].native
    else:
        wrapped = info.chosen["recipient_encrypted_keys"][0]["encrypted_key"].native
    with pytest.raises(DecryptionFailed, match="content key"):
        decrypt(_flip(cms, cms.index(wrapped) + 3), party.key, party.certificate)


def test_truncated_fails(party: Party) -> None:
    cms = encrypt_for(DOCUMENT, [party.certificate])
    for length in (len(cms) - 1, len(cms) - 16, len(cms) // 2, 40, 4):
        with pytest.raises(DecryptionFailed):
            decrypt(cms[:length], party.key, party.certificate)


def test_truncated_ciphertext_in_well_formed_der_fails(party: Party) -> None:
    # Shortened content re-encoded as valid DER: only the GCM tag can notice.
    info = asn1_cms.ContentInfo.load(encrypt_for(DOCUMENT, [party.certificate]))
    content = info["content"]["auth_encrypted_content_info"]
    content["encrypted_content"] = content["encrypted_content"].native[:-10]
    with pytest.raises(DecryptionFailed, match="altered") as caught:
        decrypt(info.dump(force=True), party.key, party.certificate)
    assert not isinstance(caught.value, MalformedCms)


def test_wrong_key_with_matching_issuer_and_serial_fails(
    ca: RecipientCA, parties: dict[str, Party]
) -> None:
    # Someone obtained a certificate with our issuer and serial (a CA error, or a reissue) and
    # a sender encrypted to it: the recipient info names us, but our key cannot open it.
    impostor_keys = {
        "ec-p256": parties["other"].key,
        "ec-p384": ec.generate_private_key(ec.SECP384R1()),
        "rsa-3072": rsa.generate_private_key(65537, 2048),  # any other RSA key will do
    }
    for kind in KINDS:
        ours = parties[kind]
        ours_cert = ca.issue(ours.key.public_key(), "ours", 4242)
        impostor_cert = ca.issue(impostor_keys[kind].public_key(), "ours", 4242)
        cms = encrypt_for(DOCUMENT, [impostor_cert])
        with pytest.raises(DecryptionFailed, match="content key") as caught:
            decrypt(cms, ours.key, ours_cert)
        assert not isinstance(caught.value, MalformedCms)


# --- hostile input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"<?xml version='1.0'?><env:Envelope/>",
        b"\x30\x80",
        b"\x30\x0d\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x09\x10\x01\x17",  # OID, no content
        b"\x30\x84\xff\xff\xff\xff\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x09\x10\x01\x17",
        b"\x30\x11\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x09\x10\x01\x17\xa0\x02\x30\x00",
    ],
    ids=["empty", "xml", "indefinite-empty", "no-content", "huge-length", "empty-sequence"],
)
def test_malformed_input_is_refused(payload: bytes, parties: dict[str, Party]) -> None:
    party = parties["ec-p256"]
    with pytest.raises(MalformedCms):
        decrypt(payload, party.key, party.certificate)


def test_trailing_garbage_is_refused(parties: dict[str, Party]) -> None:
    party = parties["ec-p256"]
    cms = encrypt_for(DOCUMENT, [party.certificate])
    with pytest.raises(MalformedCms, match="not well-formed"):
        decrypt(cms + b"\x00", party.key, party.certificate)


def test_oversized_input_is_refused_unread(parties: dict[str, Party]) -> None:
    party = parties["ec-p256"]
    cms = encrypt_for(DOCUMENT, [party.certificate])
    with pytest.raises(MalformedCms, match="MAX_CMS_BYTES"):
        decrypt(cms + bytes(MAX_CMS_BYTES), party.key, party.certificate)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutations_never_leak_anything(parties: dict[str, Party], data: st.DataObject) -> None:
    # Whatever is changed, decrypt either returns the whole original document (a change in a
    # field that carries no meaning for us, e.g. an unrelated recipient) or raises one of our
    # errors: never other plaintext, never a stray library exception.
    party = parties[data.draw(st.sampled_from(["ec-p256", "rsa-3072"]))]
    cms = _fuzz_base(party)
    mutated = bytearray(cms)
    for _ in range(data.draw(st.integers(1, 3))):
        offset = data.draw(st.integers(0, len(mutated) - 1))
        mutated[offset] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        mutated = mutated[: data.draw(st.integers(0, len(mutated)))]
    try:
        result = decrypt(bytes(mutated), party.key, party.certificate)
    except RecipientEncryptionError:
        return
    assert result == DOCUMENT


_FUZZ_BASES: dict[str, bytes] = {}


def _fuzz_base(party: Party) -> bytes:
    if party.name not in _FUZZ_BASES:
        _FUZZ_BASES[party.name] = encrypt_for(DOCUMENT, [party.certificate])
    return _FUZZ_BASES[party.name]


# --- schemes we refuse, built as another implementation would ---------------------------------


def _hand_built(
    party: Party,
    *,
    content_type: str,
    oaep_hash: str | None,
    pkcs1: bool,
    tag_bytes: int = 16,
    auth_attrs: bool = False,
) -> bytes:
    """An RSA-recipient CMS assembled here, independently of encrypt_for, with knobs."""
    parsed = asn1_x509.Certificate.load(party.certificate.public_bytes(serialization.Encoding.DER))
    cek, nonce = os.urandom(32), os.urandom(12)
    public = party.certificate.public_key()
    if pkcs1:
        encrypted_key = public.encrypt(cek, padding.PKCS1v15())
        algorithm = {"algorithm": "rsaes_pkcs1v15"}
    else:
        # SHA-1 only to show that a peer using it is refused.
        digest = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256()}[oaep_hash]  # noqa: S303
        encrypted_key = public.encrypt(cek, padding.OAEP(padding.MGF1(digest), digest, None))
        algorithm = {
            "algorithm": "rsaes_oaep",
            "parameters": {
                "hash_algorithm": {"algorithm": oaep_hash},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": oaep_hash}},
            },
        }
    attributes = None
    aad = None
    if auth_attrs:
        attributes = asn1_cms.CMSAttributes([{"type": "content_type", "values": ["data"]}])
        aad = attributes.dump()  # the SET OF encoding, as RFC 5083 section 2.2 says
    sealed = AESGCM(cek).encrypt(nonce, DOCUMENT, aad)
    ciphertext, tag = sealed[:-16], sealed[-16:][:tag_bytes]
    recipient = asn1_cms.RecipientInfo(
        name="ktri",
        value={
            "version": "v0",
            "rid": {
                "issuer_and_serial_number": {
                    "issuer": parsed.issuer,
                    "serial_number": parsed.serial_number,
                }
            },
            "key_encryption_algorithm": algorithm,
            "encrypted_key": encrypted_key,
        },
    )
    content = {
        "content_type": "data",
        "content_encryption_algorithm": asn1_algos.EncryptionAlgorithm(
            {
                "algorithm": "aes256_gcm" if content_type == "gcm" else "aes256_cbc",
                "parameters": _gcm_params(nonce, tag_bytes)
                if content_type == "gcm"
                else nonce + nonce[:4],
            }
        ),
        "encrypted_content": ciphertext,
    }
    value = {
        "version": "v0",
        "recipient_infos": [recipient],
        "auth_encrypted_content_info": content,
        "mac": tag,
    }
    if attributes is not None:
        value["auth_attrs"] = attributes
    return asn1_cms.ContentInfo(
        {
            "content_type": "authenticated_enveloped_data",
            "content": asn1_cms.AuthEnvelopedData(value),
        }
    ).dump()


def _gcm_params(nonce: bytes, tag_bytes: int):
    from asn1crypto import core

    class GcmParameters(core.Sequence):
        _fields = [("aes_nonce", core.OctetString), ("aes_icvlen", core.Integer)]  # noqa: RUF012

    return GcmParameters({"aes_nonce": nonce, "aes_icvlen": tag_bytes})


def test_an_independently_built_cms_decrypts(parties: dict[str, Party]) -> None:
    party = parties["rsa-3072"]
    cms = _hand_built(party, content_type="gcm", oaep_hash="sha256", pkcs1=False)
    assert decrypt(cms, party.key, party.certificate) == DOCUMENT


def test_authenticated_attributes_are_authenticated(parties: dict[str, Party]) -> None:
    party = parties["rsa-3072"]
    cms = _hand_built(party, content_type="gcm", oaep_hash="sha256", pkcs1=False, auth_attrs=True)
    assert decrypt(cms, party.key, party.certificate) == DOCUMENT
    info = asn1_cms.ContentInfo.load(cms)
    info["content"]["auth_attrs"] = asn1_cms.CMSAttributes(
        [{"type": "content_type", "values": ["signed_data"]}]
    )
    with pytest.raises(DecryptionFailed, match="altered"):
        decrypt(info.dump(force=True), party.key, party.certificate)


@pytest.mark.parametrize(
    ("knobs", "reason"),
    [
        ({"content_type": "gcm", "oaep_hash": None, "pkcs1": True}, "PKCS#1 v1.5"),
        ({"content_type": "gcm", "oaep_hash": "sha1", "pkcs1": False}, "RSA-OAEP with sha1"),
        ({"content_type": "cbc", "oaep_hash": "sha256", "pkcs1": False}, "aes256_cbc"),
        (
            {"content_type": "gcm", "oaep_hash": "sha256", "pkcs1": False, "tag_bytes": 12},
            "tag length is 12",
        ),
    ],
    ids=["pkcs1v15", "oaep-sha1", "cbc", "short-tag"],
)
def test_refused_schemes_say_what_to_use(parties: dict[str, Party], knobs, reason: str) -> None:
    party = parties["rsa-3072"]
    cms = _hand_built(party, **knobs)
    with pytest.raises(UnsupportedScheme, match=reason):
        decrypt(cms, party.key, party.certificate)


def test_a_cms_for_someone_else_is_not_a_recipient_even_with_a_forged_tag(
    parties: dict[str, Party],
) -> None:
    # NotARecipient is decided before any cryptography: it does not depend on the content.
    party = parties["rsa-3072"]
    cms = encrypt_for(DOCUMENT, [party.certificate])
    _, tag = _parts(cms)
    other = parties["other"]
    with pytest.raises(NotARecipient):
        decrypt(_flip(cms, cms.rindex(tag)), other.key, other.certificate)


def test_subject_key_identifier_recipients_are_matched(parties: dict[str, Party]) -> None:
    # Another implementation may name us by subjectKeyIdentifier instead of issuer+serial.
    party = parties["ec-p256"]
    info = asn1_cms.ContentInfo.load(encrypt_for(DOCUMENT, [party.certificate]))
    (recipient,) = info["content"]["recipient_infos"]
    encrypted_key = recipient.chosen["recipient_encrypted_keys"][0]
    parsed = asn1_x509.Certificate.load(party.certificate.public_bytes(serialization.Encoding.DER))
    encrypted_key["rid"] = asn1_cms.KeyAgreementRecipientIdentifier(
        name="r_key_id", value={"subject_key_identifier": parsed.key_identifier}
    )
    cms = info.dump(force=True)
    assert decrypt(cms, party.key, party.certificate) == DOCUMENT
    with pytest.raises(NotARecipient, match="subjectKeyIdentifier"):
        decrypt(cms, parties["other"].key, parties["other"].certificate)


def _readdress(cms: bytes, to: Party) -> bytes:
    """The CMS with its only recipient info renamed to ``to`` (issuer and serial)."""
    info = asn1_cms.ContentInfo.load(cms)
    (recipient,) = info["content"]["recipient_infos"]
    parsed = asn1_x509.Certificate.load(to.certificate.public_bytes(serialization.Encoding.DER))
    name = {"issuer": parsed.issuer, "serial_number": parsed.serial_number}
    if recipient.name == "ktri":
        recipient.chosen["rid"] = asn1_cms.RecipientIdentifier(
            name="issuer_and_serial_number", value=name
        )
    else:
        recipient.chosen["recipient_encrypted_keys"][0]["rid"] = (
            asn1_cms.KeyAgreementRecipientIdentifier(name="issuer_and_serial_number", value=name)
        )
    return info.dump(force=True)


@pytest.mark.parametrize(("sent_to", "named"), [("rsa-3072", "ec-p256"), ("ec-p256", "rsa-3072")])
def test_a_recipient_info_of_the_wrong_kind_for_our_key_is_refused(
    parties: dict[str, Party], sent_to: str, named: str
) -> None:
    # A peer's error or probe, never our configuration's: it must not surface as one.
    ours = parties[named]
    cms = _readdress(encrypt_for(DOCUMENT, [parties[sent_to].certificate]), ours)
    with pytest.raises(UnsupportedScheme, match="its key is not"):
        decrypt(cms, ours.key, ours.certificate)


def test_names_from_the_peer_cannot_forge_log_lines(parties: dict[str, Party]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes as crypto_hashes
    from cryptography.x509.oid import NameOID

    key, other = parties["ec-p256"].key, parties["other"]
    # A sender's CMS names a recipient whose issuer holds a line break and a fake log entry,
    # or is very long.
    for attributes, expected in (
        ([x509.NameAttribute(NameOID.COMMON_NAME, "evil\nINFO accepted document 42")], "evil?INFO"),
        ([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "x" * 60)] * 8, "xxx…"),
    ):
        issuer = x509.Name(attributes)
        stranger = (
            x509.CertificateBuilder()
            .subject_name(issuer)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(5)
            .not_valid_before(parties["ec-p256"].certificate.not_valid_before_utc)
            .not_valid_after(parties["ec-p256"].certificate.not_valid_after_utc)
            .sign(key, crypto_hashes.SHA256())
        )
        with pytest.raises(NotARecipient) as caught:
            decrypt(encrypt_for(DOCUMENT, [stranger]), other.key, other.certificate)
        message = str(caught.value)
        assert "\n" not in message
        assert expected in message
        assert len(message) < 500

"""Hostile documents that must not verify: content in the parts of a signature that nothing
signs, and a signature made with a certificate of another role."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from gateway.crypto import xades
from gateway.crypto.keys.keystore import KeyRole, SigningKey
from gateway.crypto.report import Indication, SubIndication
from gateway.crypto.xades import sign_document, verify_document
from gateway.render.rendition import _signatures
from tests.crypto.helpers import NOW, RECIPIENT, SENDER, VERIFY_AT, CryptoPKI, envelope
from tests.crypto.test_timestamps_bt import make_tsa

DS = f"{{{xades.DS_NS}}}"
XADES = f"{{{xades.XADES_NS}}}"
NS = {"env": xades.ENV_NS, "ds": xades.DS_NS, "xades": xades.XADES_NS}


def _forged_signer(holder: etree._Element, other_der: bytes) -> None:
    """What a reader searching the signature for its certificate and signing time finds first:
    another body's certificate, its CertDigest, and a signing time of our choosing."""
    etree.SubElement(holder, f"{DS}X509Certificate").text = base64.b64encode(other_der).decode()
    digest = etree.SubElement(holder, f"{XADES}CertDigest")
    etree.SubElement(digest, f"{DS}DigestValue").text = base64.b64encode(
        hashlib.sha256(other_der).digest()
    ).decode()
    etree.SubElement(holder, f"{XADES}SigningTime").text = "2020-01-01T00:00:00Z"


def _other_der(test_pki: CryptoPKI) -> bytes:
    return test_pki.store(RECIPIENT).seal().certificate.public_bytes(Encoding.DER)


def test_element_inside_the_seals_signature_value_is_refused(test_pki: CryptoPKI) -> None:
    # Nothing signs the seal's SignatureValue (the seal cannot sign itself): whoever relays the
    # document can put elements in it, and the signature still verifies (its text is read).
    store = test_pki.store()
    root = etree.fromstring(sign_document(envelope(), store.official(), store.seal(), NOW))
    value = root.find("env:Signatures/env:Seal/ds:Signature/ds:SignatureValue", namespaces=NS)
    _forged_signer(value, _other_der(test_pki))
    verified = verify_document(etree.tostring(root), test_pki.trust(), VERIFY_AT)
    if verified.passed:  # what the rendition (the node's sealed copy) then says of the seal
        shown = {s.role: s for s in _signatures(verified.tree)}
        assert shown["Seal"].body_id == SENDER, shown["Seal"]
    assert verified.report.indication is Indication.TOTAL_FAILED
    assert verified.report.signatures[0].sub_indication is SubIndication.FORMAT_FAILURE
    assert verified.tree is None


def test_element_inside_the_officials_signature_value_is_refused(test_pki: CryptoPKI) -> None:
    # The sender itself puts another official's certificate where readers look first, then
    # seals: the verifier checks the official who signed, the reader shows the other one.
    store = test_pki.store()
    root = xades.parse_untrusted(envelope())
    signatures = etree.SubElement(root, xades.SIGNATURES)
    official = xades._sign_role(root, signatures, xades._OFFICIAL, store.official(), NOW)
    _forged_signer(
        official.find("ds:SignatureValue", namespaces=NS),
        test_pki.store(RECIPIENT).official().certificate.public_bytes(Encoding.DER),
    )
    xades._sign_role(root, signatures, xades._SEAL, store.seal(), NOW)
    verified = verify_document(etree.tostring(root), test_pki.trust(), VERIFY_AT)
    official_report = {s.role: s for s in verified.report.signatures}["official"]
    if verified.passed:  # the rendition then names an official of another body
        shown = {s.role: s for s in _signatures(verified.tree)}
        assert shown["Official"].subject == official_report.signer_subject, shown["Official"]
    assert official_report.sub_indication is SubIndication.FORMAT_FAILURE, verified.report.summary()
    assert verified.tree is None


def test_element_inside_the_seals_timestamp_is_refused(test_pki: CryptoPKI) -> None:
    # With a valid B-T timestamp the SignatureValue is covered by it, but SignatureTimeStamp
    # itself is read only for its token: other elements in it are covered by nothing.
    store = test_pki.store()
    tsa = make_tsa(test_pki.pki.ca, now=NOW, at=NOW + timedelta(seconds=20))
    stamped = sign_document(envelope(), store.official(), store.seal(), NOW, timestamper=tsa)
    root = etree.fromstring(stamped)
    stamp = root.find(
        "env:Signatures/env:Seal/ds:Signature/ds:Object/xades:QualifyingProperties/"
        "xades:UnsignedProperties/xades:UnsignedSignatureProperties/xades:SignatureTimeStamp",
        namespaces=NS,
    )
    _forged_signer(stamp, _other_der(test_pki))
    verified = verify_document(etree.tostring(root), test_pki.trust(), VERIFY_AT)
    assert verified.report.signatures[0].sub_indication is SubIndication.FORMAT_FAILURE
    assert verified.tree is None


def test_text_inside_the_seals_signature_is_refused(test_pki: CryptoPKI) -> None:
    store = test_pki.store()
    root = etree.fromstring(sign_document(envelope(), store.official(), store.seal(), NOW))
    signature = root.find("env:Signatures/env:Seal/ds:Signature", namespaces=NS)
    signature.find("ds:KeyInfo", namespaces=NS).tail = "Подписано: KZ-MJ"
    verified = verify_document(etree.tostring(root), test_pki.trust(), VERIFY_AT)
    assert verified.report.signatures[0].sub_indication is SubIndication.FORMAT_FAILURE


def test_tls_certificate_cannot_make_the_seal(test_pki: CryptoPKI) -> None:
    # The body's TLS key (a file by default, even when seal and officials live on a token)
    # has digitalSignature and no title: it must not make the seal ("a certificate made for
    # another role": SIG_CONSTRAINTS_FAILURE, docs/keys-and-signatures.md).
    tls = test_pki.store().tls()
    as_seal = SigningKey(
        role=KeyRole.SEAL,
        name="",
        certificate=tls.certificate,
        chain=tls.chain,
        private_key=tls.private_key,
        location="tls-as-seal",
    )
    doc = xades._sign_unchecked(xades.parse_untrusted(envelope()), None, as_seal, NOW)
    verified = verify_document(
        doc, test_pki.trust(), VERIFY_AT, expected_sender=SENDER, require_official=False
    )
    assert not verified.passed, verified.report.summary()
    seal = verified.report.signatures[0]
    assert seal.sub_indication is SubIndication.SIG_CONSTRAINTS_FAILURE, seal.summary()


def test_rendition_reads_the_signer_where_it_is_signed(test_pki: CryptoPKI) -> None:
    # A document stored before the verifier refused such content (or a file rendered without
    # verification): the rendition names the certificate and time the signature signed.
    store = test_pki.store()
    root = etree.fromstring(sign_document(envelope(), store.official(), store.seal(), NOW))
    value = root.find("env:Signatures/env:Seal/ds:Signature/ds:SignatureValue", namespaces=NS)
    _forged_signer(value, _other_der(test_pki))
    seal = {s.role: s for s in _signatures(root)}["Seal"]
    assert seal.body_id == SENDER
    assert (
        seal.certificate_sha256
        == hashlib.sha256(store.seal().certificate.public_bytes(Encoding.DER)).hexdigest()
    )
    assert seal.signing_time.startswith("23.11.2026")

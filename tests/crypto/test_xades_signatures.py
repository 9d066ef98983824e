"""Signing and verifying envelopes: the round trip, xmlsec1, and the ways a signature must fail."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from lxml import etree

from gateway.crypto import xades
from gateway.crypto.algorithms import DigestAlgorithm, SignatureMethod
from gateway.crypto.certificates import CertificateProfile
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.keys.keystore import WrongRole
from gateway.crypto.report import Indication, RevocationStatus, SignatureInvalid, SubIndication
from gateway.crypto.trust import TrustList
from gateway.crypto.xades import SigningError, sign_document, verify_document
from gateway.model.problems import DocumentRejected
from tests.crypto.helpers import (
    NOW,
    RECIPIENT,
    SENDER,
    VERIFY_AT,
    CryptoPKI,
    envelope,
    xmlsec1_verify,
)

NS = {"env": xades.ENV_NS, "ds": xades.DS_NS}


@pytest.fixture(scope="module")
def signed(test_pki: CryptoPKI) -> bytes:
    store = test_pki.store()
    return sign_document(envelope(), store.official(), store.seal(), NOW)


def by_role(verified: xades.VerifiedDocument) -> dict[str, object]:
    return {s.role: s for s in verified.report.signatures}


def test_round_trip_passes_and_returns_only_signed_content(
    signed: bytes, test_pki: CryptoPKI
) -> None:
    verified = verify_document(signed, test_pki.trust(), VERIFY_AT, expected_sender=SENDER)
    assert verified.passed, verified.report.summary()
    roles = by_role(verified)
    assert set(roles) == {"official", "seal"}
    seal = verified.report.signatures[0]
    assert seal.role == "seal"
    assert seal.signer_body_id == SENDER
    assert seal.claimed_signing_time == NOW
    assert seal.revocation is RevocationStatus.GOOD
    assert seal.chain[-1].subject == test_pki.pki.ca.certificate.subject.rfc4514_string()
    assert seal.signature_algorithm.endswith("ecdsa-sha256")
    official = roles["official"]
    assert "Иванов" in official.signer_subject  # type: ignore[attr-defined]
    # The tree handed back is the verified tree; signed_bytes is what the seal covers: the
    # envelope in exclusive C14N without the seal's own signature.
    tree = verified.tree
    assert tree is not None and tree.tag == xades.ENVELOPE
    assert tree.findtext("env:Header/env:Sender", namespaces=NS) == SENDER
    assert tree.find("env:Signatures/env:Official/ds:Signature", namespaces=NS) is not None
    sealed = etree.fromstring(verified.signed_bytes)
    assert sealed.tag == xades.ENVELOPE
    assert sealed.find("env:Signatures/env:Seal/ds:Signature", namespaces=NS) is None
    assert sealed.find("env:Signatures/env:Official/ds:Signature", namespaces=NS) is not None
    verified.report.raise_for_failure()


def test_layout_matches_the_architecture(signed: bytes) -> None:
    root = etree.fromstring(signed)
    assert [c.tag.split("}")[1] for c in root] == ["Header", "Body", "Signatures"]
    official = root.find("env:Signatures/env:Official/ds:Signature", namespaces=NS)
    seal = root.find("env:Signatures/env:Seal/ds:Signature", namespaces=NS)
    uris = [r.get("URI") for r in official.findall("ds:SignedInfo/ds:Reference", namespaces=NS)]
    assert uris[:2] == ["#header", "#body"]
    seal_uris = [r.get("URI") for r in seal.findall("ds:SignedInfo/ds:Reference", namespaces=NS)]
    assert seal_uris[0] == ""
    # The profile: exclusive C14N for SignedInfo, a transform named on every reference.
    exc = "http://www.w3.org/2001/10/xml-exc-c14n#"
    enveloped = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
    for signature, first in ((official, [exc]), (seal, [enveloped, exc])):
        c14n = signature.find("ds:SignedInfo/ds:CanonicalizationMethod", namespaces=NS)
        assert c14n.get("Algorithm") == exc
        transforms = [
            [t.get("Algorithm") for t in r.findall("ds:Transforms/ds:Transform", namespaces=NS)]
            for r in signature.findall("ds:SignedInfo/ds:Reference", namespaces=NS)
        ]
        assert transforms[0] == first
        assert all(t == [exc] for t in transforms[len(transforms) - 2 :])
    signing_time = seal.findtext(".//{http://uri.etsi.org/01903/v1.3.2#}SigningTime")
    assert signing_time == "2026-11-23T10:00:00Z"


def test_seal_only_document(test_pki: CryptoPKI) -> None:
    store = test_pki.store()
    doc = sign_document(envelope(), None, store.seal(), NOW)
    assert verify_document(doc, test_pki.trust(), VERIFY_AT, require_official=False).passed
    strict = verify_document(doc, test_pki.trust(), VERIFY_AT)
    assert not strict.passed
    assert by_role(strict)["official"].sub_indication is SubIndication.FORMAT_FAILURE  # type: ignore[attr-defined]
    assert strict.tree is None and strict.signed_bytes == b""


@pytest.mark.parametrize("index", [1, 2])
def test_xmlsec1_verifies_each_signature(
    signed: bytes, test_pki: CryptoPKI, tmp_path: Path, index: int
) -> None:
    doc = tmp_path / "signed.xml"
    doc.write_bytes(signed)
    result = xmlsec1_verify(doc, test_pki.pki.ca_file, index)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout + result.stderr


def test_xmlsec1_rejects_a_tampered_body(
    signed: bytes, test_pki: CryptoPKI, tmp_path: Path
) -> None:
    doc = tmp_path / "tampered.xml"
    doc.write_bytes(signed.replace("Запрос".encode(), "Подлог".encode()))
    result = xmlsec1_verify(doc, test_pki.pki.ca_file, 1)
    assert result.returncode != 0


# --- tampering ----------------------------------------------------------------------------------


def _edit(signed: bytes, change) -> bytes:  # type: ignore[no-untyped-def]
    root = etree.fromstring(signed)
    change(root)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def _set_request_text(root: etree._Element) -> None:
    root.find("env:Body", namespaces=NS)[0].text = "Подлог"


def _set_request_attribute(root: etree._Element) -> None:
    root.find("env:Body", namespaces=NS)[0].set("lang", "kk")


def _change_sender(root: etree._Element) -> None:
    root.find("env:Header/env:Sender", namespaces=NS).text = "KZ-MJ"


def _add_header_child(root: etree._Element) -> None:
    etree.SubElement(
        root.find("env:Header", namespaces=NS), f"{{{xades.ENV_NS}}}InReplyTo"
    ).text = "x"


@pytest.mark.parametrize(
    "change",
    [_set_request_text, _set_request_attribute, _change_sender, _add_header_child],
    ids=["text", "attribute", "sender", "added-element"],
)
def test_changed_content_fails_both_signatures_with_hash_failure(
    signed: bytes, test_pki: CryptoPKI, change
) -> None:  # type: ignore[no-untyped-def]
    verified = verify_document(_edit(signed, change), test_pki.trust(), VERIFY_AT)
    assert verified.report.indication is Indication.TOTAL_FAILED
    for report in verified.report.signatures:
        assert report.sub_indication is SubIndication.HASH_FAILURE, report.summary()
    assert verified.tree is None


def _duplicate_body(root: etree._Element) -> None:
    body = root.find("env:Body", namespaces=NS)
    root.insert(2, copy.deepcopy(body))


def _wrap_original_body(root: etree._Element) -> None:
    # XSW: the signed Body moves into a wrapper; a forged Body (no Id) takes its place.
    body = root.find("env:Body", namespaces=NS)
    wrapper = etree.Element(f"{{{xades.ENV_NS}}}Extension")
    root.replace(body, wrapper)
    wrapper.append(body)
    forged = etree.Element(f"{{{xades.ENV_NS}}}Body")
    etree.SubElement(forged, "{urn:cis-exchange:cis-enforcement:1}Request").text = "Подлог"
    root.insert(1, forged)


def _body_into_seal_object(root: etree._Element) -> None:
    # XSW: the signed Body hides in a ds:Object of the seal; a forged Body replaces it.
    body = root.find("env:Body", namespaces=NS)
    seal = root.find("env:Signatures/env:Seal/ds:Signature", namespaces=NS)
    holder = etree.SubElement(seal, f"{{{xades.DS_NS}}}Object")
    forged = copy.deepcopy(body)
    del forged.attrib["Id"]
    forged[0].text = "Подлог"
    root.replace(body, forged)
    holder.append(body)


def _second_signatures(root: etree._Element) -> None:
    root.append(copy.deepcopy(root.find("env:Signatures", namespaces=NS)))


def _signature_in_body(root: etree._Element) -> None:
    official = root.find("env:Signatures/env:Official/ds:Signature", namespaces=NS)
    root.find("env:Body", namespaces=NS)[0].append(copy.deepcopy(official))


@pytest.mark.parametrize(
    "change",
    [
        _duplicate_body,
        _wrap_original_body,
        _body_into_seal_object,
        _second_signatures,
        _signature_in_body,
    ],
    ids=[
        "duplicated-body",
        "wrapped-body",
        "body-in-seal-object",
        "two-signatures-blocks",
        "signature-in-body",
    ],
)
def test_signature_wrapping_is_refused(signed: bytes, test_pki: CryptoPKI, change) -> None:  # type: ignore[no-untyped-def]
    verified = verify_document(_edit(signed, change), test_pki.trust(), VERIFY_AT)
    assert not verified.passed
    assert verified.report.indication is Indication.TOTAL_FAILED
    assert verified.report.first_failure.sub_indication in {  # type: ignore[union-attr]
        SubIndication.FORMAT_FAILURE,
        SubIndication.HASH_FAILURE,
    }
    assert verified.tree is None and verified.signed_bytes == b""


def test_removed_official_signature(signed: bytes, test_pki: CryptoPKI) -> None:
    def remove(root: etree._Element) -> None:
        signatures = root.find("env:Signatures", namespaces=NS)
        signatures.remove(signatures.find("env:Official", namespaces=NS))

    verified = verify_document(_edit(signed, remove), test_pki.trust(), VERIFY_AT)
    roles = by_role(verified)
    assert roles["official"].sub_indication is SubIndication.FORMAT_FAILURE  # type: ignore[attr-defined]
    # The seal covered the official's signature: removing it breaks the seal too.
    assert roles["seal"].sub_indication is SubIndication.HASH_FAILURE  # type: ignore[attr-defined]


def test_removed_seal_signature(signed: bytes, test_pki: CryptoPKI) -> None:
    def remove(root: etree._Element) -> None:
        seal = root.find("env:Signatures/env:Seal", namespaces=NS)
        seal.remove(seal[0])

    verified = verify_document(_edit(signed, remove), test_pki.trust(), VERIFY_AT)
    assert verified.report.indication is Indication.TOTAL_FAILED
    assert verified.report.signatures[0].sub_indication is SubIndication.FORMAT_FAILURE


def test_swapped_certificate(signed: bytes, test_pki: CryptoPKI) -> None:
    other = test_pki.store(RECIPIENT).seal().certificate
    from base64 import b64encode

    from cryptography.hazmat.primitives.serialization import Encoding

    def swap(root: etree._Element) -> None:
        cert = root.find(
            "env:Signatures/env:Seal/ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate",
            namespaces=NS,
        )
        cert.text = b64encode(other.public_bytes(Encoding.DER)).decode()

    verified = verify_document(_edit(signed, swap), test_pki.trust(), VERIFY_AT)
    seal = verified.report.signatures[0]
    assert seal.indication is Indication.TOTAL_FAILED
    assert seal.sub_indication in {SubIndication.HASH_FAILURE, SubIndication.SIG_CRYPTO_FAILURE}


def test_forged_signature_value(signed: bytes, test_pki: CryptoPKI) -> None:
    def flip(root: etree._Element) -> None:
        value = root.find("env:Signatures/env:Seal/ds:Signature/ds:SignatureValue", namespaces=NS)
        text = value.text.strip()
        value.text = ("A" if text[0] != "A" else "B") + text[1:]

    seal = verify_document(_edit(signed, flip), test_pki.trust(), VERIFY_AT).report.signatures[0]
    assert seal.sub_indication is SubIndication.SIG_CRYPTO_FAILURE


def test_not_xml_and_doctype(test_pki: CryptoPKI, signed: bytes) -> None:
    assert (
        verify_document(b"<nope", test_pki.trust(), VERIFY_AT).report.signatures[0].sub_indication
        is SubIndication.FORMAT_FAILURE
    )
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + signed.split(b"?>", 1)[1]
    report = verify_document(bomb, test_pki.trust(), VERIFY_AT).report
    assert report.signatures[0].sub_indication is SubIndication.FORMAT_FAILURE


# --- who signed, and when ------------------------------------------------------------------------


def test_signer_of_another_body(test_pki: CryptoPKI) -> None:
    kz = test_pki.store(RECIPIENT)
    with pytest.raises(WrongRole, match="Sender"):
        sign_document(envelope(), kz.official(), kz.seal(), NOW)
    root = xades.parse_untrusted(envelope())
    forged = xades._sign_unchecked(root, kz.official(), kz.seal(), NOW)
    verified = verify_document(forged, test_pki.trust(), VERIFY_AT)
    assert verified.report.indication is Indication.TOTAL_FAILED
    for report in verified.report.signatures:
        assert report.sub_indication is SubIndication.SIG_CONSTRAINTS_FAILURE
        assert report.signer_body_id == RECIPIENT


def test_expected_sender_mismatch(signed: bytes, test_pki: CryptoPKI) -> None:
    verified = verify_document(signed, test_pki.trust(), VERIFY_AT, expected_sender=RECIPIENT)
    assert verified.report.signatures[0].sub_indication is SubIndication.SIG_CONSTRAINTS_FAILURE


def _sign_with_seal(test_pki: CryptoPKI, seal, at) -> bytes:  # type: ignore[no-untyped-def]
    return xades._sign_unchecked(xades.parse_untrusted(envelope()), None, seal, at)


def test_expired_certificate(test_pki: CryptoPKI) -> None:
    seal = test_pki.reissued(
        test_pki.store().seal(),
        not_before=NOW - timedelta(days=400),
        not_after=NOW - timedelta(days=30),
    )
    with pytest.raises(WrongRole, match="renew"):
        sign_document(envelope(), None, seal, NOW)
    doc = _sign_with_seal(test_pki, seal, NOW)
    report = verify_document(doc, test_pki.trust(), VERIFY_AT, require_official=False).report
    assert report.signatures[0].indication is Indication.TOTAL_FAILED
    assert report.signatures[0].sub_indication is SubIndication.EXPIRED


def test_expired_since_signing_without_timestamp(test_pki: CryptoPKI) -> None:
    # A CA old enough to have been valid when the document claims to have been signed.
    old_ca = DemoCA.create(now=NOW - timedelta(days=500))
    current = test_pki.store().seal()
    profile = CertificateProfile(role="seal", body_id=SENDER, demo=True)
    cert = old_ca.issue(
        current.private_key.public_key(),
        profile,
        now=NOW,
        not_before=NOW - timedelta(days=400),
        not_after=NOW - timedelta(days=30),
    )
    seal = replace(current, certificate=cert, chain=(old_ca.certificate,))
    doc = _sign_with_seal(test_pki, seal, NOW - timedelta(days=60))
    trust = TrustList([old_ca.certificate], [old_ca.crl(now=NOW)])
    report = verify_document(doc, trust, VERIFY_AT, require_official=False).report
    assert report.signatures[0].indication is Indication.INDETERMINATE
    assert report.signatures[0].sub_indication is SubIndication.OUT_OF_BOUNDS_NO_POE
    # Judged at a time when the certificate was still valid (an archive re-check), it passes.
    then = NOW - timedelta(days=59)
    old_trust = TrustList([old_ca.certificate], [old_ca.crl(now=then)])
    old = verify_document(doc, old_trust, then, require_official=False)
    assert old.passed, old.report.summary()


def test_not_yet_valid_certificate(test_pki: CryptoPKI) -> None:
    seal = test_pki.reissued(
        test_pki.store().seal(),
        not_before=NOW + timedelta(days=1),
        not_after=NOW + timedelta(days=400),
    )
    doc = _sign_with_seal(test_pki, seal, NOW)
    report = verify_document(doc, test_pki.trust(), VERIFY_AT, require_official=False).report
    assert report.signatures[0].sub_indication is SubIndication.NOT_YET_VALID


def test_signing_time_in_the_future(test_pki: CryptoPKI) -> None:
    doc = _sign_with_seal(test_pki, test_pki.store().seal(), NOW + timedelta(days=1))
    report = verify_document(doc, test_pki.trust(), VERIFY_AT, require_official=False).report
    assert report.signatures[0].sub_indication is SubIndication.SIG_CONSTRAINTS_FAILURE


def _trust_revoking(test_pki: CryptoPKI, cert, revoked_at) -> TrustList:  # type: ignore[no-untyped-def]
    ca = DemoCA(key=test_pki.pki.ca.key, certificate=test_pki.pki.ca.certificate)
    ca.revoke(cert, at=revoked_at)
    return TrustList([ca.certificate], [ca.crl(now=VERIFY_AT)])


def test_revoked_before_signing(test_pki: CryptoPKI, signed: bytes) -> None:
    seal = test_pki.store().seal()
    trust = _trust_revoking(test_pki, seal.certificate, NOW - timedelta(hours=1))
    report = verify_document(signed, trust, VERIFY_AT).report
    assert report.signatures[0].indication is Indication.TOTAL_FAILED
    assert report.signatures[0].sub_indication is SubIndication.REVOKED
    assert report.signatures[0].revocation is RevocationStatus.REVOKED
    assert report.signatures[1].passed  # the official's certificate was not revoked
    with pytest.raises(SignatureInvalid) as caught:
        report.raise_for_failure()
    assert caught.value.sub_indication is SubIndication.REVOKED


def test_revoked_after_claimed_signing_time(test_pki: CryptoPKI) -> None:
    seal = test_pki.store().seal()
    doc = _sign_with_seal(test_pki, seal, NOW)
    trust = _trust_revoking(test_pki, seal.certificate, NOW + timedelta(seconds=30))
    report = verify_document(doc, trust, VERIFY_AT, require_official=False).report
    assert report.signatures[0].indication is Indication.INDETERMINATE
    assert report.signatures[0].sub_indication is SubIndication.REVOKED_NO_POE


def test_no_crl_fails_closed(test_pki: CryptoPKI, signed: bytes) -> None:
    report = verify_document(signed, test_pki.trust(with_crl=False), VERIFY_AT).report
    assert report.indication is Indication.INDETERMINATE
    assert report.signatures[0].sub_indication is SubIndication.TRY_LATER
    stale = test_pki.trust(at=NOW - timedelta(days=30))  # its nextUpdate is long past
    assert (
        verify_document(signed, stale, VERIFY_AT).report.signatures[0].sub_indication
        is SubIndication.TRY_LATER
    )
    lax = TrustList([test_pki.pki.ca.certificate], require_revocation=False)
    verified = verify_document(signed, lax, VERIFY_AT)
    assert verified.passed
    assert verified.report.signatures[0].revocation is RevocationStatus.NOT_CHECKED


def test_untrusted_ca(signed: bytes) -> None:
    stranger = DemoCA.create(now=NOW)
    trust = TrustList([stranger.certificate], [stranger.crl(now=NOW)])
    report = verify_document(signed, trust, VERIFY_AT).report
    assert report.indication is Indication.INDETERMINATE
    assert report.signatures[0].sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND


def _seal_with(test_pki: CryptoPKI, method: SignatureMethod, digest: DigestAlgorithm) -> bytes:
    """A seal-only document made with the given algorithms (what a careless peer might send)."""
    seal = test_pki.store().seal()
    root = xades.parse_untrusted(envelope())
    signatures = etree.SubElement(root, xades.SIGNATURES)
    xades._sign_role(root, signatures, xades._SEAL, seal, NOW, method=method, digest=digest)
    return etree.tostring(root)


def test_sha1_signature_is_refused(test_pki: CryptoPKI) -> None:
    doc = _seal_with(test_pki, SignatureMethod.ECDSA_SHA1, DigestAlgorithm.SHA1)
    assert b"sha1" in doc
    report = verify_document(doc, test_pki.trust(), VERIFY_AT, require_official=False).report
    assert report.signatures[0].indication is Indication.INDETERMINATE
    assert report.signatures[0].sub_indication is SubIndication.CRYPTO_CONSTRAINTS_FAILURE
    assert "SHA-1" in report.signatures[0].message


# --- what sign_document refuses -----------------------------------------------------------------


def test_sign_refuses_wrong_roles_and_bad_envelopes(test_pki: CryptoPKI, signed: bytes) -> None:
    store = test_pki.store()
    with pytest.raises(WrongRole, match="official"):
        sign_document(envelope(), store.seal(), store.seal(), NOW)
    with pytest.raises(WrongRole, match="seal"):
        sign_document(envelope(), store.official(), store.official(), NOW)
    with pytest.raises(SigningError) as caught:
        sign_document(signed, store.official(), store.seal(), NOW)
    assert caught.value.code == "SIGN_ALREADY_SIGNED"
    with pytest.raises(SigningError) as caught:
        sign_document(envelope().replace(b'Id="body"', b'Id="b"'), None, store.seal(), NOW)
    assert caught.value.code == "SIGN_LAYOUT"
    with pytest.raises(SigningError):
        sign_document(b"<x/>", None, store.seal(), NOW)


def test_ca_not_assigned_to_the_body(signed: bytes, test_pki: CryptoPKI) -> None:
    ca = test_pki.pki.ca
    assigned = TrustList(
        [ca.certificate], [ca.crl(now=NOW)], body_anchors={SENDER: [ca.certificate]}
    )
    assert verify_document(signed, assigned, VERIFY_AT).passed
    elsewhere = TrustList(
        [ca.certificate], [ca.crl(now=NOW)], body_anchors={RECIPIENT: [ca.certificate]}
    )
    report = verify_document(signed, elsewhere, VERIFY_AT).report
    assert report.indication is Indication.INDETERMINATE
    assert report.signatures[0].sub_indication is SubIndication.CHAIN_CONSTRAINTS_FAILURE


# --- the profile: exactly one shape is accepted -----------------------------------------------

EXC = "http://www.w3.org/2001/10/xml-exc-c14n#"
INCLUSIVE = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"


def _signed_info(root: etree._Element, role: str) -> etree._Element:
    return root.find(f"env:Signatures/env:{role}/ds:Signature/ds:SignedInfo", namespaces=NS)


def _references(root: etree._Element, role: str) -> list[etree._Element]:
    return _signed_info(root, role).findall("ds:Reference", namespaces=NS)


def _inclusive_c14n(root: etree._Element) -> None:
    _signed_info(root, "Seal")[0].set("Algorithm", INCLUSIVE)


def _transform_missing_on_signed_properties(root: etree._Element) -> None:
    transforms = _references(root, "Seal")[1][0]
    transforms.remove(transforms[0])


def _enveloped_transform_missing(root: etree._Element) -> None:
    transforms = _references(root, "Seal")[0][0]
    transforms.remove(transforms[0])


def _xpath_transform_added(root: etree._Element) -> None:
    transforms = _references(root, "Official")[0][0]
    etree.SubElement(
        transforms,
        f"{{{xades.DS_NS}}}Transform",
        Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116",
    )


def _inclusive_namespaces_added(root: etree._Element) -> None:
    transform = _references(root, "Official")[1][0][0]
    etree.SubElement(transform, f"{{{EXC}}}InclusiveNamespaces", PrefixList="env")


def _references_swapped(root: etree._Element) -> None:
    header, body = _references(root, "Official")[:2]
    header.addprevious(body)
    assert _references(root, "Official")[0] is body


def _extra_reference(root: etree._Element) -> None:
    signed_info = _signed_info(root, "Official")
    signed_info.append(copy.deepcopy(signed_info[2]))


def _official_over_the_whole_envelope(root: etree._Element) -> None:
    _references(root, "Official")[1].set("URI", "")


def _key_value_added(root: etree._Element) -> None:
    key_info = root.find("env:Signatures/env:Seal/ds:Signature/ds:KeyInfo", namespaces=NS)
    etree.SubElement(key_info, f"{{{xades.DS_NS}}}KeyValue")


def _type_dropped_from_signed_properties(root: etree._Element) -> None:
    del _references(root, "Seal")[1].attrib["Type"]


@pytest.mark.parametrize(
    "change",
    [
        _inclusive_c14n,
        _transform_missing_on_signed_properties,
        _enveloped_transform_missing,
        _xpath_transform_added,
        _inclusive_namespaces_added,
        _references_swapped,
        _extra_reference,
        _official_over_the_whole_envelope,
        _key_value_added,
        _type_dropped_from_signed_properties,
    ],
    ids=[
        "inclusive-c14n",
        "no-transform-on-signed-properties",
        "no-enveloped-transform",
        "xpath-transform",
        "inclusive-namespaces",
        "references-swapped",
        "extra-reference",
        "official-over-envelope",
        "key-value",
        "signed-properties-type",
    ],
)
def test_any_other_shape_is_a_format_failure(signed: bytes, test_pki: CryptoPKI, change) -> None:  # type: ignore[no-untyped-def]
    edited = _edit(signed, change)
    roles = by_role(verify_document(edited, test_pki.trust(), VERIFY_AT))
    # The edited signature is refused for its shape. An edit of the official also breaks the
    # seal's digest over the envelope (HASH_FAILURE there); a repeated Id is refused for the
    # whole envelope before either signature is read (the seal's report then says so).
    official_edit = "Official" in change.__code__.co_consts
    report = roles["official" if official_edit and "official" in roles else "seal"]
    assert report.sub_indication is SubIndication.FORMAT_FAILURE, report.summary()  # type: ignore[attr-defined]


def test_comments_and_processing_instructions_are_refused(
    signed: bytes, test_pki: CryptoPKI
) -> None:
    # Exclusive C14N without comments ignores a comment in signed text: the signatures alone
    # would pass it, so verify_envelope refuses it (whatever the parser does).
    commented = signed.replace("Запрос".encode(), "За<!-- x -->прос".encode())
    root = etree.fromstring(commented)
    assert len(list(root.iter(etree.Comment))) == 1
    report = xades.verify_envelope(root, test_pki.trust(), VERIFY_AT).report
    assert report.signatures[0].sub_indication is SubIndication.FORMAT_FAILURE
    assert "comment" in report.signatures[0].message
    trailing = etree.fromstring(signed + b"<?later pi?>")
    report = xades.verify_envelope(trailing, test_pki.trust(), VERIFY_AT).report
    assert report.signatures[0].sub_indication is SubIndication.FORMAT_FAILURE
    store = test_pki.store()
    # The byte API parses with the hardened parser, which refuses the comment first …
    with pytest.raises(DocumentRejected) as parsed:
        sign_document(envelope(text="a<!-- b -->c"), None, store.seal(), NOW)
    assert parsed.value.problems[0].code == "XML_COMMENT"
    # … and a tree built some other way is refused by the signer itself.
    with pytest.raises(SigningError) as caught:
        xades.sign_envelope(
            etree.fromstring(envelope(text="a<!-- b -->c")), None, store.seal(), NOW
        )
    assert caught.value.code == "SIGN_COMMENT"


def test_verify_envelope_hands_back_the_tree_it_was_given(
    signed: bytes, test_pki: CryptoPKI
) -> None:
    root = xades.parse_untrusted(signed)
    before = etree.tostring(root)
    verified = xades.verify_envelope(root, test_pki.trust(), VERIFY_AT, expected_sender=SENDER)
    assert verified.passed, verified.report.summary()
    assert verified.tree is root
    assert etree.tostring(root) == before  # the seal's signature was put back as it was
    assert verified.report.document_sha256 == ""
    by_bytes = verify_document(signed, test_pki.trust(), VERIFY_AT, expected_sender=SENDER)
    assert by_bytes.signed_bytes == verified.signed_bytes
    assert by_bytes.report.signatures == verified.report.signatures


def test_sign_envelope_signs_in_place(test_pki: CryptoPKI) -> None:
    store = test_pki.store()
    root = xades.parse_untrusted(envelope())
    assert xades.sign_envelope(root, store.official(), store.seal(), NOW) is root
    assert verify_document(etree.tostring(root), test_pki.trust(), VERIFY_AT).passed


def test_pretty_printed_signature_whitespace_is_part_of_the_seal(
    signed: bytes, test_pki: CryptoPKI
) -> None:
    # Whitespace beside the seal's signature stays when the enveloped transform removes it.
    spaced = signed.replace(b"<env:Seal>", b"<env:Seal>\n  ").replace(
        b"</env:Seal>", b"\n</env:Seal>"
    )
    assert spaced != signed
    report = verify_document(spaced, test_pki.trust(), VERIFY_AT).report
    # The seal was computed without that whitespace: the digest differs, and nothing else.
    assert report.signatures[0].sub_indication is SubIndication.HASH_FAILURE


def _rsa_seal(test_pki: CryptoPKI):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import rsa

    from gateway.crypto.keys.keystore import KeyRole, SigningKey

    key = rsa.generate_private_key(65537, 2048)
    current = test_pki.store().seal()
    cert = test_pki.pki.ca.issue(
        key.public_key(), CertificateProfile(role="seal", body_id=SENDER, demo=True), now=NOW
    )
    return SigningKey(
        role=KeyRole.SEAL,
        name="",
        certificate=cert,
        chain=current.chain,
        private_key=key,
        location="memory:rsa-test",
    )


@pytest.mark.parametrize(
    "method",
    [SignatureMethod.RSA_SHA256, SignatureMethod.SHA256_RSA_MGF1, SignatureMethod.RSA_SHA512],
)
def test_rsa_signatures(test_pki: CryptoPKI, method: SignatureMethod) -> None:
    seal = _rsa_seal(test_pki)
    root = xades.parse_untrusted(envelope())
    signatures = etree.SubElement(root, xades.SIGNATURES)
    xades._sign_role(root, signatures, xades._SEAL, seal, NOW, method=method)
    doc = etree.tostring(root)
    verified = verify_document(doc, test_pki.trust(), VERIFY_AT, require_official=False)
    assert verified.passed, verified.report.summary()
    assert verified.report.signatures[0].signature_algorithm == method.value
    # The method says RSA; an ECDSA method over the same value is refused as not verifying.
    wrong = doc.replace(method.value.encode(), SignatureMethod.ECDSA_SHA256.value.encode())
    report = verify_document(wrong, test_pki.trust(), VERIFY_AT, require_official=False).report
    assert report.signatures[0].sub_indication is SubIndication.SIG_CRYPTO_FAILURE

"""Our XAdES profile against two reference implementations, both ways.

* Our signatures verify in signxml (``XAdESVerifier`` with the location pinned, the number of
  references expected, our CA as the only trust) and in ``xmlsec1 --verify`` (each signature on
  its own), over every valid example of gateway/schemas/examples and over generated envelopes.
* Signatures of our shape made by others verify in ours: ``xmlsec1 --sign`` filling our
  template's digests and values, and signxml's ``XAdESSigner`` taught to name the exclusive
  C14N transform on every reference (FACTS.md: out of the box it does not, on SignedProperties).
"""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml import SignatureReference
from signxml.util import ds_tag
from signxml.xades import (
    XAdESDataObjectFormat,
    XAdESSignatureConfiguration,
    XAdESSigner,
    XAdESVerifier,
)

from gateway.crypto import algorithms, xades
from gateway.crypto.keys.keystore import KeyStore, SigningKey
from gateway.crypto.report import SubIndication
from gateway.crypto.trust import TrustList
from gateway.demo.pki import DemoPKI
from gateway.schemas import VALID_EXAMPLES_DIR
from tests.crypto.helpers import (
    NOW,
    SENDER,
    VERIFY_AT,
    XMLSEC1_ID_ATTRIBUTES,
    envelope,
    keys_for,
    unencrypted_pem,
    xmlsec1_verify,
)
from tests.tooling import require_tool

EXAMPLES = sorted(VALID_EXAMPLES_DIR.glob("*.xml"))
E = f"{{{xades.ENV_NS}}}"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
LOCATIONS = {
    "official": (f"./{E}Signatures/{E}Official/", xades.OFFICIAL_REFERENCES, 1),
    "seal": (f"./{E}Signatures/{E}Seal/", xades.SEAL_REFERENCES, 2),
}
"""role → (signxml location, references, index of the signature for xmlsec1)."""


def _trust(pki: DemoPKI) -> TrustList:
    return TrustList([pki.ca.certificate], [pki.ca.crl(now=NOW)])


def _roles(signed: bytes) -> list[str]:
    root = etree.fromstring(signed)
    return ["official", "seal"] if root.find(f"{E}Signatures/{E}Official") is not None else ["seal"]


# --- the references verify ours -----------------------------------------------------------


def _signxml_verifies(signed: bytes, role: str, ca_file: Path) -> None:
    location, references, _ = LOCATIONS[role]
    config = XAdESSignatureConfiguration(
        location=location, expect_references=references, verification_time=VERIFY_AT
    )
    results = XAdESVerifier().verify(
        etree.fromstring(signed), ca_pem_file=str(ca_file), expect_config=config, id_attribute="Id"
    )
    assert len(results) == references


def _xmlsec1_verifies(signed: bytes, role: str, ca_file: Path, tmp_path: Path) -> None:
    doc = tmp_path / f"{role}.xml"
    doc.write_bytes(signed)
    index = 1 if role == "official" or _roles(signed) == ["seal"] else LOCATIONS[role][2]
    result = xmlsec1_verify(doc, ca_file, index)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_our_signatures_verify_in_signxml_and_xmlsec1(
    example: Path, world: tuple[DemoPKI, dict[str, KeyStore]], tmp_path: Path
) -> None:
    pki, stores = world
    root = xades.parse_untrusted(example.read_bytes())
    official, seal = keys_for(root, stores)
    signed = etree.tostring(xades.sign_envelope(root, official, seal, NOW))
    assert xades.verify_document(signed, _trust(pki), VERIFY_AT, require_official=False).passed
    for role in _roles(signed):
        _signxml_verifies(signed, role, pki.ca_file)
        _xmlsec1_verifies(signed, role, pki.ca_file, tmp_path)


def test_examples_cover_both_shapes() -> None:
    # Receipts and rejections carry the seal only; every other kind both signatures.
    assert len(EXAMPLES) >= 20
    kinds = {p.stem.split(".")[1] for p in EXAMPLES}
    assert {"Receipt", "Rejection", "Request"} <= kinds


_XML_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs", "Cc", "Co"), max_codepoint=0x2FFFF),
        st.sampled_from(list("&<>\"'\t\n\r ")),
    ),
    max_size=60,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    text=_XML_TEXT,
    attribute=_XML_TEXT,
    prefix=st.sampled_from(["p", "cis", "x1", "ns-a"]),
    children=st.lists(_XML_TEXT, max_size=4),
)
def test_generated_envelopes_verify_everywhere(
    world: tuple[DemoPKI, dict[str, KeyStore]],
    tmp_path: Path,
    text: str,
    attribute: str,
    prefix: str,
    children: list[str],
) -> None:
    pki, stores = world
    root = xades.parse_untrusted(envelope())
    request = root.find(f"{E}Body")[0]
    request.text = text
    request.set("note", attribute)
    for i, child_text in enumerate(children):
        child = etree.SubElement(
            request, f"{{urn:test:extra:{i}}}Item", nsmap={prefix: f"urn:test:extra:{i}"}
        )
        child.text = child_text
        child.tail = "\n  "
    store = stores[SENDER]
    signed = etree.tostring(xades.sign_envelope(root, store.official(), store.seal(), NOW))
    verified = xades.verify_document(signed, _trust(pki), VERIFY_AT, expected_sender=SENDER)
    assert verified.passed, verified.report.summary()
    assert verified.tree is not None
    assert (verified.tree.find(f"{E}Body")[0].text or "") == text
    for role in ("official", "seal"):
        _signxml_verifies(signed, role, pki.ca_file)
        _xmlsec1_verifies(signed, role, pki.ca_file, tmp_path)


# --- ours verifies the references' signatures ----------------------------------------------


def _xmlsec1_signed(
    root: etree._Element,
    official: SigningKey | None,
    seal: SigningKey,
    tmp_path: Path,
    *,
    spaced: bool = False,
) -> bytes:
    """Our templates (references, transforms, SignedProperties, KeyInfo; no digests or values),
    then ``xmlsec1 --sign`` for each signature in turn: the official first, so that the seal's
    whole-envelope digest covers the finished official."""
    xmlsec1 = require_tool("xmlsec1", "xmlsec1")
    signatures = etree.SubElement(root, f"{E}Signatures")
    keys = []
    for role, key in ((xades._OFFICIAL, official), (xades._SEAL, seal)):
        if key is None:
            continue
        holder = etree.SubElement(signatures, role.holder)
        method, digest = algorithms.signature_method_for(key.certificate.public_key())
        signature = xades._placed_template(holder, role, key, NOW, method, digest)
        if spaced:
            # Whitespace around the signature, as an indenting producer leaves it: the
            # enveloped-signature transform removes the element, not the text beside it.
            holder.text, signature.tail = "\n    ", "\n  "
        keys.append(unencrypted_pem(key, tmp_path / f"{role.name}.key.pem"))
    source = tmp_path / "template.xml"
    source.write_bytes(etree.tostring(root))
    for index, key_file in enumerate(keys, start=1):
        target = tmp_path / f"signed-{index}.xml"
        result = subprocess.run(
            [
                xmlsec1,
                "--sign",
                "--privkey-pem",
                str(key_file),
                *XMLSEC1_ID_ATTRIBUTES,
                "--node-xpath",
                f"(//*[local-name()='Signature'])[{index}]",
                "--output",
                str(target),
                str(source),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        source = target
    return source.read_bytes()


@pytest.mark.parametrize("example", EXAMPLES[::4], ids=[p.stem for p in EXAMPLES[::4]])
def test_xmlsec1_signatures_of_our_shape_verify_in_ours(
    example: Path, world: tuple[DemoPKI, dict[str, KeyStore]], tmp_path: Path
) -> None:
    pki, stores = world
    root = xades.parse_untrusted(example.read_bytes())
    official, seal = keys_for(root, stores)
    signed = _xmlsec1_signed(root, official, seal, tmp_path)
    verified = xades.verify_document(
        signed, _trust(pki), VERIFY_AT, require_official=official is not None
    )
    assert verified.passed, verified.report.summary()
    assert len(verified.report.signatures) == (2 if official else 1)
    # A changed body fails ours; a comment slipped in is refused outright.
    changed = etree.fromstring(signed)
    changed.find(f"{E}Body")[0].set("forged", "1")
    report = xades.verify_document(etree.tostring(changed), _trust(pki), VERIFY_AT).report
    assert report.signatures[0].sub_indication is SubIndication.HASH_FAILURE
    commented = signed.replace(b"</env:Body>", b"<!-- --></env:Body>", 1)
    report = xades.verify_document(commented, _trust(pki), VERIFY_AT).report
    assert report.signatures[0].sub_indication is SubIndication.FORMAT_FAILURE


class _ProfileSigner(XAdESSigner):
    """signxml's XAdES signer made to produce our profile: exclusive C14N named as a transform
    on every reference (data, SignedProperties, KeyInfo), the signing time given."""

    def __init__(self, role: str, key: SigningKey, signing_time: datetime) -> None:
        method, digest = algorithms.signature_method_for(key.certificate.public_key())
        super().__init__(
            claimed_roles=[role],
            data_object_format=XAdESDataObjectFormat(Description="Envelope", MimeType="text/xml"),
            signature_algorithm=method,
            digest_algorithm=digest,
            c14n_algorithm=EXC_C14N,
        )
        self._signing_time = signing_time

    def _build_transforms_for_reference(
        self,
        *,
        transforms_node: etree._Element,
        reference: SignatureReference,
        exclude_c14n_transform_element: bool = True,
    ) -> None:
        if reference.URI == "":
            etree.SubElement(transforms_node, ds_tag("Transform"), Algorithm=ENVELOPED)
        etree.SubElement(transforms_node, ds_tag("Transform"), Algorithm=EXC_C14N)

    def _add_reference_to_signed_info(self, sig_root, node_to_reference, **attrs):  # type: ignore[no-untyped-def]
        super()._add_reference_to_signed_info(sig_root, node_to_reference, **attrs)
        reference = sig_root.find(f"{ds_tag('SignedInfo')}")[-1]
        transforms = etree.Element(ds_tag("Transforms"))
        etree.SubElement(transforms, ds_tag("Transform"), Algorithm=EXC_C14N)
        reference.insert(0, transforms)

    def add_signing_time(self, signed_signature_properties, sig_root, signing_settings):  # type: ignore[no-untyped-def]
        element = etree.SubElement(signed_signature_properties, f"{{{xades.XADES_NS}}}SigningTime")
        element.text = self._signing_time.strftime("%Y-%m-%dT%H:%M:%SZ")


def _signxml_signed(root: etree._Element, official: SigningKey | None, seal: SigningKey) -> bytes:
    signatures = etree.SubElement(root, f"{E}Signatures")
    for role, key, uris in (
        ("official", official, ["#header", "#body"]),
        ("seal", seal, None),
    ):
        if key is None:
            continue
        holder = etree.SubElement(signatures, f"{E}{role.capitalize()}")
        # The placeholder declares the ds prefix. Without it lxml names the prefix ns0, and
        # signxml's seal digest of SignedProperties no longer matches the document it returns
        # (prefixes are part of exclusive C14N).
        etree.SubElement(holder, ds_tag("Signature"), Id="placeholder", nsmap={"ds": xades.DS_NS})
        root = _ProfileSigner(role, key, NOW).sign(
            root,
            key=key.private_key,
            cert=[key.certificate, *key.chain],
            reference_uri=uris,
            id_attribute="Id",
            always_add_key_value=False,
        )
        signatures = root.find(f"{E}Signatures")
    return etree.tostring(root)


@pytest.mark.parametrize("example", EXAMPLES[1::4], ids=[p.stem for p in EXAMPLES[1::4]])
def test_signxml_signatures_of_our_shape_verify_in_ours(
    example: Path, world: tuple[DemoPKI, dict[str, KeyStore]]
) -> None:
    pki, stores = world
    root = xades.parse_untrusted(example.read_bytes())
    official, seal = keys_for(root, stores)
    signed = _signxml_signed(root, official, seal)
    verified = xades.verify_document(
        signed, _trust(pki), VERIFY_AT, require_official=official is not None
    )
    assert verified.passed, verified.report.summary()
    # signxml's own verifier agrees with itself on this shape.
    for role in _roles(signed):
        _signxml_verifies(signed, role, pki.ca_file)


def test_whitespace_beside_the_seal_is_kept_by_the_enveloped_transform_as_in_xmlsec1(
    world: tuple[DemoPKI, dict[str, KeyStore]], tmp_path: Path
) -> None:
    pki, stores = world
    root = xades.parse_untrusted(envelope())
    store = stores[SENDER]
    signed = _xmlsec1_signed(root, store.official(), store.seal(), tmp_path, spaced=True)
    assert b"<env:Seal>\n    <ds:Signature" in signed
    verified = xades.verify_document(signed, _trust(pki), VERIFY_AT, expected_sender=SENDER)
    assert verified.passed, verified.report.summary()
    assert etree.tostring(verified.tree) == etree.tostring(etree.fromstring(signed))

"""The Signatures slot of the envelope: ds:Signature only, Seal required, left out of JSON."""

from __future__ import annotations

from lxml import etree

from gateway.model.profiles import ENVELOPE_NAMESPACE
from gateway.xml.convert import json_to_xml, xml_to_json
from gateway.xml.validate import validate
from tests.xml.helpers import VALID, load_json

DS = "http://www.w3.org/2000/09/xmldsig#"
ENV = f"{{{ENVELOPE_NAMESPACE}}}"
DOCUMENT = load_json(VALID / "cis-enforcement.Response.json")


def _signed(*slots: str, namespace: str = DS) -> etree._Element:
    root = json_to_xml(DOCUMENT)
    signatures = etree.SubElement(root, f"{ENV}Signatures")
    for slot in slots:
        holder = etree.SubElement(signatures, f"{ENV}{slot}")
        signature = etree.SubElement(holder, f"{{{namespace}}}Signature", Id="placeholder")
        etree.SubElement(signature, f"{{{namespace}}}SignatureValue").text = "AAAA"
    return root


def test_official_and_seal_validate_and_stay_out_of_json() -> None:
    root = _signed("Official", "Seal")
    assert validate(root) == ()
    assert xml_to_json(root) == DOCUMENT
    assert root.find(f"{ENV}Signatures") is not None  # conversion did not touch the input


def test_seal_alone_is_enough_for_machine_documents() -> None:
    assert validate(_signed("Seal")) == ()


def test_official_without_seal_is_refused() -> None:
    problems = validate(_signed("Official"))
    assert ("SCHEMA_MISSING_ELEMENT", "/Envelope/Signatures") in [
        (p.code, p.path) for p in problems
    ]
    assert "Seal" in next(p for p in problems if p.path == "/Envelope/Signatures").message_ru


def test_only_xmldsig_may_sit_in_a_signature_slot() -> None:
    problems = validate(_signed("Official", "Seal", namespace="urn:example:not-dsig"))
    assert problems
    assert problems[0].code == "SCHEMA_UNEXPECTED_ELEMENT"
    assert problems[0].path.startswith("/Envelope/Signatures/Official")

"""Our profile and the JDK's own XML-signature API (JSR 105, ``javax.xml.crypto.dsig``: Apache
Santuario inside the JDK), the stack a body's Java system (SMEV adapters, case systems) signs and
verifies with, both ways:

* the JDK verifies ours: both signatures of a request and an answer and the seal of a receipt,
  with its secure validation on; a changed body, a changed header or another signer's key fail;
* ours verifies the JDK's: a Java program that builds our profile from the documentation alone
  (no template from us) signs a request (official, then seal) and a receipt (seal), and the
  gateway's strict verifier passes them, path and signer's body included; a change after
  signing fails with HASH_FAILURE.

tests/crypto/java/XmlSignatures.java runs as a single-file program (``java XmlSignatures.java
verify|sign …``); verification is against the expected signer's key, never the certificate a
signature carries.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.crypto import xades
from gateway.crypto.keys.keystore import KeyStore, SigningKey
from gateway.crypto.report import SubIndication
from gateway.crypto.trust import TrustList
from gateway.demo.pki import DemoPKI
from gateway.schemas import VALID_EXAMPLES_DIR
from tests.crypto.helpers import (
    NOW,
    VERIFY_AT,
    assert_each_verifies,
    foreign_verdicts,
    keys_for,
    pem_files,
    signed_example,
    unencrypted_pem,
)
from tests.tooling import require_tool

XML_SIGNATURES_JAVA = Path(__file__).resolve().parent / "java" / "XmlSignatures.java"
E = f"{{{xades.ENV_NS}}}"


@pytest.fixture(scope="module")
def java() -> str:
    return require_tool("java", "openjdk-17-jdk-headless")


def _verify(
    java: str, document: bytes, signers: list[SigningKey], tmp_path: Path
) -> list[dict[str, Any]]:
    return foreign_verdicts([java, str(XML_SIGNATURES_JAVA), "verify"], document, signers, tmp_path)


@pytest.mark.parametrize(
    "example",
    [
        "cis-enforcement.Request.xml",
        "ru-kz-supreme-courts.Response.xml",
        "cis-enforcement.Receipt.xml",  # the seal alone
    ],
)
def test_the_jdk_verifies_each_signature(
    java: str, world: tuple[DemoPKI, dict[str, KeyStore]], tmp_path: Path, example: str
) -> None:
    signed, signers = signed_example(VALID_EXAMPLES_DIR / example, world[1])
    assert_each_verifies(_verify(java, signed, signers, tmp_path), signers)


def test_the_jdk_refuses_a_changed_document_and_another_signer(
    java: str, world: tuple[DemoPKI, dict[str, KeyStore]], tmp_path: Path
) -> None:
    signed, signers = signed_example(VALID_EXAMPLES_DIR / "cis-enforcement.Request.xml", world[1])
    changed = etree.fromstring(signed)
    changed.find(f"{E}Body")[0].set("forged", "1")
    official, seal = _verify(java, etree.tostring(changed), signers, tmp_path)
    assert not official["valid"] and not seal["valid"]
    assert "digest of reference '#body' does not match" in official["error"], official
    assert "digest of reference '' does not match" in seal["error"], seal

    changed = etree.fromstring(signed)
    changed.find(f"{E}Header/{E}Recipient").text = "BY-MJ"
    official, seal = _verify(java, etree.tostring(changed), signers, tmp_path)
    assert "digest of reference '#header' does not match" in official["error"], official
    assert not seal["valid"]

    official, seal = _verify(java, signed, [signers[1], signers[1]], tmp_path)
    assert official == {
        "signature": "official-signature",
        "valid": False,
        "error": "signature value does not verify",
    }
    assert seal["valid"], seal


def _key_files(key: SigningKey, name: str, tmp_path: Path) -> list[str]:
    """The key as unencrypted PKCS#8 PEM, then its certificate and issuers, as file names."""
    key_file = unencrypted_pem(key, tmp_path / f"{name}.key.pem")
    return [str(key_file), *pem_files([key.certificate, *key.chain], name, tmp_path)]


def _java_signed(java: str, example: Path, stores: dict[str, KeyStore], tmp_path: Path) -> bytes:
    official, seal = keys_for(xades.parse_untrusted(example.read_bytes()), stores)
    source = example
    for role, key in (("official", official), ("seal", seal)):
        if key is None:
            continue
        key_file, *certificates = _key_files(key, role, tmp_path)
        target = tmp_path / f"{role}-signed.xml"
        arguments = [role, str(source), key_file, str(target), NOW.strftime("%Y-%m-%dT%H:%M:%SZ")]
        result = subprocess.run(
            [java, str(XML_SIGNATURES_JAVA), "sign", *arguments, *certificates],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        source = target
    return source.read_bytes()


@pytest.mark.parametrize(
    ("example", "signatures"),
    [("cis-enforcement.Request.xml", 2), ("cis-enforcement.Receipt.xml", 1)],
)
def test_the_gateway_verifies_what_the_jdk_signs_in_its_profile(
    java: str,
    world: tuple[DemoPKI, dict[str, KeyStore]],
    tmp_path: Path,
    example: str,
    signatures: int,
) -> None:
    pki, stores = world
    signed = _java_signed(java, VALID_EXAMPLES_DIR / example, stores, tmp_path)
    trust = TrustList([pki.ca.certificate], [pki.ca.crl(now=NOW)])
    sender = etree.fromstring(signed).findtext(f"{E}Header/{E}Sender")
    verified = xades.verify_document(
        signed, trust, VERIFY_AT, expected_sender=sender, require_official=signatures == 2
    )
    assert verified.passed, verified.report.summary()
    assert len(verified.report.signatures) == signatures
    changed = etree.fromstring(signed)
    changed.find(f"{E}Body")[0].set("forged", "1")
    report = xades.verify_document(etree.tostring(changed), trust, VERIFY_AT).report
    assert not report.passed
    assert report.signatures[0].sub_indication is SubIndication.HASH_FAILURE

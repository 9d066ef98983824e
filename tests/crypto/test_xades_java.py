"""Our signatures in the JDK's own XML-signature API (JSR 105, ``javax.xml.crypto.dsig``: Apache
Santuario inside the JDK), the stack a body's Java system (SMEV adapters, case systems) verifies
with: both signatures of a request and the seal of a receipt verify with the JDK's secure
validation on; a changed body, a changed header or another signer's key fail them.

tests/crypto/java/Verify.java runs as a single-file program (``java Verify.java …``), each
signature checked against the expected signer's key, never the certificate it carries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.crypto import xades
from gateway.crypto.keys.keystore import KeyStore, SigningKey
from gateway.demo.pki import DemoPKI
from gateway.schemas import VALID_EXAMPLES_DIR
from tests.crypto.helpers import (
    assert_each_verifies,
    demo_key_stores,
    foreign_verdicts,
    signed_example,
)
from tests.tooling import require_tool

VERIFY_JAVA = Path(__file__).resolve().parent / "java" / "Verify.java"
E = f"{{{xades.ENV_NS}}}"


@pytest.fixture(scope="module")
def java() -> str:
    return require_tool("java", "openjdk-17-jdk-headless")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoPKI, dict[str, KeyStore]]:
    return demo_key_stores(tmp_path_factory.mktemp("java"))


def _verify(
    java: str, document: bytes, signers: list[SigningKey], tmp_path: Path
) -> list[dict[str, Any]]:
    return foreign_verdicts([java, str(VERIFY_JAVA)], document, signers, tmp_path)


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

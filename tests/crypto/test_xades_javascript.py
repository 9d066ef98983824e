"""Our signatures in the JavaScript XML-signature stacks a body on Node would verify them with.

* **xml-crypto** (node-saml, the stack of SAML on Node; pinned in tests/crypto/javascript):
  both signatures of every example kind verify — the official's references to ``#header`` and
  ``#body``, and the seal enveloped over the whole envelope with its signature at
  ``env:Signatures/env:Seal`` — and a changed body or header fails them.
* **xadesjs** (PeculiarVentures, the JavaScript XAdES stack): the official's signature verifies.
  The seal does not: xmldsigjs' enveloped-signature transform removes only a ``ds:Signature``
  that is a direct child of the referenced element (its issue #49), so it digests the envelope
  with the seal's own signature still inside. The test pins that, so that
  docs/keys-and-signatures.md changes when the stack or our layout does, and checks the way
  round it that the docs give: the seal's signature moved to the end of the envelope in the
  verifier's DOM, both verify.

Each signature is checked against the certificate of the key that made it, never against the
certificate it carries (tests/crypto/javascript/verify.js).
"""

from __future__ import annotations

import json
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
    foreign_verdicts,
    signed_example,
)
from tests.crypto.test_xades_interop import EXAMPLES
from tests.tooling import require_tool, unavailable

JS_DIR = Path(__file__).resolve().parent / "javascript"
VERIFY_JS = JS_DIR / "verify.js"
E = f"{{{xades.ENV_NS}}}"


@pytest.fixture(scope="module")
def node() -> str:
    """Node with the pinned packages, or a failure (a skip outside CI) saying how to get them."""
    executable = require_tool("node", "nodejs")
    missing = [
        name for name in ("xml-crypto", "xadesjs") if not (JS_DIR / "node_modules" / name).is_dir()
    ]
    if missing:
        unavailable(
            f"{', '.join(missing)} not found: run `npm ci --prefix {JS_DIR}` (.ci/run does)"
        )
    return executable


def _verify(
    node: str, stack: str, document: bytes, signers: list[SigningKey], tmp_path: Path
) -> list[dict[str, Any]]:
    """The stack's verdict on each signature, in document order (official, then seal)."""
    return foreign_verdicts([node, str(VERIFY_JS), stack], document, signers, tmp_path)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_xml_crypto_verifies_both_signatures_of_every_kind(
    node: str, world: tuple[DemoPKI, dict[str, KeyStore]], example: Path, tmp_path: Path
) -> None:
    signed, signers = signed_example(example, world[1])
    assert_each_verifies(_verify(node, "xml-crypto", signed, signers, tmp_path), signers)


def test_xml_crypto_refuses_a_changed_body_or_header_and_a_stranger_key(
    node: str, world: tuple[DemoPKI, dict[str, KeyStore]], tmp_path: Path
) -> None:
    signed, signers = signed_example(VALID_EXAMPLES_DIR / "cis-enforcement.Request.xml", world[1])
    assert len(signers) == 2
    changed_body = etree.fromstring(signed)
    changed_body.find(f"{E}Body")[0].set("forged", "1")
    verdicts = _verify(node, "xml-crypto", etree.tostring(changed_body), signers, tmp_path)
    assert [v["valid"] for v in verdicts] == [False, False]
    assert "digest" in (verdicts[0]["error"] or "").lower(), verdicts

    changed_header = etree.fromstring(signed)
    changed_header.find(f"{E}Header/{E}Recipient").text = "BY-MJ"
    verdicts = _verify(node, "xml-crypto", etree.tostring(changed_header), signers, tmp_path)
    assert [v["valid"] for v in verdicts] == [False, False]

    # The official's certificate offered for the seal: the seal's value does not verify by it.
    swapped = _verify(node, "xml-crypto", signed, [signers[0], signers[0]], tmp_path)
    assert [v["valid"] for v in swapped] == [True, False]


def test_xadesjs_verifies_the_official_and_not_the_nested_seal(
    node: str, world: tuple[DemoPKI, dict[str, KeyStore]], tmp_path: Path
) -> None:
    signed, signers = signed_example(VALID_EXAMPLES_DIR / "cis-enforcement.Request.xml", world[1])
    official, seal = _verify(node, "xadesjs", signed, signers, tmp_path)
    assert official == {"signature": "official-signature", "valid": True, "error": None}
    # xmldsigjs#49: the enveloped-signature transform leaves our nested seal in, so the digest
    # of URI="" is computed over the envelope *with* the seal's signature.
    assert seal["valid"] is False
    assert "Invalid digest for uri ''" in (seal["error"] or ""), seal
    changed = etree.fromstring(signed)
    changed.find(f"{E}Body")[0].set("forged", "1")
    official, _ = _verify(node, "xadesjs", etree.tostring(changed), signers, tmp_path)
    assert official["valid"] is False
    stranger, _ = _verify(node, "xadesjs", signed, [signers[1], signers[1]], tmp_path)
    assert stranger["valid"] is False
    assert "another certificate" in (stranger["error"] or ""), stranger


def test_the_documented_versions_are_the_pinned_ones() -> None:
    lock = json.loads((JS_DIR / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    docs = (Path(__file__).resolve().parents[2] / "docs" / "keys-and-signatures.md").read_text(
        encoding="utf-8"
    )
    for name in ("xml-crypto", "xadesjs", "xmldsigjs"):
        version = lock[f"node_modules/{name}"]["version"]
        assert f"{name} {version}" in docs, (
            f"docs/keys-and-signatures.md should name {name} {version}"
        )


@pytest.mark.parametrize("example", ["cis-enforcement.Request.xml", "cis-enforcement.Receipt.xml"])
def test_xadesjs_verifies_the_seal_once_it_is_moved_where_its_transform_looks(
    node: str, world: tuple[DemoPKI, dict[str, KeyStore]], tmp_path: Path, example: str
) -> None:
    """The documented way round xmldsigjs#49: the seal's ds:Signature moved to the end of
    env:Envelope in the verifier's DOM; what the transform then digests is what we signed."""
    signed, signers = signed_example(VALID_EXAMPLES_DIR / example, world[1])
    assert_each_verifies(_verify(node, "xadesjs-seal-moved", signed, signers, tmp_path), signers)
    changed = etree.fromstring(signed)
    changed.find(f"{E}Body")[0].set("forged", "1")
    verdicts = _verify(node, "xadesjs-seal-moved", etree.tostring(changed), signers, tmp_path)
    assert not any(v["valid"] for v in verdicts), verdicts

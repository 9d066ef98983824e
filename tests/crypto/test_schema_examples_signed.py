"""Every valid example of gateway/schemas/examples is signed as its kind requires, verifies, and
stays valid against the envelope schema (the signatures fit env:Signatures)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lxml import etree

from gateway.crypto.keys.keystore import KeyStore
from gateway.crypto.trust import TrustList
from gateway.crypto.xades import sign_document, verify_document
from gateway.model.profiles import profile
from gateway.schemas import SCHEMA_DIR
from tests.crypto.helpers import NOW, VERIFY_AT, demo_key_stores
from tests.tooling import require_tool

SCHEMAS = SCHEMA_DIR
EXAMPLES = sorted((SCHEMAS / "examples" / "valid").glob("*.xml"))


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, KeyStore], TrustList]:
    pki, stores = demo_key_stores(tmp_path_factory.mktemp("bodies"))
    trust = TrustList([pki.ca.certificate], [pki.ca.crl(now=NOW)])
    return stores, trust


def _sign(example: Path, by_body: dict[str, KeyStore]) -> tuple[bytes, str, bool]:
    data = example.read_bytes()
    header = etree.fromstring(data).find("{urn:cis-exchange:envelope:1}Header")
    sender = header.findtext("{urn:cis-exchange:envelope:1}Sender")
    agreement = header.findtext("{urn:cis-exchange:envelope:1}Agreement")
    kind = profile(agreement).kind(header.findtext("{urn:cis-exchange:envelope:1}Kind"))
    store = by_body[sender]
    official = store.official() if kind.signed_by_official else None
    return sign_document(data, official, store.seal(), NOW), sender, kind.signed_by_official


@pytest.mark.skipif(not EXAMPLES, reason="gateway/schemas/examples/valid is empty")
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_signs_and_verifies(
    example: Path, stores: tuple[dict[str, KeyStore], TrustList]
) -> None:
    by_body, trust = stores
    signed, sender, with_official = _sign(example, by_body)
    verified = verify_document(
        signed, trust, VERIFY_AT, expected_sender=sender, require_official=with_official
    )
    assert verified.passed, verified.report.summary()
    assert len(verified.report.signatures) == (2 if with_official else 1)


@pytest.mark.skipif(not EXAMPLES, reason="gateway/schemas/examples/valid is empty")
def test_signed_examples_stay_schema_valid(
    stores: tuple[dict[str, KeyStore], TrustList], tmp_path: Path
) -> None:
    xmllint = require_tool("xmllint", "libxml2-utils")
    paths = []
    for example in EXAMPLES:
        path = tmp_path / example.name
        path.write_bytes(_sign(example, stores[0])[0])
        paths.append(str(path))
    # One xmllint run for all: compiling the schemas is most of its cost.
    result = subprocess.run(
        [xmllint, "--noout", "--nonet", "--schema", str(SCHEMAS / "envelope.xsd"), *paths],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(" validates") == len(paths)

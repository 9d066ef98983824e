"""The depositary's directory signature travels: exclusive C14N, verified by xmlsec1 too.

It was signed with C14N 1.1 (signxml's default here), which .NET's SignedXml and the
JavaScript XAdES stacks do not implement. Now it is exclusive C14N like the envelopes; a
version signed before with C14N 1.1 still verifies (a node reloads what it holds); any other
canonicalisation is refused by name.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import pytest
from lxml import etree
from signxml import methods
from signxml.signer import XMLSigner

from gateway.crypto.algorithms import signature_method_for
from gateway.crypto.trust import TrustList
from gateway.demo.setup import DemoWorld, build_world
from gateway.exchange.directory_signing import (
    C14N_11,
    DS,
    ENVELOPED,
    EXC_C14N,
    verify_directory,
)
from gateway.model.problems import DocumentRejected
from tests.integration.test_directory_reload import _depositary
from tests.tooling import require_tool

INCLUSIVE_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> DemoWorld:
    root = tmp_path_factory.mktemp("directory-signature")
    return build_world(root, now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))


def _trust(world: DemoWorld) -> TrustList:
    return TrustList.from_pem_files(
        world.root / "trust" / "depositary-ca.pem", require_revocation=False
    )


def _algorithms(signed: bytes) -> list[str]:
    info = etree.fromstring(signed).find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo")
    assert info is not None
    return [
        e.get("Algorithm", "")
        for e in info.iter()
        if e.tag.endswith(("Method", "Transform"))
        and "Signature" not in e.tag
        and "Digest" not in e.tag
    ]


def _resigned(world: DemoWorld, c14n: str) -> bytes:
    """The world's directory signed again by the depositary with another canonicalisation."""
    root = etree.fromstring((world.root / "directory.xml").read_bytes())
    for signature in root.findall(f"{{{DS}}}Signature"):
        root.remove(signature)
    seal = _depositary(world).seal()
    method, digest = signature_method_for(seal.certificate.public_key())
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=method,
        digest_algorithm=digest,
        c14n_algorithm=c14n,
    )
    signed = signer.sign(root, key=seal.private_key, cert=[seal.certificate, *seal.chain])
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def test_the_directory_is_signed_with_exclusive_c14n_and_xmlsec1_verifies_it(
    world: DemoWorld,
) -> None:
    signed = (world.root / "directory.xml").read_bytes()
    assert _algorithms(signed) == [EXC_C14N, ENVELOPED, EXC_C14N]
    assert verify_directory(signed, _trust(world), at=datetime.now(UTC)).version >= 1
    xmlsec1 = require_tool("xmlsec1", "xmlsec1")
    result = subprocess.run(
        [
            xmlsec1,
            "--verify",
            "--trusted-pem",
            str(world.root / "trust" / "depositary-ca.pem"),
            str(world.root / "directory.xml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # One byte of the directory changed: xmlsec1 refuses it too.
    tampered = world.root / "tampered.xml"
    changed = signed.replace(b"Version>", b"Version> ", 1)
    assert changed != signed
    tampered.write_bytes(changed)
    result = subprocess.run(
        [
            xmlsec1,
            "--verify",
            "--trusted-pem",
            str(world.root / "trust" / "depositary-ca.pem"),
            str(tampered),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0


def test_a_version_signed_before_with_c14n_11_still_verifies(world: DemoWorld) -> None:
    legacy = _resigned(world, C14N_11)
    assert C14N_11 in _algorithms(legacy)
    assert verify_directory(legacy, _trust(world), at=datetime.now(UTC)).version >= 1


def test_another_canonicalisation_is_refused_by_name(world: DemoWorld) -> None:
    other = _resigned(world, INCLUSIVE_C14N)
    with pytest.raises(DocumentRejected) as refused:
        verify_directory(other, _trust(world), at=datetime.now(UTC))
    (problem,) = refused.value.problems
    assert problem.code == "DIRECTORY_SIGNATURE_INVALID"
    assert "exclusive C14N" in problem.message_en and INCLUSIVE_C14N in problem.message_en

"""A small PKI in a temporary folder and minimal envelopes, for the crypto tests.

The PKI: one demo CA; bodies RU-FSSP (sender) and KZ-MJ (recipient), each with seal, an
official ("chief"), tls and encryption keys in the key store's layout; a CRL issued at NOW.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from gateway.config import KeysSection
from gateway.crypto import xades
from gateway.crypto.certificates import CertificateProfile
from gateway.crypto.keys.keystore import KeyRole, KeyStore, SigningKey
from gateway.crypto.trust import TrustList
from gateway.demo.pki import DemoPKI, build_demo_pki
from gateway.model.bodies import DEMO_BODIES
from gateway.model.profiles import profile
from tests.tooling import require_tool

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
"""Pinned time: the PKI is built at NOW, documents are signed at NOW, verified a minute later."""
VERIFY_AT = NOW + timedelta(minutes=1)
PASSPHRASE = "correct horse battery staple"
SENDER = "RU-FSSP"
RECIPIENT = "KZ-MJ"

ENVELOPE_NS = "urn:cis-exchange:envelope:1"


def envelope(sender: str = SENDER, recipient: str = RECIPIENT, text: str = "Запрос") -> bytes:
    """A minimal unsigned envelope laid out as docs/architecture.md says."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="{ENVELOPE_NS}">
  <env:Header Id="header">
    <env:MessageId>6f1c2a9e-5d3b-4c8e-9f00-1a2b3c4d5e6f</env:MessageId>
    <env:ConversationId>0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f</env:ConversationId>
    <env:Agreement>cis-enforcement</env:Agreement>
    <env:Kind>Request</env:Kind>
    <env:Sender>{sender}</env:Sender>
    <env:Recipient>{recipient}</env:Recipient>
    <env:Created>2026-11-23T10:00:00Z</env:Created>
    <env:Confidential>false</env:Confidential>
    <env:Urgency>normal</env:Urgency>
    <env:Language>ru</env:Language>
  </env:Header>
  <env:Body Id="body">
    <cis:Request xmlns:cis="urn:cis-exchange:cis-enforcement:1" lang="ru">{text}</cis:Request>
  </env:Body>
</env:Envelope>
""".encode()


@dataclass(frozen=True)
class CryptoPKI:
    pki: DemoPKI
    root: Path

    def store(self, body_id: str = SENDER, **keys: object) -> KeyStore:
        section = KeysSection(dir=self.pki.body_dirs[body_id], official="chief", **keys)  # type: ignore[arg-type]
        return KeyStore(section, body_id, environ={"GATEWAY_KEY_PASSPHRASE": PASSPHRASE})

    def trust(self, *, with_crl: bool = True, at: datetime = NOW) -> TrustList:
        crls = [self.pki.ca.crl(now=at)] if with_crl else []
        return TrustList([self.pki.ca.certificate], crls)

    def reissued(self, key: SigningKey, *, not_before: datetime, not_after: datetime) -> SigningKey:
        """The same key with a new certificate for the given period."""
        profile = CertificateProfile(
            role=str(key.role),
            body_id=key.body_id,
            common_name=_cn(key.certificate),
            title=_title(key.certificate),
            demo=True,
        )
        cert = self.pki.ca.issue(
            key.private_key.public_key(),
            profile,
            now=NOW,
            not_before=not_before,
            not_after=not_after,
        )
        return SigningKey(
            role=KeyRole(key.role),
            name=key.name,
            certificate=cert,
            chain=key.chain,
            private_key=key.private_key,
            location=key.location,
        )


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def _title(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(x509.NameOID.TITLE)
    return str(values[0].value) if values else ""


def build_test_pki(root: Path) -> CryptoPKI:
    pki = build_demo_pki(root, [SENDER, RECIPIENT], now=NOW, passphrase=PASSPHRASE.encode())
    return CryptoPKI(pki=pki, root=root)


def demo_key_stores(root: Path) -> tuple[DemoPKI, dict[str, KeyStore]]:
    """The demo bodies' PKI built at NOW under ``root``, and a key store of each body."""
    pki = build_demo_pki(
        root,
        [b.id for b in DEMO_BODIES],
        now=NOW,
        passphrase=PASSPHRASE.encode(),
        roles=("seal", "official"),
    )
    stores = {
        body: KeyStore(
            KeysSection(dir=path, official="chief"),
            body,
            environ={"GATEWAY_KEY_PASSPHRASE": PASSPHRASE},
        )
        for body, path in pki.body_dirs.items()
    }
    return pki, stores


XMLSEC1_ID_ATTRIBUTES = [
    argument
    for tag in (
        f"{xades.ENV_NS}:Header",
        f"{xades.ENV_NS}:Body",
        f"{xades.DS_NS}:KeyInfo",
        f"{xades.XADES_NS}:SignedProperties",
    )
    for argument in ("--id-attr:Id", tag)
]
"""xmlsec1's arguments naming the ``Id`` attributes our references point at."""


def xmlsec1_verify(document: Path, ca_file: Path, index: int) -> subprocess.CompletedProcess[str]:
    """xmlsec1 (an independent implementation) verifying the ``index``-th signature (1-based) of
    ``document`` against ``ca_file`` at VERIFY_AT."""
    xmlsec1 = require_tool("xmlsec1", "xmlsec1")
    return subprocess.run(
        [
            xmlsec1,
            "--verify",
            "--trusted-pem",
            str(ca_file),
            *XMLSEC1_ID_ATTRIBUTES,
            "--verification-time",
            VERIFY_AT.strftime("%Y-%m-%d %H:%M:%S"),
            "--node-xpath",
            f"(//*[local-name()='Signature'])[{index}]",
            str(document),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def signed_example(example: Path, stores: dict[str, KeyStore]) -> tuple[bytes, list[SigningKey]]:
    """An example envelope signed as its kind requires (official and seal, or the seal alone),
    and the keys that signed it, in the order their signatures stand."""
    root = xades.parse_untrusted(example.read_bytes())
    official, seal = keys_for(root, stores)
    signed = etree.tostring(xades.sign_envelope(root, official, seal, NOW))
    return signed, [key for key in (official, seal) if key is not None]


def keys_for(
    root: etree._Element, stores: dict[str, KeyStore]
) -> tuple[SigningKey | None, SigningKey]:
    """The sender's official (None for kinds the seal alone signs) and seal for an envelope."""
    header = root.find(f"{{{ENVELOPE_NS}}}Header")
    kind = profile(header.findtext(f"{{{ENVELOPE_NS}}}Agreement")).kind(
        header.findtext(f"{{{ENVELOPE_NS}}}Kind")
    )
    store = stores[header.findtext(f"{{{ENVELOPE_NS}}}Sender")]
    return (store.official() if kind.signed_by_official else None), store.seal()


def foreign_verdicts(
    command: list[str], document: bytes, signers: list[SigningKey], tmp_path: Path
) -> list[dict[str, Any]]:
    """Another stack's verdict on each signature of ``document``, in document order: runs
    ``command DOCUMENT CERT.pem …`` (one certificate a signature, the expected signer's), which
    prints one JSON line a signature: ``{"signature", "valid", "error"}``."""
    path = tmp_path / "document.xml"
    path.write_bytes(document)
    certificates = pem_files([key.certificate for key in signers], "signer", tmp_path)
    result = subprocess.run(
        [*command, str(path), *certificates],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_each_verifies(verdicts: list[dict[str, Any]], signers: list[SigningKey]) -> None:
    """Another stack's verdicts (:func:`foreign_verdicts`): one a signer, in the order the
    envelope holds them (the official's, then the seal's), each valid."""
    expected = ["official-signature", "seal-signature"][-len(signers) :]
    assert [v["signature"] for v in verdicts] == expected
    assert all(v["valid"] for v in verdicts), verdicts


def pem_files(certificates: list[x509.Certificate], stem: str, tmp_path: Path) -> list[str]:
    """Each certificate as a PEM file ``<stem>-<index>.pem`` in ``tmp_path``, by name."""
    names = []
    for index, certificate in enumerate(certificates):
        path = tmp_path / f"{stem}-{index}.pem"
        path.write_bytes(certificate.public_bytes(Encoding.PEM))
        names.append(str(path))
    return names


def unencrypted_pem(key: SigningKey, path: Path) -> Path:
    """The signing key as unencrypted PKCS#8 PEM at ``path``, for the tools that sign with a
    key file (xmlsec1, the JDK program)."""
    path.write_bytes(
        key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path

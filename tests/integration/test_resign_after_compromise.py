"""Documents waiting in the outbox when a generation that signed them is revoked (issue #19).

Before, a compromise stranded them: the outbox kept sending signatures every peer refused
(REVOKED_NO_POE), and the case system learned nothing. Now the delivery signs such a document
again with the generations in force (same header and body), stores it in place of the old one
and audits ``message.resigned``; with no generation in force it waits in the outbox, retried,
never sent under the revoked signature.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gateway.config import NodeConfig
from gateway.crypto.keys.generations import directory_with_publication, published_from_json
from gateway.crypto.keys.keystore import KeyRole
from gateway.crypto.xades import signer_certificates
from gateway.demo.setup import DemoWorld, build_world
from gateway.exchange.directory import build_directory_xml
from gateway.exchange.directory_signing import sign_directory
from gateway.exchange.node import Node, load_directory
from gateway.exchange.receiving import Disposition
from gateway.exchange.sending import Answer, DeliveryResult, SignerRevoked
from gateway.main import main as gateway
from gateway.store import audit, messages
from gateway.xml.parsing import parse_untrusted
from tests.integration.exchange_world import padded_request, pair_configs
from tests.integration.test_directory_reload import _depositary

ENV = "{urn:cis-exchange:envelope:1}"


def _cli(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = gateway(list(args))
    assert code == 0, (args, out.getvalue())
    return out.getvalue()


def _publish_standby(world: DemoWorld, configs: dict[str, Path], ca: Path) -> None:
    """docs/key-rotation.md, emergency preparation: a standby seal and official generation,
    published by the depositary and imported by both nodes."""
    ru_config = str(configs["RU-FSSP"])
    _cli("keys", "rotate", "seal", "--config", ru_config, "--demo-ca", str(ca))
    _cli("keys", "rotate", "official:chief", "--config", ru_config, "--demo-ca", str(ca))
    published = published_from_json(
        json.loads(_cli("keys", "publish", "--json", "--config", ru_config))
    )
    current = load_directory(NodeConfig.from_toml(configs["KZ-MJ"]), at=datetime.now(UTC))
    version = current.version + 1
    new = directory_with_publication(current, "RU-FSSP", published, version, datetime.now(UTC))
    signed = world.root / f"directory-{version}.xml"
    signed.write_bytes(sign_directory(build_directory_xml(new), _depositary(world).seal()))
    for config in configs.values():
        out = _cli("directory", "import", "--config", str(config), str(signed))
        assert str(version) in out, out


def _revoke(config: Path, ca: Path, key: str, generation: int) -> None:
    _cli(
        *("keys", "revoke", key, "--generation", str(generation), "--reason", "keyCompromise"),
        *("--config", str(config), "--demo-ca", str(ca)),
    )


def _der(node: Node, role: KeyRole, name: str, generation: int) -> bytes:
    pem = node.keys.cert_path(role, name, generation).read_bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    root = tmp_path / "world"
    world = build_world(root, now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ"))
    configs = pair_configs(world, request)
    yield {"world": world, "configs": configs, "ca": world.root / "pki" / "RU" / "ca"}


def _open(configs: dict[str, Path]) -> tuple[Node, Node]:
    ru, kz = (Node.from_config(NodeConfig.from_toml(configs[b])) for b in ("RU-FSSP", "KZ-MJ"))
    return ru, kz


def _take_crl(world: DemoWorld, ca: Path, *nodes: Node) -> None:
    shutil.copy(ca / "crl.pem", world.root / "trust" / "RU-crl.pem")
    for node in nodes:
        node.reload_crls()


def test_a_waiting_document_is_signed_again_by_the_generations_in_force(
    world: dict[str, Any],
) -> None:
    configs, ca = world["configs"], world["ca"]
    _publish_standby(world["world"], configs, ca)
    ru, kz = _open(configs)
    try:
        header, _ = ru.submit(padded_request(), actor="test")  # signed by generation 1
        with ru.store.read() as conn:
            before = messages.get(conn, header.message_id)
            old_document = messages.read_document(conn, header.message_id, ru.kek_ring)
        assert before is not None
        old_signers = signer_certificates(parse_untrusted(old_document))
        assert old_signers[KeyRole.SEAL] == _der(ru, KeyRole.SEAL, "", 1)

        ru_config = configs["RU-FSSP"]
        for key in ("seal", "official:chief"):
            _cli(
                "keys",
                "activate",
                key,
                "--generation",
                "2",
                "--at",
                "now",
                "--config",
                str(ru_config),
            )
            _revoke(ru_config, ca, key, 1)
        _take_crl(world["world"], ca, ru, kz)

        (claim,) = [c for c in ru.claim_due("w") if c.message_id == header.message_id]
        outgoing = ru.outgoing(claim)
        assert outgoing.resigned
        root = parse_untrusted(outgoing.signed)
        signers = signer_certificates(root)
        assert signers == {
            KeyRole.OFFICIAL: _der(ru, KeyRole.OFFICIAL, "chief", 2),
            KeyRole.SEAL: _der(ru, KeyRole.SEAL, "", 2),
        }
        # Header and body byte for byte as the case system submitted them.
        old_root = parse_untrusted(old_document)
        for part in ("Header", "Body"):
            assert etree.tostring(root.find(f"{ENV}{part}")) == etree.tostring(
                old_root.find(f"{ENV}{part}")
            )
        # Stored in place of the old one, and the chain says so.
        with ru.store.read() as conn:
            after = messages.get(conn, header.message_id)
            stored = messages.read_document(conn, header.message_id, ru.kek_ring)
            events = audit.events_in_range(conn, after_seq=0, limit=10_000)
        assert after is not None and stored == outgoing.signed
        assert after.document_sha256 != before.document_sha256
        (resigned,) = [e for e in events if e.kind == "message.resigned"]
        assert resigned.subjects["message"] == header.message_id
        assert resigned.details["previous_sha256"] == before.document_sha256.hex()
        assert resigned.details["sha256"] == after.document_sha256.hex()
        assert resigned.details["revoked"] == "official-chief, seal"

        answer = kz.receive(ru.body_id, outgoing.wire)
        assert answer.disposition is Disposition.ACCEPTED, answer
        result = ru.record_answer(claim, outgoing.signed, answer.body, Answer.RECEIPT)
        assert result.outcome is DeliveryResult.DELIVERED
        # Sent again later (a lost receipt): already in force, not signed a second time.
        assert not ru.outgoing(claim).resigned
    finally:
        ru.close()
        kz.close()


def test_with_no_generation_in_force_the_document_waits_unchanged(
    world: dict[str, Any],
) -> None:
    configs, ca = world["configs"], world["ca"]
    ru, kz = _open(configs)
    try:
        header, _ = ru.submit(padded_request(), actor="test")
        with ru.store.read() as conn:
            before = messages.read_document(conn, header.message_id, ru.kek_ring)
        _revoke(configs["RU-FSSP"], ca, "seal", 1)  # compromised, no standby
        (claim,) = [c for c in ru.claim_due("w") if c.message_id == header.message_id]
        with pytest.raises(SignerRevoked, match="seal") as refused:
            ru.outgoing(claim)
        assert refused.value.code == "SIGNER_REVOKED_NO_SUCCESSOR"
        with ru.store.read() as conn:
            assert messages.read_document(conn, header.message_id, ru.kek_ring) == before
            events = audit.events_in_range(conn, after_seq=0, limit=10_000)
        assert not [e for e in events if e.kind == "message.resigned"]
    finally:
        ru.close()
        kz.close()

"""Lay out a demo world in a folder: PKI per state, the depositary, a signed directory of bodies
and one node configuration per body. Everything here is labelled DEMO — NOT FOR PRODUCTION.

    DIR/trust/*.pem                 CA certificates and CRLs (the trust anchors)
    DIR/directory.xml               the directory of bodies, signed by the depositary
    DIR/<BODY-ID>/node.toml         each node's configuration (usable with gateway … --config)
    DIR/<BODY-ID>/keys/             its keys (PKCS#8, encrypted with the demo passphrase)
    DIR/<BODY-ID>/data/             its database
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.config import KeysSection
from gateway.crypto.at_rest import generate_file_kek
from gateway.crypto.certificates import build_demo_pki
from gateway.crypto.keystore import KeyStore
from gateway.exchange.directory import build_directory_xml
from gateway.exchange.directory_signing import sign_directory
from gateway.model.bodies import DEMO_BODIES, Body
from gateway.model.directory import (
    BodyCertificate,
    BodyName,
    CertificateRole,
    Directory,
    DirectoryBody,
)
from gateway.model.profiles import CIS_ENFORCEMENT, Participation
from gateway.rules.in_force import sc_participations

DEMO_PASSPHRASE = b"demo-passphrase-NOT-FOR-PRODUCTION"
"""Protects the demo's key files. A real node takes its passphrase from a secret store."""

DEPOSITARY_ID = "BY-CISEXCOM"
"""The depositary: the CIS Executive Committee in Minsk (CIS Art. 18, final clause)."""

CIS_IN_FORCE_FROM = date(2026, 1, 1)
"""Fictitious: the demo assumes the CIS agreement in force for Russia and Kazakhstan."""

DIRECTORY_VALIDITY = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class DemoNode:
    body_id: str
    config_path: Path
    peer_port: int
    api_port: int
    console_port: int


@dataclass(frozen=True, slots=True)
class DemoWorld:
    root: Path
    nodes: dict[str, DemoNode]
    directory_file: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_world(root: Path, *, now: datetime, bodies: tuple[str, ...] | None = None) -> DemoWorld:
    """Create (or replace) a demo world under ``root``."""
    chosen = [b for b in DEMO_BODIES if bodies is None or b.id in bodies]
    if root.exists():
        for child in ("pki", "trust", "exchanged", "renditions", *[b.id for b in DEMO_BODIES]):
            shutil.rmtree(root / child, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    trust = root / "trust"
    trust.mkdir()
    states = sorted({b.state for b in chosen})
    pkis = {
        state: build_demo_pki(
            root / "pki" / state,
            [b.id for b in chosen if b.state == state],
            now=now,
            passphrase=DEMO_PASSPHRASE,
        )
        for state in states
    }
    depositary = build_demo_pki(
        root / "pki" / "depositary",
        [DEPOSITARY_ID],
        now=now,
        passphrase=DEMO_PASSPHRASE,
        roles=("seal",),
    )
    for name, pki in [*pkis.items(), ("depositary", depositary)]:
        shutil.copy(pki.ca_file, trust / f"{name}-ca.pem")
        shutil.copy(pki.crl_file, trust / f"{name}-crl.pem")

    nodes: dict[str, DemoNode] = {}
    directory_bodies = []
    for body in chosen:
        pki = pkis[body.state]
        node_dir = root / body.id
        keys_dir = node_dir / "keys"
        shutil.copytree(pki.body_dirs[body.id], keys_dir)
        generate_file_kek(keys_dir / "kek.key", DEMO_PASSPHRASE)
        (node_dir / "passphrase").write_bytes(DEMO_PASSPHRASE)
        (node_dir / "passphrase").chmod(0o600)
        node = DemoNode(body.id, node_dir / "node.toml", free_port(), free_port(), free_port())
        nodes[body.id] = node
        directory_bodies.append(_directory_body(body, keys_dir, pki.ca.certificate, node))

    all_trust = b"".join((trust / f"{s}-ca.pem").read_bytes() for s in states)
    (trust / "bodies-ca.pem").write_bytes(all_trust)
    directory = Directory(
        version=1,
        issued_at=now,
        depositary=DEPOSITARY_ID,
        bodies=tuple(directory_bodies),
    )
    depositary_keys = KeyStore(
        KeysSection(dir=depositary.body_dirs[DEPOSITARY_ID]),
        DEPOSITARY_ID,
        environ={KeysSection(dir=root).passphrase_env: DEMO_PASSPHRASE.decode()},
    )
    signed = sign_directory(build_directory_xml(directory), depositary_keys.seal())
    directory_file = root / "directory.xml"
    directory_file.write_bytes(signed)
    for node in nodes.values():
        node.config_path.write_text(_node_toml(node, states), encoding="utf-8")
    return DemoWorld(root=root, nodes=nodes, directory_file=directory_file)


def _directory_body(
    body: Body, keys_dir: Path, ca_cert: x509.Certificate, node: DemoNode
) -> DirectoryBody:
    def cert(role: str) -> bytes:
        pem = (keys_dir / f"{role}.crt.pem").read_bytes()
        return x509.load_pem_x509_certificates(pem)[0].public_bytes(serialization.Encoding.DER)

    participations: tuple[Participation, ...]
    if CIS_ENFORCEMENT.id in body.agreements:
        participations = (Participation(body.state, CIS_ENFORCEMENT.id, CIS_IN_FORCE_FROM),)
    else:
        participations = tuple(p for p in sc_participations() if p.state == body.state)
    reservations = (
        tuple(r for r in CIS_ENFORCEMENT.reservations if r.state == body.state)
        if CIS_ENFORCEMENT.id in body.agreements
        else ()
    )
    return DirectoryBody(
        id=body.id,
        state=body.state,
        level=body.level,
        names=(BodyName("ru", body.name_ru),),
        endpoint=f"https://127.0.0.1:{node.peer_port}",
        certificates=(
            BodyCertificate(CertificateRole.SEAL, cert("seal")),
            BodyCertificate(
                CertificateRole.OFFICIALS_CA, ca_cert.public_bytes(serialization.Encoding.DER)
            ),
            BodyCertificate(CertificateRole.TLS, cert("tls")),
            BodyCertificate(CertificateRole.ENCRYPTION, cert("encryption")),
        ),
        calendar=body.state,
        reservations=reservations,
        participations=participations,
    )


def _node_toml(node: DemoNode, states: list[str]) -> str:
    crls = ", ".join(f'"../trust/{s}-crl.pem"' for s in states)
    return f"""# DEMO node configuration for {node.body_id} — NOT FOR PRODUCTION.
[node]
body_id = "{node.body_id}"
data_dir = "data"
timezone = "{"Asia/Almaty" if node.body_id.startswith("KZ") else "Europe/Moscow"}"

[keys]
dir = "keys"
passphrase_file = "passphrase"
official = "chief"

[trust]
ca_file = "../trust/bodies-ca.pem"
crl_files = [{crls}]
depositary_ca_file = "../trust/depositary-ca.pem"
directory_file = "../directory.xml"

[peer]
host = "127.0.0.1"
port = {node.peer_port}

[api]
host = "127.0.0.1"
port = {node.api_port}

[console]
host = "127.0.0.1"
port = {node.console_port}
"""

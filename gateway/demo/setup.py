"""Lay out a demo world in a folder: PKI per state, the depositary, a signed directory of bodies
and one node configuration per body. Everything here is labelled DEMO — NOT FOR PRODUCTION.

    DIR/trust/*.pem                 CA certificates and CRLs (the trust anchors)
    DIR/directory.xml               the directory of bodies, signed by the depositary
    DIR/<BODY-ID>/node.toml         each node's configuration (usable with gateway … --config)
    DIR/<BODY-ID>/keys/             its keys (PKCS#8, encrypted with the demo passphrase)
    DIR/<BODY-ID>/data/             its database

Ports are not chosen here: a port picked by binding and closing a socket can be taken by another
process before the node binds it again. The configurations say port 0; each node binds a free
port and reads it back (:class:`gateway.web.runtime.NodeRuntime`), then
:func:`publish_endpoints` re-issues the directory (next version, signed by the depositary) with
the bound peer endpoints and writes the bound ports into each ``node.toml``. Running nodes take
the new directory through their directory watcher, as they would a depositary's update.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.config import KeysSection
from gateway.crypto.algorithms import KeySpec
from gateway.crypto.certificates import ROLES_SIGNING
from gateway.crypto.keys.kek import generate_file_kek
from gateway.crypto.keys.keystore import KeyStore
from gateway.demo.pki import build_demo_pki
from gateway.exchange.directory import build_directory_xml
from gateway.exchange.directory_signing import sign_directory
from gateway.model.bodies import DEMO_BODIES, Body
from gateway.model.directory import (
    LEGACY_SUITES,
    BodyCertificate,
    BodyName,
    CertificateRole,
    Directory,
    DirectoryBody,
    Suite,
)
from gateway.model.profiles import CIS_ENFORCEMENT, Participation
from gateway.rules.clock import DEFAULT_ZONES
from gateway.rules.in_force import sc_participations

DEMO_PASSPHRASE = b"demo-passphrase-NOT-FOR-PRODUCTION"

GOST_DEMO_BODIES = ("RU-VS", "KZ-VS")
"""The demo's pair that exchanges with GOST R 34.10-2012 (the two supreme courts): their
directory entries sign with ``gost2012-256``; the other bodies keep ECDSA."""

_DER = serialization.Encoding.DER
"""Protects the demo's key files. A real node takes its passphrase from a secret store."""

DEPOSITARY_ID = "BY-CISEXCOM"
"""The depositary: the CIS Executive Committee in Minsk (CIS Art. 18, final clause)."""

CIS_IN_FORCE_FROM = date(2026, 1, 1)
"""Fictitious: the demo assumes the CIS agreement in force for Russia and Kazakhstan."""

DIRECTORY_VALIDITY = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class NodePorts:
    """The ports a node listens on; 0 means "not bound yet: pick a free one"."""

    peer: int = 0
    api: int = 0
    console: int = 0


@dataclass(frozen=True, slots=True)
class DemoNode:
    body_id: str
    config_path: Path
    peer_port: int = 0
    """As the directory lists it; 0 until :func:`publish_endpoints` (or ``build_world(ports)``)."""
    api_port: int = 0
    console_port: int = 0


@dataclass(frozen=True, slots=True)
class DemoWorld:
    root: Path
    nodes: dict[str, DemoNode]
    directory_file: Path


def build_world(
    root: Path,
    *,
    now: datetime,
    bodies: tuple[str, ...] | None = None,
    ports: Mapping[str, NodePorts] | None = None,
) -> DemoWorld:
    """Create (or replace) a demo world under ``root``.

    Without ``ports`` every node is configured with port 0 and the directory's endpoints are
    placeholders until :func:`publish_endpoints` names the ports the nodes bound."""
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
    # The supreme courts sign with GOST R 34.10-2012 (issue 18): a GOST demo CA per state
    # certifies their seal and officials; TLS and encryption stay EC (from the state's CA).
    gost_pkis = {
        state: build_demo_pki(
            root / "pki" / f"{state}-gost",
            ids,
            now=now,
            passphrase=DEMO_PASSPHRASE,
            spec=KeySpec.GOST_256,
            roles=ROLES_SIGNING,
        )
        for state in states
        if (ids := [b.id for b in chosen if b.state == state and b.id in GOST_DEMO_BODIES])
    }
    depositary = build_demo_pki(
        root / "pki" / "depositary",
        [DEPOSITARY_ID],
        now=now,
        passphrase=DEMO_PASSPHRASE,
        roles=("seal",),
    )
    trust_names = [*states, *(f"{state}-gost" for state in gost_pkis)]
    named = [*pkis.items(), *((f"{s}-gost", p) for s, p in gost_pkis.items())]
    for name, pki in [*named, ("depositary", depositary)]:
        shutil.copy(pki.ca_file, trust / f"{name}-ca.pem")
        shutil.copy(pki.crl_file, trust / f"{name}-crl.pem")

    nodes: dict[str, DemoNode] = {}
    directory_bodies = []
    for body in chosen:
        pki = pkis[body.state]
        node_dir = root / body.id
        keys_dir = node_dir / "keys"
        shutil.copytree(pki.body_dirs[body.id], keys_dir)
        gost_pki = gost_pkis.get(body.state) if body.id in GOST_DEMO_BODIES else None
        if gost_pki is not None:  # its GOST seal and officials replace the EC ones
            shutil.copytree(gost_pki.body_dirs[body.id], keys_dir, dirs_exist_ok=True)
        generate_file_kek(keys_dir / "kek.key", DEMO_PASSPHRASE)
        (node_dir / "passphrase").write_bytes(DEMO_PASSPHRASE)
        (node_dir / "passphrase").chmod(0o600)
        chosen_ports = (ports or {}).get(body.id, NodePorts())
        node = DemoNode(
            body.id,
            node_dir / "node.toml",
            chosen_ports.peer,
            chosen_ports.api,
            chosen_ports.console,
        )
        nodes[body.id] = node
        directory_bodies.append(
            _directory_body(
                body,
                keys_dir,
                pki.ca.certificate,
                node,
                gost_pki.ca.certificate if gost_pki is not None else None,
            )
        )

    all_trust = b"".join((trust / f"{name}-ca.pem").read_bytes() for name in trust_names)
    (trust / "bodies-ca.pem").write_bytes(all_trust)
    directory = Directory(
        version=1,
        issued_at=now,
        depositary=DEPOSITARY_ID,
        bodies=tuple(directory_bodies),
    )
    directory_file = root / "directory.xml"
    _write_signed(directory_file, directory, _depositary_seal(root))
    for node in nodes.values():
        node.config_path.write_text(_node_toml(node, trust_names), encoding="utf-8")
    return DemoWorld(root=root, nodes=nodes, directory_file=directory_file)


def publish_endpoints(
    root: Path, directory: Directory, ports: Mapping[str, NodePorts], *, now: datetime
) -> Directory:
    """Re-issue ``root``'s directory with the bound peer endpoints of ``ports`` (next version,
    signed by the demo depositary) and write the bound ports into each node's ``node.toml``.

    ``directory`` is the version in force (a running node's ``node.directory``). Returns the new
    version; running nodes load it from the file like any depositary update."""
    bodies = tuple(
        replace(body, endpoint=_endpoint(ports[body.id].peer)) if body.id in ports else body
        for body in directory.bodies
    )
    new = replace(directory, version=directory.version + 1, issued_at=now, bodies=bodies)
    _write_signed(root / "directory.xml", new, _depositary_seal(root))
    for body_id, bound in ports.items():
        _write_ports(root / body_id / "node.toml", bound)
    return new


def _endpoint(peer_port: int) -> str:
    return f"https://127.0.0.1:{peer_port}"


def _depositary_seal(root: Path) -> Any:
    keys = KeyStore(
        KeysSection(dir=root / "pki" / "depositary" / DEPOSITARY_ID),
        DEPOSITARY_ID,
        environ={KeysSection(dir=root).passphrase_env: DEMO_PASSPHRASE.decode()},
    )
    return keys.seal()


def _write_signed(path: Path, directory: Directory, seal: Any) -> None:
    signed = sign_directory(build_directory_xml(directory), seal)
    temporary = path.with_suffix(".new")
    temporary.write_bytes(signed)
    temporary.replace(path)  # atomic: a node's watcher reads the old or the new, never half


def _write_ports(config_path: Path, ports: NodePorts) -> None:
    text = config_path.read_text(encoding="utf-8")
    for section, port in (("peer", ports.peer), ("api", ports.api), ("console", ports.console)):
        text = re.sub(
            rf"(\[{section}\]\n(?:[^\[].*\n)*?port = )\d+", rf"\g<1>{port}", text, count=1
        )
    config_path.write_text(text, encoding="utf-8")


def _directory_body(
    body: Body,
    keys_dir: Path,
    ca_cert: x509.Certificate,
    node: DemoNode,
    gost_ca: x509.Certificate | None = None,
) -> DirectoryBody:
    """The body's directory entry; with ``gost_ca`` it signs with GOST 2012-256 (its officials'
    CA and seal from that CA) and accepts GOST and the legacy suites."""

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
    gost_certificates = (
        (BodyCertificate(CertificateRole.OFFICIALS_CA, gost_ca.public_bytes(_DER)),)
        if gost_ca is not None
        else ()
    )
    return DirectoryBody(
        id=body.id,
        state=body.state,
        level=body.level,
        names=(BodyName("ru", body.name_ru),),
        endpoint=_endpoint(node.peer_port),
        certificates=(
            BodyCertificate(CertificateRole.SEAL, cert("seal")),
            BodyCertificate(
                CertificateRole.OFFICIALS_CA, ca_cert.public_bytes(serialization.Encoding.DER)
            ),
            BodyCertificate(CertificateRole.TLS, cert("tls")),
            BodyCertificate(CertificateRole.ENCRYPTION, cert("encryption")),
            *gost_certificates,
        ),
        calendar=body.state,
        # Published, so both nodes take the day of receipt in the receiver's zone from the
        # signed directory (gateway.rules.clock), not from a default.
        zone=DEFAULT_ZONES.get(body.state, ""),
        reservations=reservations,
        participations=participations,
        signs_with=(Suite.GOST_2012_256,) if gost_ca is not None else (),
        accepts=(Suite.GOST_2012_256, Suite.GOST_2012_512, *LEGACY_SUITES)
        if gost_ca is not None
        else (),
    )


def _node_toml(node: DemoNode, trust_names: list[str]) -> str:
    crls = ", ".join(f'"../trust/{name}-crl.pem"' for name in trust_names)
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

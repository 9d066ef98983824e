"""Setting a node's keys up: a private key in its file or on the token, certified by the demo
CA or written as a certificate request for a national CA, the file KEK, the demo CA itself and
its CRL (``gateway keys init-ca|generate|csr|crl``).

These run before a node has a store (it may be the first thing done on a new host), so they
take the configuration and the key folder, not an :class:`~gateway.app.context.AppContext`,
and record nothing: the audit trail starts with the node. Rotation (a new generation of a key
in use) is :mod:`gateway.app.keys` and is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.app.keys import demo_ca_of
from gateway.config import NodeConfig
from gateway.crypto import algorithms, certificates
from gateway.crypto.algorithms import KeySpec
from gateway.crypto.certificates import CertificateProfile
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.keys.keystore import KeyRole, KeyStore, KeyStoreError, key_stem

__all__ = [
    "Generated",
    "Subject",
    "crl_state",
    "generate",
    "generate_kek",
    "init_demo_ca",
    "write_csr",
]


@dataclass(frozen=True, slots=True)
class Subject:
    """What goes into the certificate besides the body: an official's name and position, a
    TLS key's DNS names and IP addresses."""

    person: str = ""
    title: str = ""
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Generated:
    location: str
    """Where the key lives (a file, or the token's label)."""
    certificate: x509.Certificate | None
    """Issued by the demo CA; None: no demo CA here, a request was written instead."""
    csr_path: Path | None


def _profile(
    config: NodeConfig, role: KeyRole, name: str, subject: Subject, *, demo: bool
) -> CertificateProfile:
    if role is KeyRole.OFFICIAL and not (name and subject.person and subject.title):
        raise KeyStoreError(
            "an official's key needs --name (key name), --person (full name) and --title "
            "(position): they go into the certificate (docs/architecture.md)"
        )
    dns = subject.dns + (certificates.DEMO_TLS_DNS_NAMES if demo else ())
    ips = subject.ips + (certificates.DEMO_TLS_IP_ADDRESSES if demo else ())
    official = role is KeyRole.OFFICIAL
    return CertificateProfile(
        role=str(role),
        body_id=config.node.body_id,
        common_name=subject.person if official else "",
        title=subject.title if official else "",
        demo=demo,
        dns_names=tuple(dict.fromkeys(dns)) if role is KeyRole.TLS else (),
        ip_addresses=tuple(dict.fromkeys(ips)) if role is KeyRole.TLS else (),
    )


def _where(keys: KeyStore, role: KeyRole, requested: str | None) -> str:
    if requested:
        if requested == "token" and not keys.uses_token:
            raise KeyStoreError("--store token: set [keys] pkcs11_module and pkcs11_token_label")
        return requested
    return "token" if keys.uses_token and role is not KeyRole.TLS else "file"


def _new_key(
    keys: KeyStore, role: KeyRole, name: str, spec: KeySpec, where: str | None, *, force: bool
) -> Any:
    """Generate the private key in the file or on the token; return it."""
    stem = key_stem(role, name)
    key_path = keys.key_path(role, name)
    if _where(keys, role, where) == "file":
        if key_path.exists() and not force:
            raise KeyStoreError(
                f"{key_path} exists; pass --force to replace it (old signatures "
                "stay verifiable with the old certificate)"
            )
        key = algorithms.generate_private_key(spec)
        certificates.write_private_key(key_path, key, keys.passphrase())
        return key
    token = keys.token()
    if token.has_key(stem):
        raise KeyStoreError(f"token {keys.keys.pkcs11_token_label!r} already holds {stem!r}")
    return token.generate(stem, spec)


def _write_request(keys: KeyStore, role: KeyRole, name: str, key: Any, profile: Any) -> Path:
    csr = certificates.build_csr(key, profile)
    path = keys.csr_path(role, name)
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


def generate(
    config: NodeConfig,
    keys: KeyStore,
    role: KeyRole,
    name: str,
    spec: KeySpec,
    subject: Subject,
    now: datetime,
    *,
    where: str | None = None,
    force: bool = False,
) -> Generated:
    """A new key: certified at once by the node's demo CA when there is one, else with a
    certificate request written beside it for the national CA."""
    ca = demo_ca_of(keys)
    profile = _profile(config, role, name, subject, demo=ca is not None)
    key = _new_key(keys, role, name, spec, where, force=force)
    if ca is None:
        return Generated(
            keys.location(role, name), None, _write_request(keys, role, name, key, profile)
        )
    cert = ca.issue(key.public_key(), profile, now=now)
    keys.cert_path(role, name).write_bytes(certificates.pem_bundle([cert, ca.certificate]))
    return Generated(keys.location(role, name), cert, None)


def write_csr(
    config: NodeConfig,
    keys: KeyStore,
    role: KeyRole,
    name: str,
    spec: KeySpec,
    subject: Subject,
    *,
    where: str | None = None,
) -> tuple[Path, x509.Name]:
    """A certificate request for the key (made first when there is none); its path and the
    subject it asks for."""
    profile = _profile(config, role, name, subject, demo=False)
    stem = key_stem(role, name)
    if keys.key_path(role, name).exists():
        key = keys.read_private_key_file(keys.key_path(role, name), stem)
    elif keys.uses_token and keys.token().has_key(stem):
        key = keys.token().private_key(stem)
    else:
        key = _new_key(keys, role, name, spec, where, force=False)
    path = _write_request(keys, role, name, key, profile)
    return path, x509.load_pem_x509_csr(path.read_bytes()).subject


def generate_kek(keys: KeyStore) -> str:
    """The node's first file KEK; its key id. A node whose KEKs were rotated, or that has one,
    is refused: replacing it would make stored data unreadable."""
    from gateway.crypto.keys.kek import generate_file_kek
    from gateway.crypto.keys.kek_ring import ring_manifest_path

    if ring_manifest_path(keys.directory).exists():
        raise KeyStoreError(
            f"{ring_manifest_path(keys.directory)} exists: this node's KEKs were rotated; "
            "make a new one with `gateway keys rotate kek`"
        )
    if keys.kek_path.exists():
        raise KeyStoreError(
            f"{keys.kek_path} exists; replacing it would make stored data "
            "unreadable (rotation re-wraps data keys; --force does not apply)"
        )
    keys.directory.mkdir(parents=True, exist_ok=True)
    key_id: str = generate_file_kek(keys.kek_path, keys.passphrase())
    return key_id


def init_demo_ca(keys: KeyStore, name: str, spec: KeySpec, now: datetime) -> DemoCA:
    """A demo CA in the node's key folder (DEMO ONLY: it certifies what the demo nodes trust)."""
    if (keys.demo_ca_dir / DemoCA.KEY_FILE).exists():
        raise KeyStoreError(f"{keys.demo_ca_dir}: a demo CA already exists")
    keys.demo_ca_dir.mkdir(parents=True, exist_ok=True)
    ca = DemoCA.create(now=now, name=name, spec=spec, directory=keys.demo_ca_dir)
    ca.save(keys.passphrase(), now=now)
    return ca


def crl_state(keys: KeyStore, now: datetime) -> tuple[Path, int, datetime | None]:
    """Re-issue the demo CA's CRL now; its path, how many it revokes and its next update."""
    ca = demo_ca_of(keys)
    if ca is None:
        raise KeyStoreError(f"no demo CA in {keys.demo_ca_dir}; only the demo CA issues CRLs here")
    ca.save(keys.passphrase(), now=now)
    path = keys.demo_ca_dir / DemoCA.CRL_FILE
    crl = x509.load_pem_x509_crl(path.read_bytes())
    return path, len(list(crl)), crl.next_update_utc

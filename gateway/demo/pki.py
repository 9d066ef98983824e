"""The demo PKI: a demo CA and, for each body, its keys and certificates laid out in a keys
folder as :class:`~gateway.crypto.keys.keystore.KeyStore` reads them. NOT FOR PRODUCTION.

It lives with the demo, above ``gateway.crypto``: it writes key folders through the keystore.
The demo CA itself is ``gateway.crypto.demo_ca`` (the node's key commands use it too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.crypto import algorithms
from gateway.crypto.algorithms import KeySpec
from gateway.crypto.certificates import (
    DEMO_TLS_DNS_NAMES,
    DEMO_TLS_IP_ADDRESSES,
    ROLES_CERTIFIED,
    CertificateProfile,
)
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.keys.keystore import write_file_key


@dataclass(frozen=True, slots=True)
class DemoOfficial:
    """An authorised person to create a key for."""

    name: str
    """Key name (``ivanov``): the file is ``official-ivanov``."""
    person: str
    """CN: the person's full name."""
    title: str
    """The position."""


DEFAULT_OFFICIALS = (DemoOfficial("chief", "Иванов Иван Иванович", "Начальник отдела"),)


@dataclass(frozen=True, slots=True)
class DemoPKI:
    """What :func:`build_demo_pki` made: the CA and one key folder per body."""

    ca: DemoCA
    ca_file: Path
    """PEM of the CA certificate: the trust anchor for every node's ``[trust] ca_file``."""
    crl_file: Path
    body_dirs: dict[str, Path]
    """Body id → keys folder (use as ``[keys] dir``)."""
    passphrase: bytes


def build_demo_pki(
    directory: Path,
    body_ids: Sequence[str],
    *,
    now: datetime,
    passphrase: bytes,
    officials: Sequence[DemoOfficial] = DEFAULT_OFFICIALS,
    spec: KeySpec = algorithms.DEFAULT_KEY_SPEC,
    roles: Sequence[str] = ROLES_CERTIFIED,
) -> DemoPKI:
    """Build a demo CA in ``directory/ca`` and, for each body, keys and certificates in
    ``directory/<BODY-ID>`` laid out as :class:`~gateway.crypto.keys.keystore.KeyStore` reads them.
    NOT FOR PRODUCTION."""
    ca = DemoCA.create(now=now, spec=spec, directory=directory / "ca")
    ca.directory.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    ca.save(passphrase, now=now)
    body_dirs: dict[str, Path] = {}
    for body_id in body_ids:
        body_dir = directory / body_id
        body_dir.mkdir(parents=True, exist_ok=True)
        for role in roles:
            people = officials if role == "official" else (None,)
            for official in people:
                profile = CertificateProfile(
                    role=role,
                    body_id=body_id,
                    common_name=official.person if official else "",
                    title=official.title if official else "",
                    demo=True,
                    dns_names=DEMO_TLS_DNS_NAMES if role == "tls" else (),
                    ip_addresses=DEMO_TLS_IP_ADDRESSES if role == "tls" else (),
                )
                key = algorithms.generate_private_key(spec)
                cert = ca.issue(key.public_key(), profile, now=now)
                write_file_key(
                    body_dir,
                    role,
                    official.name if official else "",
                    key,
                    [cert, ca.certificate],
                    passphrase,
                )
        body_dirs[body_id] = body_dir
    return DemoPKI(
        ca=ca,
        ca_file=directory / "ca" / DemoCA.CERT_FILE,
        crl_file=directory / "ca" / DemoCA.CRL_FILE,
        body_dirs=body_dirs,
        passphrase=passphrase,
    )

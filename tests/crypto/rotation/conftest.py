"""A node folder for the rotation tests: keys from a demo PKI, its CA, a node.toml, a store.

Each test gets its own copy (the CLI writes into the keys folder and the CA's CRL). The PKI is
built once per run at :data:`PKI_TIME`; tests that go through the CLI work at the wall clock
(the CLI reads it), tests of the library pass pinned times.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from gateway.app.audit_checkpoints import (
    Checkpoint,
    checkpoint_file_line,
    create_checkpoint,
    parse_checkpoint_line,
)
from gateway.config import NodeConfig
from gateway.crypto import algorithms
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.keys.kek import generate_file_kek
from gateway.crypto.keys.keystore import KeyStore, SigningKey
from gateway.crypto.statements import CHECKPOINT_FORMAT, SignedStatement, sign_statement
from gateway.demo.pki import DemoPKI, build_demo_pki
from gateway.store import Store, migrate, open_store
from gateway.store import audit as audit_store

BODY = "RU-FSSP"
PEER = "KZ-MJ"
PASSPHRASE = b"rotation-test-passphrase"
CRASH_TEST_SCRYPT = 14
"""scrypt cost of the crash tests' file KEK: 16 MiB, fast (the production default is slower)."""
PKI_TIME = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
"""The PKI is made an hour before the run: CLI steps at the wall clock fall in its validity."""


@dataclass(frozen=True)
class NodeDir:
    root: Path
    config_path: Path
    keys_dir: Path
    ca_dir: Path

    @property
    def config(self) -> NodeConfig:
        return NodeConfig.from_toml(self.config_path)

    def keystore(self, environ: dict[str, str] | None = None) -> KeyStore:
        return KeyStore.from_config(self.config, environ=environ or {})

    def ca(self) -> DemoCA:
        return DemoCA.load(self.ca_dir, PASSPHRASE)


@pytest.fixture(scope="session")
def demo_pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPKI:
    return build_demo_pki(
        tmp_path_factory.mktemp("rotation-pki"), [BODY, PEER], now=PKI_TIME, passphrase=PASSPHRASE
    )


def make_node(
    demo_pki: DemoPKI, root: Path, *, token: tuple[str, str, str] | None = None
) -> NodeDir:
    """A node folder for ``BODY`` under ``root`` (keys copied from the PKI)."""
    keys_dir = root / "keys"
    shutil.copytree(demo_pki.body_dirs[BODY], keys_dir)
    assert demo_pki.ca.directory is not None
    ca_dir = root / "ca"
    shutil.copytree(demo_pki.ca.directory, ca_dir)
    (root / "passphrase").write_bytes(PASSPHRASE)
    (root / "passphrase").chmod(0o600)
    token_lines = ""
    if token is not None:
        module, label, _pin = token
        token_lines = (
            f'pkcs11_module = "{module}"\npkcs11_token_label = "{label}"\n'
            'pkcs11_pin_env = "GATEWAY_TEST_ROTATION_PIN"\n'
        )
    config = root / "node.toml"
    config.write_text(
        f"""[node]
body_id = "{BODY}"
data_dir = "data"

[keys]
dir = "keys"
passphrase_file = "passphrase"
official = "chief"
{token_lines}
[trust]
ca_file = "ca/{DemoCA.CERT_FILE}"
crl_files = ["ca/{DemoCA.CRL_FILE}"]
""",
        encoding="utf-8",
    )
    return NodeDir(root, config, keys_dir, ca_dir)


@pytest.fixture
def node(demo_pki: DemoPKI, tmp_path: Path) -> NodeDir:
    return make_node(demo_pki, tmp_path)


@functools.cache
def _tsa_key() -> rsa.RSAPrivateKey:
    # pyHanko's DummyTimeStamper signs with RSA only; 2048 bits keeps it fast.
    return rsa.generate_private_key(65537, 2048)


def make_tsa(ca: DemoCA, *, at: datetime) -> DummyTimeStamper:
    """An in-process TSA certified by ``ca`` answering with genTime ``at`` (no network)."""
    key = _tsa_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Rotation test TSA")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - timedelta(days=1))
        .not_valid_after(at + timedelta(days=3650))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, algorithms.cert_hash_for(ca.key.public_key()))
    )
    der_key = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return DummyTimeStamper(
        tsa_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        tsa_key=asn1_keys.PrivateKeyInfo.load(der_key),
        fixed_dt=at,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def node_on_each_store(
    request: pytest.FixtureRequest, demo_pki: DemoPKI, tmp_path: Path
) -> Iterator[tuple[NodeDir, Store]]:
    """A node folder whose store is SQLite or a fresh PostgreSQL schema (migrated), with a file
    KEK: for the crash-point tests, which run on both stores."""
    node = make_node(demo_pki, tmp_path)
    generate_file_kek(node.keys_dir / "kek.key", PASSPHRASE, scrypt_log2_n=CRASH_TEST_SCRYPT)
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_schema")("rotation")
        with node.config_path.open("a", encoding="utf-8") as config:
            config.write(f'\n[database]\nurl = "{url}"\n')
    else:
        (node.root / "data").mkdir(exist_ok=True)
    store = open_store(node.config.database_url)
    migrate(store.engine)
    yield node, store
    store.dispose()


def checkpoint_signed_now(store: Store, seal: SigningKey) -> SignedStatement:
    """A checkpoint statement over the store's chain head, signed by ``seal`` and dated now:
    what the holder of a revoked seal key can still make."""
    with store.read() as conn:
        seq, digest = audit_store.head(conn)
    return sign_statement(
        seal,
        {
            "format": CHECKPOINT_FORMAT,
            "body_id": BODY,
            "seq": seq,
            "hash": digest.hex(),
            "at": datetime.now(UTC).isoformat(),
        },
    )


def timestamped_checkpoint(node: NodeDir, store: Store) -> Checkpoint:
    """A checkpoint of the seal in force, with a TSA's token over its signature (the TSA
    certified by the node's CA, answering with the present time), as `[tsa] url` makes one."""
    keys = node.keystore()
    try:
        now = datetime.now(UTC)
        made = create_checkpoint(
            store, keys.seal(), actor="test", now=now, timestamper=make_tsa(node.ca(), at=now)
        )
    finally:
        keys.close()
    assert made.timestamp is not None
    assert parse_checkpoint_line(checkpoint_file_line(made), "line").timestamp == made.timestamp
    return made

"""Fixtures: a migrated store on SQLite and PostgreSQL (from tests/store), a seal key, a node
configuration pointing at the store so that the ``gateway`` commands run against it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.config import KeysSection
from gateway.crypto.keys.kek import KekRing, generate_file_kek
from gateway.crypto.keys.kek_ring import load_kek_ring
from gateway.crypto.keys.keystore import KeyStore, SigningKey
from gateway.demo.pki import build_demo_pki
from gateway.store import Store
from tests.app.purge.world import BODY, PASSPHRASE, T0


@pytest.fixture(scope="session")
def seal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo CA and this body's seal (valid around the test times). NOT FOR PRODUCTION."""
    root = tmp_path_factory.mktemp("purge-pki")
    pki = build_demo_pki(
        root, [BODY], now=T0 - timedelta(days=1), passphrase=PASSPHRASE.encode(), roles=("seal",)
    )
    body_dir = pki.body_dirs[BODY]
    (body_dir / "passphrase").write_text(PASSPHRASE + "\n", encoding="utf-8")
    # The node's KEK, so that `gateway purge` (and `serve`'s job) can destroy period keys.
    generate_file_kek(
        body_dir / "kek.key", PASSPHRASE.encode(), key_id="kek-test-1", scrypt_log2_n=14
    )
    return body_dir


@pytest.fixture(scope="session")
def node_ring(seal_dir: Path) -> Iterator[KekRing]:
    keys = KeyStore(
        KeysSection(dir=seal_dir, passphrase_file=seal_dir / "passphrase"), BODY, environ={}
    )
    yield load_kek_ring(keys)
    keys.close()


@pytest.fixture
def ring(node_ring: KekRing) -> KekRing:
    """The node's own KEK ring: what the tests store under is what the commands open."""
    return node_ring


@pytest.fixture(scope="session")
def seal(seal_dir: Path) -> Iterator[SigningKey]:
    keys = KeyStore(
        KeysSection(dir=seal_dir, passphrase_file=seal_dir / "passphrase"), BODY, environ={}
    )
    yield keys.seal()
    keys.close()


def url_of(opened: Store) -> str:
    return opened.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def node_toml(tmp_path: Path, store: Store, seal_dir: Path) -> Path:
    """A node configuration on the test store; one catch-all policy 'p': 1 year after received."""
    path = tmp_path / "node.toml"
    path.write_text(
        f"""
[node]
body_id = "{BODY}"
data_dir = "{tmp_path}"

[database]
url = "{url_of(store)}"

[keys]
dir = "{seal_dir}"
passphrase_file = "{seal_dir / "passphrase"}"

[[retention.policy]]
name = "p"
counts_from = "received"
keep = "1 year"
""",
        encoding="utf-8",
    )
    return path

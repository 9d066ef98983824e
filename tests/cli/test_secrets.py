"""Secrets come from a file, a systemd credential or an environment variable, never from
NODE.toml: each source is used (and the key really decrypts, the URL really carries the
password), the file wins over the credential, the credential over the variable, and a
password written into ``[database] url`` is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from gateway.cli.errors import ExitCode
from gateway.config import KeysSection, NodeConfig
from gateway.credentials import CREDENTIALS_DIRECTORY
from gateway.crypto.keys.keystore import BadPassphrase, KeyStore, PassphraseMissing
from gateway.demo.setup import DEMO_PASSPHRASE, DemoWorld
from gateway.model.problems import ConfigurationError
from tests.cli.conftest import gateway, variant

PG = "postgresql+psycopg://gateway@127.0.0.1:5432/test"


def _secret_file(path: Path, value: bytes) -> Path:
    path.write_bytes(value + b"\n")
    path.chmod(0o600)
    return path


def _credentials(tmp_path: Path, name: str, value: bytes) -> dict[str, str]:
    folder = tmp_path / "credentials"
    folder.mkdir(exist_ok=True)
    _secret_file(folder / name, value)
    return {CREDENTIALS_DIRECTORY: str(folder)}


def _keystore(world: DemoWorld, environ: dict[str, str], **keys: object) -> KeyStore:
    folder = world.nodes["RU-FSSP"].config_path.parent / "keys"
    return KeyStore(KeysSection(dir=folder, official="chief", **keys), "RU-FSSP", environ=environ)


def test_the_key_passphrase_from_each_source_decrypts_the_seal(
    world: DemoWorld, tmp_path: Path
) -> None:
    secret = DEMO_PASSPHRASE
    sources = {
        "variable": _keystore(world, {"GATEWAY_KEY_PASSPHRASE": secret.decode()}),
        "file": _keystore(world, {}, passphrase_file=_secret_file(tmp_path / "p", secret)),
        "credential": _keystore(world, _credentials(tmp_path, "key-passphrase", secret)),
    }
    for name, store in sources.items():
        assert store.seal().certificate is not None, name


def test_file_before_credential_before_variable(world: DemoWorld, tmp_path: Path) -> None:
    wrong = {"GATEWAY_KEY_PASSPHRASE": "wrong"}
    credential = _credentials(tmp_path, "key-passphrase", DEMO_PASSPHRASE)
    assert _keystore(world, {**wrong, **credential}).seal()
    bad_file = _secret_file(tmp_path / "bad", b"wrong")
    with pytest.raises(BadPassphrase, match="the file"):
        _keystore(world, credential, passphrase_file=bad_file).seal()


def test_no_source_names_every_source(world: DemoWorld) -> None:
    with pytest.raises(PassphraseMissing) as missing:
        _keystore(world, {}).seal()
    for source in ("GATEWAY_KEY_PASSPHRASE", "passphrase_file", "key-passphrase"):
        assert source in str(missing.value)


def _pg_config(tmp_path: Path, **database: str) -> NodeConfig:
    lines = "".join(f'{key} = "{value}"\n' for key, value in {"url": PG, **database}.items())
    path = tmp_path / "node.toml"
    path.write_text(f'[node]\nbody_id = "RU-FSSP"\n[database]\n{lines}')
    return NodeConfig.from_toml(path)


def test_the_database_password_from_each_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CREDENTIALS_DIRECTORY, raising=False)
    monkeypatch.delenv("GATEWAY_DB_PASSWORD", raising=False)
    assert make_url(_pg_config(tmp_path).database_url).password is None

    monkeypatch.setenv("GATEWAY_DB_PASSWORD", "from-variable p@ss/:")
    url = make_url(_pg_config(tmp_path).database_url)
    assert url.password == "from-variable p@ss/:"  # quoted in the URL, read back whole
    assert (url.host, url.database, url.username) == ("127.0.0.1", "test", "gateway")

    credential = _credentials(tmp_path, "database-password", b"from-credential")
    monkeypatch.setenv(CREDENTIALS_DIRECTORY, credential[CREDENTIALS_DIRECTORY])
    assert make_url(_pg_config(tmp_path).database_url).password == "from-credential"

    secret = _secret_file(tmp_path / "db-password", b"from-file")
    config = _pg_config(tmp_path, password_file=str(secret))
    assert make_url(config.database_url).password == "from-file"


def test_a_password_written_into_the_url_is_refused(world: DemoWorld, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"\[database\].*password"):
        (tmp_path / "x").mkdir()
        _pg_config(tmp_path / "x", url="postgresql+psycopg://gateway:hunter2@db/test")
    config = variant(
        world, tmp_path, **{"database.url": '"postgresql+psycopg://gateway:hunter2@db/gw"'}
    )
    run = gateway("tokens", "list", "--config", str(config))
    assert run.code == ExitCode.USAGE, run.err
    assert "[CONFIG_INVALID]" in run.err and "GATEWAY_DB_PASSWORD" in run.err
    assert "hunter2" not in run.err

"""``gateway check-config``: one line per check, exit 0 on a good node; on a bad one the
failing check's line names the file or setting and what to do, and the process ends with the
error line and the exit code of the first failure (2 configuration, 3 unavailable)."""

from __future__ import annotations

import re
import shutil
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from gateway.app.checks import run_checks
from gateway.cli.errors import ExitCode
from gateway.config import NodeConfig
from gateway.crypto.trust import CLOCK_SKEW
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import load_directory
from tests.cli.conftest import Run, gateway, variant
from tests.cli.test_errors import _require_postgres

LINE = re.compile(r"^(ok|warn|FAIL)\s+\S[^:]*: .+$")


def _check(config: Path) -> Run:
    return gateway("check-config", "--config", str(config))


def _failures(run: Run) -> list[str]:
    return [line for line in run.out.splitlines() if line.startswith("FAIL")]


def _assert_failed(run: Run, exit_code: ExitCode, code: str) -> str:
    assert run.code == exit_code, run.out + run.err
    assert "Traceback" not in run.err, run.err
    assert run.err.strip().endswith("[CONFIG_CHECK_FAILED]"), run.err
    failures = _failures(run)
    assert failures and failures[0].endswith(f"[{code}]"), run.out
    return failures[0]


def _own_keys(world: DemoWorld, tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    shutil.copytree(world.nodes["RU-FSSP"].config_path.parent / "keys", keys)
    return keys


def test_a_good_node_passes_every_check(world: DemoWorld, tmp_path: Path) -> None:
    run = _check(variant(world, tmp_path))
    assert run.code == 0, run.out + run.err
    lines = run.out.splitlines()
    assert all(LINE.match(line) for line in lines), run.out
    assert not _failures(run)
    checks = {line.split()[1].rstrip(":") for line in lines}
    for expected in ("config", "timezone", "data-dir", "trust-file", "private-key-file"):
        assert expected in checks, run.out
    assert "directory" in checks and "database" in checks and "secret" in checks
    assert "limits" in checks  # [limits] as the directory publishes them (the defaults)
    assert sum(line.startswith("ok    key ") for line in lines) == 4  # seal, tls, enc, official


def test_limits_other_than_the_published_ones_warn(world: DemoWorld, tmp_path: Path) -> None:
    run = _check(variant(world, tmp_path, **{"limits.max_attachment_bytes": "1000000"}))
    (line,) = [line for line in run.out.splitlines() if " limits:" in line]
    assert line.startswith("warn  limits:") and "1000000" in line and "2147483648" in line


def test_a_private_key_others_may_read(world: DemoWorld, tmp_path: Path) -> None:
    keys = _own_keys(world, tmp_path)
    (keys / "seal.key.pem").chmod(0o644)
    run = _check(variant(world, tmp_path, **{"keys.dir": f'"{keys}"'}))
    line = _assert_failed(run, ExitCode.USAGE, "FILE_PERMISSIONS")
    assert "seal.key.pem" in line and "0644" in line and "chmod 600" in line


def test_an_unknown_time_zone(world: DemoWorld, tmp_path: Path) -> None:
    run = _check(variant(world, tmp_path, **{"node.timezone": '"Europe/Atlantis"'}))
    line = _assert_failed(run, ExitCode.USAGE, "CONFIG_INVALID")
    assert line.startswith("FAIL  config:") and "Europe/Atlantis" in line


def test_a_missing_trust_file(world: DemoWorld, tmp_path: Path) -> None:
    missing = tmp_path / "absent-ca.pem"
    run = _check(variant(world, tmp_path, **{"trust.ca_file": f'"{missing}"'}))
    line = _assert_failed(run, ExitCode.UNAVAILABLE, "FILE_NOT_FOUND")
    assert "ca_file" in line and str(missing) in line


def test_a_directory_whose_signature_does_not_verify(world: DemoWorld, tmp_path: Path) -> None:
    forged = tmp_path / "directory.xml"
    text = world.directory_file.read_text("utf-8")
    forged.write_text(text.replace("RU-FSSP", "RU-FSSX", 1), "utf-8")
    run = _check(variant(world, tmp_path, **{"trust.directory_file": f'"{forged}"'}))
    assert run.code != 0, run.out
    (line,) = [x for x in _failures(run) if x.startswith("FAIL  directory:")]
    assert line.endswith("]"), line


def test_a_wrong_passphrase(world: DemoWorld, tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("not the passphrase\n")
    secret.chmod(0o600)
    run = _check(variant(world, tmp_path, **{"keys.passphrase_file": f'"{secret}"'}))
    assert run.code == ExitCode.USAGE, run.out
    keys = [x for x in _failures(run) if x.startswith("FAIL  key ")]
    assert len(keys) == 4 and all("does not decrypt" in x for x in keys), run.out


def test_an_unreachable_database_and_a_port_in_use(world: DemoWorld, tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nobody = closed.getsockname()[1]  # bound, never listening: connections are refused
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            url = f'"postgresql+psycopg://gateway@127.0.0.1:{nobody}/gateway"'
            run = _check(variant(world, tmp_path, **{"database.url": url, "api.port": str(port)}))
    line = _assert_failed(run, ExitCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
    assert line.startswith("FAIL  database:")
    (ports,) = [x for x in _failures(run) if x.startswith("FAIL  port api")]
    assert str(port) in ports and ports.endswith("[PORT_IN_USE]")


def test_certificates_expired_or_ending_soon(world: DemoWorld, tmp_path: Path) -> None:
    config = NodeConfig.from_toml(variant(world, tmp_path))
    pem = (config.keys.dir / "seal.crt.pem").read_bytes()
    ends = x509.load_pem_x509_certificate(pem).not_valid_after_utc
    later = {f.check: f for f in run_checks(config, now=ends + timedelta(days=2))}
    assert later["key seal"].state == "FAIL" and later["key seal"].code == "CERT_EXPIRED"
    soon = {f.check: f for f in run_checks(config, now=ends - timedelta(days=10))}
    assert soon["key seal"].state == "warn" and "дн." in soon["key seal"].detail


def test_the_example_configuration_loads_with_every_section() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "node.example.toml"
    config = NodeConfig.from_toml(example)
    assert config.logging.format == "text" and config.database.password_file is None
    assert config.keys.passphrase_file is None  # the secret's source is the systemd credential


def test_a_stale_crl_fails_when_revocation_is_required(world: DemoWorld, tmp_path: Path) -> None:
    config = NodeConfig.from_toml(variant(world, tmp_path))
    crl = x509.load_pem_x509_crl(config.trust.crl_files[0].read_bytes())
    later = crl.next_update_utc + timedelta(hours=1)
    stale = [f for f in run_checks(config, now=later) if f.check == "crl"]
    assert stale and all(f.state == "FAIL" and f.code == "CRL_STALE" for f in stale), stale
    fresh = [f for f in run_checks(config) if f.check == "crl"]
    assert len(fresh) == len(config.trust.crl_files) and all(f.state == "ok" for f in fresh)


def test_a_key_whose_certificate_does_not_chain_to_the_trusted_cas(
    world: DemoWorld, tmp_path: Path
) -> None:
    other_ca = world.root / "trust" / "depositary-ca.pem"  # a CA, but not the bodies' one
    run = _check(variant(world, tmp_path, **{"trust.ca_file": f'"{other_ca}"'}))
    assert run.code == ExitCode.USAGE, run.out
    keys = [x for x in _failures(run) if x.startswith("FAIL  key ")]
    assert len(keys) == 4 and all(x.endswith("[CERT_CHAIN]") for x in keys), run.out


def _clock(config: Path, now: datetime) -> list[tuple[str, str]]:
    found = run_checks(NodeConfig.from_toml(config), now, skip=frozenset({"ports"}))
    return [(f.state, f.detail) for f in found if f.check == "clock"]


@pytest.mark.postgres
def test_a_clock_off_the_database_servers_fails(world: DemoWorld, tmp_path: Path) -> None:
    _require_postgres()
    url = '"postgresql+psycopg://postgres@127.0.0.1:5432/test"'
    config = variant(world, tmp_path, **{"database.url": url})
    now = datetime.now(UTC)
    assert ("ok", "часами сервера PostgreSQL") in [
        (s, d.split(":")[0]) for s, d in _clock(config, now)
    ]
    ahead = _clock(config, now + CLOCK_SKEW + timedelta(minutes=1))
    assert [s for s, d in ahead if "PostgreSQL" in d] == ["FAIL"], ahead
    real = _check(config)
    assert not [line for line in _failures(real) if "clock" in line], real.out


def test_a_clock_behind_the_directorys_signature_fails(world: DemoWorld, tmp_path: Path) -> None:
    config = variant(world, tmp_path)
    issued = NodeConfig.from_toml(config)
    directory = load_directory(issued, at=datetime.now(UTC))
    behind = _clock(config, directory.issued_at - CLOCK_SKEW - timedelta(minutes=1))
    (failure,) = [d for s, d in behind if s == "FAIL"]
    assert "IssuedAt" in failure and "[CLOCK_SKEW]" not in failure
    run = run_checks(issued, directory.issued_at - timedelta(hours=1), skip=frozenset({"ports"}))
    (finding,) = [f for f in run if f.check == "clock" and f.state == "FAIL"]
    assert finding.code == "CLOCK_SKEW" and finding.exit_code == ExitCode.UNAVAILABLE
    # A clock set back leaves the node's own files "in the future": a warning.
    assert any(s == "warn" and "mtime" in d for s, d in behind), behind

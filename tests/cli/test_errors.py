"""Every expected failure of the ``gateway`` command is one line, ``ошибка: … [CODE]``, with the
exit code of docs/operations.md (0 ok, 1 refused or invalid, 2 usage or configuration, 3 a
dependency unavailable) and no traceback unless ``--debug`` asks for one.

Each case here printed a Python traceback before (issue "Operable in the field"). The commands
run as processes of the real console script against a real demo world."""

from __future__ import annotations

import os
import re
import socket
import stat
from pathlib import Path

import pytest

from gateway.cli.errors import ExitCode, Failure, explain
from gateway.demo.setup import DemoWorld
from gateway.schemas import VALID_EXAMPLES_DIR
from tests.cli.conftest import Run, gateway, variant
from tests.tooling import IN_CI

ERROR_LINE = re.compile(r"^ошибка: .+ \[[A-Z][A-Z0-9_]+\]$", re.MULTILINE)


def assert_error(run: Run, exit_code: ExitCode, code: str) -> None:
    """One error line with ``code``, the exit code, and no traceback."""
    assert run.code == exit_code, run
    assert "Traceback" not in run.err, run.err
    lines = [line for line in run.err.splitlines() if line.startswith("ошибка: ")]
    assert len(lines) == 1, run.err
    assert ERROR_LINE.match(lines[0]), lines[0]
    assert lines[0].endswith(f"[{code}]"), lines[0]


def test_port_in_use_is_a_dependency_unavailable(world: DemoWorld, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = variant(world, tmp_path, **{"peer.port": str(port)})
        run = gateway("serve", "--config", str(config))
    assert_error(run, ExitCode.UNAVAILABLE, "PORT_IN_USE")
    assert str(port) in run.err and "port" in run.err


def test_missing_directory_file(world: DemoWorld, tmp_path: Path) -> None:
    missing = tmp_path / "absent" / "directory.xml"
    config = variant(world, tmp_path, **{"trust.directory_file": f'"{missing}"'})
    for command in (("directory", "show"), ("serve",)):
        run = gateway(*command, "--config", str(config))
        assert_error(run, ExitCode.UNAVAILABLE, "FILE_NOT_FOUND")
        assert str(missing) in run.err


def test_missing_depositary_ca_is_named_by_its_setting(world: DemoWorld, tmp_path: Path) -> None:
    missing = tmp_path / "depositary-ca.pem"
    config = variant(world, tmp_path, **{"trust.depositary_ca_file": f'"{missing}"'})
    run = gateway("serve", "--config", str(config))
    assert_error(run, ExitCode.UNAVAILABLE, "FILE_NOT_FOUND")
    assert "[trust] depositary_ca_file" in run.err and str(missing) in run.err
    unset = variant(world, tmp_path)
    text = unset.read_text("utf-8").splitlines()
    unset.write_text(
        "\n".join(line for line in text if not line.startswith("depositary_ca_file")),
        encoding="utf-8",
    )
    run = gateway("directory", "show", "--config", str(unset))
    assert_error(run, ExitCode.USAGE, "CONFIG_INVALID")
    assert "depositary_ca_file" in run.err


def _require_postgres() -> None:
    import sqlalchemy as sa

    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    try:
        with sa.create_engine(url, poolclass=sa.NullPool).connect():
            pass
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL at {url} is not reachable ({exc.orig})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.postgres
def test_database_that_does_not_exist(world: DemoWorld, tmp_path: Path) -> None:
    _require_postgres()  # the server answers; the database it is asked for does not exist
    url = '"postgresql+psycopg://postgres@127.0.0.1:5432/gateway_no_such_database"'
    config = variant(world, tmp_path, **{"database.url": url})
    run = gateway("tokens", "add", "--config", str(config), "--label", "x", "--role", "operator")
    assert_error(run, ExitCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
    assert "gateway_no_such_database" in run.err


def test_database_that_cannot_be_reached(world: DemoWorld, tmp_path: Path) -> None:
    # Bound but not listening: connections are refused, and nobody else can take the port.
    with socket.socket() as closed_door:
        closed_door.bind(("127.0.0.1", 0))
        port = closed_door.getsockname()[1]
        url = f'"postgresql+psycopg://postgres@127.0.0.1:{port}/test"'
        config = variant(world, tmp_path, **{"database.url": url})
        run = gateway("users", "list", "--config", str(config))
    assert_error(run, ExitCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")


def test_sqlite_file_that_cannot_be_opened(world: DemoWorld, tmp_path: Path) -> None:
    folder = tmp_path / "a-folder-not-a-file"
    folder.mkdir()
    config = variant(world, tmp_path, **{"database.url": f'"sqlite:///{folder}"'})
    run = gateway("tokens", "add", "--config", str(config), "--label", "x", "--role", "operator")
    assert_error(run, ExitCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
    assert "unable to open database file" in run.err


def test_bad_time_zone_is_a_configuration_error(world: DemoWorld, tmp_path: Path) -> None:
    config = variant(world, tmp_path, **{"node.timezone": '"Europe/Atlantis"'})
    for command in (("serve",), ("users", "list"), ("directory", "show"), ("keys", "list")):
        run = gateway(*command, "--config", str(config))
        assert_error(run, ExitCode.USAGE, "CONFIG_INVALID")
        assert "Europe/Atlantis" in run.err and "timezone" in run.err


def test_tokens_add_on_a_fresh_node_creates_a_private_store(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[node]\nbody_id = "RU-FSSP"\ndata_dir = "data"\n', encoding="utf-8")
    run = gateway("tokens", "add", "--config", str(config), "--label", "cs", "--role", "operator")
    assert run.code == 0, run
    assert len(run.out.strip()) >= 40  # the token, printed once
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "gateway.db").stat().st_mode) == 0o600


def test_store_file_is_private_even_under_a_lax_umask(tmp_path: Path) -> None:
    from gateway.store import open_store

    previous = os.umask(0o022)
    try:
        store = open_store(f"sqlite:///{tmp_path / 'node' / 'gateway.db'}")
        store.dispose()
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "node").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "node" / "gateway.db").stat().st_mode) == 0o600


def test_debug_shows_the_traceback(world: DemoWorld, tmp_path: Path) -> None:
    config = variant(world, tmp_path, **{"node.timezone": '"Europe/Atlantis"'})
    run = gateway("--debug", "directory", "show", "--config", str(config))
    assert run.code == ExitCode.USAGE
    assert "Traceback" in run.err and "ConfigurationError" in run.err
    assert run.err.rstrip().splitlines()[-1].endswith("[CONFIG_INVALID]")
    by_variable = gateway("directory", "show", "--config", str(config), env={"GATEWAY_DEBUG": "1"})
    assert "Traceback" in by_variable.err


def test_usage_errors_say_so(tmp_path: Path) -> None:
    assert_error(gateway("no-such-command"), ExitCode.USAGE, "USAGE")
    assert_error(gateway("validate"), ExitCode.USAGE, "USAGE")


def test_missing_configuration_file(tmp_path: Path) -> None:
    run = gateway("keys", "list", "--config", str(tmp_path / "absent.toml"))
    assert_error(run, ExitCode.USAGE, "CONFIG_INVALID")


def test_validate_exit_codes(tmp_path: Path) -> None:
    example = VALID_EXAMPLES_DIR / "cis-enforcement.Request.xml"
    assert gateway("validate", str(example), cwd=tmp_path).code == ExitCode.OK
    broken = tmp_path / "broken.xml"
    broken.write_bytes(example.read_bytes().replace(b"RU-FSSP", b"ru-fssp", 1))
    assert gateway("validate", str(broken)).code == ExitCode.REFUSED
    assert_error(
        gateway("validate", str(tmp_path / "absent.xml")), ExitCode.UNAVAILABLE, "FILE_UNREADABLE"
    )


def test_version(tmp_path: Path) -> None:
    from importlib import metadata

    run = gateway("--version", cwd=tmp_path)
    assert run.code == 0
    assert run.out.strip() == f"gateway {metadata.version('cis-exchange-gateway')}"


def test_explain_leaves_bugs_alone() -> None:
    assert explain(RuntimeError("a bug")) is None
    refused = Failure("нет", "SOME_CODE", ExitCode.REFUSED)
    assert explain(refused) is refused
    assert explain(FileNotFoundError(2, "No such file", "/x")).code == "FILE_NOT_FOUND"


@pytest.mark.parametrize("argv", [["--help"], ["keys", "--help"], ["users", "add", "--help"]])
def test_help_works_everywhere(argv: list[str]) -> None:
    run = gateway(*argv)
    assert run.code == 0 and "usage: gateway" in run.out, run

"""``gateway users``: add, disable, list, over a real SQLite store opened from a node config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from gateway.config import NodeConfig
from gateway.main import main
from gateway.store import audit
from gateway.store.engine import open_store
from gateway.web.console import StoreUserDirectory

GOOD_PASSWORD = "длинный-пароль-оператора"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "node.toml"
    path.write_text('[node]\nbody_id = "KZ-MJ"\ndata_dir = "node-data"\n', encoding="utf-8")
    return path


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password.txt"
    path.write_text(GOOD_PASSWORD + "\n", encoding="utf-8")
    return path


def _list(config: Path, capsys) -> list[dict]:
    assert main(["users", "list", "--config", str(config), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_add_list_disable(config, password_file, capsys, monkeypatch) -> None:
    monkeypatch.delenv("GATEWAY_USER_PASSWORD", raising=False)
    code = main(
        [
            "users",
            "add",
            "ivanova",
            "--role",
            "operator",
            "--role",
            "confidential-reader",
            "--config",
            str(config),
            "--password-file",
            str(password_file),
        ]
    )
    assert code == 0
    assert "ivanova" in capsys.readouterr().out
    [user] = _list(config, capsys)
    assert user["username"] == "ivanova"
    assert user["roles"] == ["confidential-reader", "operator"]
    assert user["disabled"] is False and user["locked"] is False

    assert main(["users", "disable", "ivanova", "--config", str(config)]) == 0
    capsys.readouterr()
    [user] = _list(config, capsys)
    assert user["disabled"] is True

    # The password is stored as an argon2id hash that verifies, never in clear.
    store = open_store(NodeConfig.from_toml(config).database_url)
    try:
        with store.read() as conn:
            kinds = [
                (e.actor.startswith("cli:"), e.kind, dict(e.subjects)) for e in audit.events(conn)
            ]
        import asyncio

        record = asyncio.run(StoreUserDirectory(store).get("ivanova"))
    finally:
        store.dispose()
    assert record.password_hash.startswith("$argon2id$")
    assert GOOD_PASSWORD not in record.password_hash
    assert PasswordHasher().verify(record.password_hash, GOOD_PASSWORD)
    assert (True, "user.added", {"username": "ivanova"}) in kinds
    assert (True, "user.disabled", {"username": "ivanova"}) in kinds


def test_password_from_the_environment(config, capsys, monkeypatch) -> None:
    monkeypatch.setenv("GATEWAY_USER_PASSWORD", GOOD_PASSWORD)
    assert main(["users", "add", "petrov", "--role", "auditor", "--config", str(config)]) == 0
    capsys.readouterr()
    assert [u["username"] for u in _list(config, capsys)] == ["petrov"]


def test_no_password_on_the_command_line(config) -> None:
    with pytest.raises(SystemExit):
        main(
            [
                "users",
                "add",
                "x1",
                "--role",
                "operator",
                "--config",
                str(config),
                "--password",
                GOOD_PASSWORD,
            ]
        )


def test_without_a_terminal_a_password_source_is_required(config, capsys, monkeypatch) -> None:
    monkeypatch.delenv("GATEWAY_USER_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    # No way to get a password is a usage error (exit code 2, docs/operations.md).
    assert main(["users", "add", "x1", "--role", "operator", "--config", str(config)]) == 2
    assert "--password-file" in capsys.readouterr().err


def test_refusals(config, password_file, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("GATEWAY_USER_PASSWORD", raising=False)
    short = tmp_path / "short.txt"
    short.write_text("короткий\n", encoding="utf-8")
    args = ["--config", str(config)]
    assert (
        main(["users", "add", "a1", "--role", "operator", *args, "--password-file", str(short)])
        == 1
    )
    assert "короче" in capsys.readouterr().err
    assert (
        main(
            [
                "users",
                "add",
                "Bad Name",
                "--role",
                "operator",
                *args,
                "--password-file",
                str(password_file),
            ]
        )
        == 1
    )
    capsys.readouterr()
    assert (
        main(
            [
                "users",
                "add",
                "a1",
                "--role",
                "operator",
                *args,
                "--password-file",
                str(password_file),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "users",
                "add",
                "a1",
                "--role",
                "auditor",
                *args,
                "--password-file",
                str(password_file),
            ]
        )
        == 1
    )
    assert "занято" in capsys.readouterr().err
    assert main(["users", "disable", "nobody", *args]) == 1
    with pytest.raises(SystemExit):
        main(["users", "add", "a2", "--role", "superuser", *args])


def test_plain_list(config, password_file, capsys, monkeypatch) -> None:
    monkeypatch.delenv("GATEWAY_USER_PASSWORD", raising=False)
    assert main(["users", "list", "--config", str(config)]) == 0
    assert "Пользователей нет" in capsys.readouterr().out
    main(
        [
            "users",
            "add",
            "s1",
            "--role",
            "administrator",
            "--config",
            str(config),
            "--password-file",
            str(password_file),
        ]
    )
    capsys.readouterr()
    assert main(["users", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "s1" in out and "активен" in out and "administrator" in out


def test_broken_config_is_exit_2(tmp_path, capsys) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[node]\n", encoding="utf-8")
    assert main(["users", "list", "--config", str(path)]) == 2
    assert "body_id" in capsys.readouterr().err

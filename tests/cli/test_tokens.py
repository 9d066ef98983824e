"""Issue finding (operations): API tokens could not be listed, revoked or expired. `gateway
tokens list|revoke` and `tokens add --expires-in-days` now do it; a revoked token is refused by
the node at once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from gateway.cli.errors import ExitCode
from gateway.config import NodeConfig
from gateway.store import open_store, tokens
from tests.cli.conftest import gateway
from tests.cli.test_errors import assert_error


def test_tokens_are_listed_revoked_and_expire(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[node]\nbody_id = "RU-FSSP"\ndata_dir = "data"\n', encoding="utf-8")
    add = ("tokens", "add", "--config", str(config), "--role", "operator")
    lasting = gateway(*add, "--label", "case-system").out.strip()
    short = gateway(*add, "--label", "pilot", "--expires-in-days", "1").out.strip()
    assert lasting and short

    listed = gateway("tokens", "list", "--config", str(config), "--json")
    assert listed.code == 0, listed
    rows = {row["label"]: row for row in json.loads(listed.out)}
    assert rows["case-system"]["state"] == "active" and rows["case-system"]["expires_at"] is None
    assert rows["pilot"]["expires_at"] is not None
    assert lasting not in listed.out and short not in listed.out  # never the token itself

    revoked = gateway("tokens", "revoke", "--config", str(config), str(rows["pilot"]["id"]))
    assert revoked.code == 0, revoked
    again = gateway("tokens", "revoke", "--config", str(config), str(rows["pilot"]["id"]))
    assert_error(again, ExitCode.REFUSED, "TOKEN_NOT_FOUND")
    text = gateway("tokens", "list", "--config", str(config)).out
    assert "revoked" in text and "pilot" in text

    store = open_store(NodeConfig.from_toml(config).database_url)
    try:
        with store.transaction() as conn:
            now = datetime.now(UTC)
            assert tokens.find_active(conn, lasting, now) is not None
            assert tokens.find_active(conn, short, now) is None  # revoked: refused at once
    finally:
        store.dispose()


def test_an_expiry_below_one_day_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[node]\nbody_id = "RU-FSSP"\ndata_dir = "data"\n', encoding="utf-8")
    run = gateway(
        "tokens",
        "add",
        "--config",
        str(config),
        "--label",
        "x",
        "--role",
        "operator",
        "--expires-in-days",
        "0",
    )
    assert_error(run, ExitCode.USAGE, "INVALID_ARGUMENT")

"""Issue finding (key rotation): `keys list` (text and JSON) showed "pending", never the planned
time, though the rotation doc says to check every step with it. Now each generation shows when
it becomes (or became) active, and when and why it was revoked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from gateway.main import main
from tests.crypto.rotation.conftest import NodeDir


def _keys(node: NodeDir, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(["keys", *args, "--config", str(node.config_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_the_planned_switch_and_a_revocation_are_listed(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    switch = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    _keys(node, capsys, "rotate", "seal", "--demo-ca", str(node.ca_dir))
    _keys(node, capsys, "activate", "seal", "--generation", "2", "--at", switch.isoformat())
    _keys(node, capsys, "rotate", "tls", "--demo-ca", str(node.ca_dir))
    _keys(
        node,
        capsys,
        "revoke",
        "tls",
        "--generation",
        "2",
        "--reason",
        "keyCompromise",
        "--demo-ca",
        str(node.ca_dir),
    )

    listing = json.loads(_keys(node, capsys, "list", "--json"))
    seal2 = next(e for e in listing if e["role"] == "seal" and e["generation"] == 2)
    assert seal2["status"] == "pending"
    assert datetime.fromisoformat(seal2["activation_at"]) == switch
    tls2 = next(e for e in listing if e["role"] == "tls" and e["generation"] == 2)
    assert tls2["status"] == "revoked"
    assert tls2["revocation_reason"] == "keyCompromise" and tls2["revoked_at"]

    text = _keys(node, capsys, "list")
    assert f"active from: {switch.isoformat()}" in text
    assert "revoked at: " in text and "(keyCompromise)" in text


def test_the_commands_revoke_suggests_paste_as_they_are(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue finding: revoking the active generation suggested `keys activate … --at now`
    without `--generation`, which fails when pasted."""
    out = _keys(
        node,
        capsys,
        "revoke",
        "seal",
        "--generation",
        "1",
        "--reason",
        "keyCompromise",
        "--demo-ca",
        str(node.ca_dir),
    )
    suggested = [
        line.strip().split()
        for line in out.splitlines()
        if line.strip().startswith("gateway keys ")
    ]
    assert [words[2] for words in suggested] == ["rotate", "activate", "publish"]
    for words in suggested:
        code = main(words[1:])
        captured = capsys.readouterr()
        assert code == 0, (words, captured.err)
    listing = json.loads(_keys(node, capsys, "list", "--json"))
    seal2 = next(e for e in listing if e["role"] == "seal" and e["generation"] == 2)
    assert seal2["status"] == "active"


async def test_the_console_lists_every_generation_and_the_retired_kek(
    node: NodeDir, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue finding: the console's keys page omitted the old KEK (and showed English status
    words, tests/web/console); its source now lists what `keys list` lists."""
    from gateway.app.context import AppContext
    from gateway.exchange.service import Actor, Role
    from gateway.web.console.sources import keystore_entries

    switch = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    _keys(node, capsys, "rotate", "seal", "--demo-ca", str(node.ca_dir))
    _keys(node, capsys, "activate", "seal", "--generation", "2", "--at", switch.isoformat())
    _keys(node, capsys, "generate", "kek")
    _keys(node, capsys, "rotate", "kek")

    administrator = Actor(name="console:admin", roles=frozenset({Role.ADMINISTRATOR}))
    with AppContext.from_config(node.config) as ctx:
        entries = await keystore_entries(ctx, node.keystore())(administrator)

    keks = sorted(e.status for e in entries if e.role == "kek")
    assert keks == ["active", "retired"]
    seal2 = next(e for e in entries if e.role == "seal" and e.generation == 2)
    assert seal2.status == "pending" and seal2.activation_at == switch

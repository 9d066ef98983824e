"""docs/operations.md against the code's own tables: every systemd credential and secret
setting the gateway reads, every structured log field, every check ``check-config`` prints."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.app.checks import run_checks
from gateway.config import NodeConfig
from gateway.credentials import CREDENTIAL_NAMES
from gateway.demo.setup import DemoWorld
from gateway.logs import FIELDS
from tests.cli.conftest import variant

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def _section(title: str) -> str:
    text = DOC.read_text("utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_every_secret_source_is_documented() -> None:
    secrets = _section("Secrets")
    for key, credential in CREDENTIAL_NAMES.items():
        assert f"`{credential}`" in secrets, credential
        assert f"{key}_file`" in secrets and f"{key}_env`" in secrets, key


def test_every_log_field_is_documented() -> None:
    logs = _section("Logs")
    for name in ("ts", "level", "logger", "node", "message", *FIELDS):
        assert f"`{name}`" in logs, name


def test_every_check_is_in_the_table(world: DemoWorld, tmp_path: Path) -> None:
    table = _section("Checking a configuration")
    documented = set(re.findall(r"`([a-z-]+)(?: [A-Za-z]+)?`", table))
    config = NodeConfig.from_toml(variant(world, tmp_path))
    printed = {finding.check.split()[0] for finding in run_checks(config)} | {"config"}
    assert printed <= documented, printed - documented

"""deploy/: the systemd unit passes ``systemd-analyze verify`` (with the test virtualenv's
``gateway`` as its command) and runs commands the CLI has, with credentials the gateway reads;
the container recipe runs the CLI as a non-root user. The image is not built here (no base
images offline): docs/operations.md says so."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from gateway.credentials import CREDENTIAL_NAMES
from gateway.main import build_parser
from tests.cli.conftest import GATEWAY
from tests.tooling import require_tool

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "gateway.service"
INSTALLED = "/opt/gateway/bin/gateway"


def _unit_settings(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit, per key (a key may repeat), sections ignored."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    text = UNIT.read_text("utf-8")
    assert INSTALLED in text
    unit = tmp_path / "gateway.service"
    unit.write_text(text.replace(INSTALLED, str(GATEWAY)), "utf-8")
    analyze = require_tool("systemd-analyze", "systemd")
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_the_unit_is_hardened_and_runs_real_commands() -> None:
    settings = _unit_settings(UNIT.read_text("utf-8"))
    assert settings["User"] == ["gateway"] and settings["ProtectSystem"] == ["strict"]
    assert settings["StateDirectory"] == ["gateway"] and settings["UMask"] == ["0077"]
    assert settings["NoNewPrivileges"] == ["true"] and settings["CapabilityBoundingSet"] == [""]
    parser = build_parser()
    for key in ("ExecStartPre", "ExecStart"):
        (command,) = settings[key]
        program, *args = shlex.split(command)
        assert program == INSTALLED
        parsed = parser.parse_args(args)  # exits (fails the test) on an unknown command
        assert parsed.handler is not None and parsed.config == Path("/etc/gateway/node.toml")
    loaded = {value.split(":", 1)[0] for value in settings["LoadCredential"]}
    assert loaded <= set(CREDENTIAL_NAMES.values()), loaded


def test_the_container_runs_the_cli_as_a_non_root_user() -> None:
    text = (DEPLOY / "Containerfile").read_text("utf-8")
    (user,) = re.findall(r"^USER (\S+)$", text, flags=re.MULTILINE)
    assert not user.startswith(("root", "0:", "0")), user
    entry = re.search(r'^ENTRYPOINT \["gateway"\]$', text, flags=re.MULTILINE)
    (cmd,) = re.findall(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)
    assert entry, text
    args = json.loads(cmd)
    parsed = build_parser().parse_args(args)
    assert args[0] == "serve" and parsed.config == Path("/etc/gateway/node.toml")

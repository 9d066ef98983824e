"""docs/key-rotation.md's commands paste as they are: every ``gateway …`` line of its shell
blocks is accepted by the CLI's own parser (subcommand, options, required arguments), so a
renamed option or a missing one (``keys revoke`` without ``--generation``) fails here."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from gateway.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "key-rotation.md"
SHELL_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
VARIABLES = {
    "$NODE": "/tmp/demo-h17/RU-FSSP/node.toml",
    "$CA": "/tmp/demo-h17/pki/RU/ca",
    "$(date -u -d '+1 day' +%Y-%m-%dT03:00:00Z)": "2026-12-06T03:00:00Z",
}


def _commands() -> list[str]:
    lines = []
    for block in SHELL_BLOCK.findall(DOC.read_text(encoding="utf-8")):
        for line in block.splitlines():
            command = line.split(" #", 1)[0].strip()
            if command.startswith("gateway "):
                for variable, value in VARIABLES.items():
                    command = command.replace(f'"{variable}"', value).replace(variable, value)
                lines.append(command)
    return lines


def test_the_doc_lists_its_commands() -> None:
    commands = _commands()
    assert len(commands) > 20
    assert any(c.startswith("gateway keys activate") for c in commands)
    assert any(c.startswith("gateway verify") for c in commands)


@pytest.mark.parametrize("command", _commands())
def test_every_command_parses(command: str) -> None:
    words = shlex.split(command.split(" | ", 1)[0].split(" > ", 1)[0])
    try:
        build_parser().parse_args(words[1:])
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"{command!r} does not parse (exit {exc.code})")

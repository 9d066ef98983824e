"""A small demo world (two bodies, their keys, a signed directory) for the CLI tests, and a
runner for the real ``gateway`` console script: exit code, stdout and stderr of a process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.demo.setup import DemoWorld, build_world

GATEWAY = Path(sys.executable).with_name("gateway")
"""The console script of the virtualenv running the tests."""

COMMAND_TIMEOUT_SECONDS = 120.0
"""A command that has not finished by then is stuck (slow imports on a loaded machine take
seconds, not minutes)."""


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def gateway(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Run:
    """Run ``gateway ARGS`` as a process, as an operator would."""
    done = subprocess.run(
        [str(GATEWAY), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> DemoWorld:
    """RU-FSSP and KZ-MJ with every port 0 (nothing here exchanges documents)."""
    return build_world(
        tmp_path_factory.mktemp("cli-world"), now=datetime.now(UTC), bodies=("RU-FSSP", "KZ-MJ")
    )


def variant(world: DemoWorld, tmp_path: Path, **replacements: str) -> Path:
    """RU-FSSP's node.toml with absolute paths (so it may live in ``tmp_path``), its data in
    ``tmp_path/data``, and ``key = "value"`` lines replaced or sections appended.

    A replacement key names ``section.key``; a section not in the file is appended."""
    source = world.nodes["RU-FSSP"].config_path
    text = source.read_text(encoding="utf-8")
    text = text.replace('"../', f'"{world.root}/').replace(
        'dir = "keys"', f'dir = "{source.parent}/keys"'
    )
    text = text.replace(
        'passphrase_file = "passphrase"', f'passphrase_file = "{source.parent}/passphrase"'
    )
    text = text.replace('data_dir = "data"', f'data_dir = "{tmp_path}/data"')
    for dotted, value in replacements.items():
        section, key = dotted.split(".")
        lines = text.splitlines()
        try:
            start = lines.index(f"[{section}]")
        except ValueError:
            text += f"\n[{section}]\n{key} = {value}\n"
            continue
        for index in range(start + 1, len(lines)):
            if lines[index].startswith("["):
                lines.insert(index, f"{key} = {value}")
                break
            if lines[index].split("=")[0].strip() == key:
                lines[index] = f"{key} = {value}"
                break
        else:
            lines.append(f"{key} = {value}")
        text = "\n".join(lines) + "\n"
    path = tmp_path / "node.toml"
    path.write_text(text, encoding="utf-8")
    return path

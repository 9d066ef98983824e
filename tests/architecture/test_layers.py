"""The architecture's guard-rails, as the README's test command runs them: the import contracts
(``lint-imports``, [tool.importlinter] in pyproject.toml), mypy --strict on the lower layers
([tool.mypy]), and docs/architecture.md drawing the same layers as the contract."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
"""The tools come from the environment the tests run in (the `test` extra installs them)."""
DOC = ROOT / "docs" / "architecture.md"


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    executable = BIN / tool
    if not executable.exists():
        pytest.fail(f"{executable} is missing: .venv/bin/pip install -e '.[test]'")
    return subprocess.run(
        [str(executable), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's gateway, not another
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _layers_contract() -> dict[str, Any]:
    (layers,) = [c for c in _contracts() if c["id"] == "layers"]
    return layers


def test_import_contracts_hold() -> None:
    result = _run("lint-imports", "--no-cache")
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in report, report


def test_no_contract_excuses_an_import() -> None:
    """An arrow that breaks a contract is fixed in the code, never listed as an exception."""
    excusing = [c["id"] for c in _contracts() if c.get("ignore_imports")]
    assert excusing == []


def test_layers_contract_places_every_package() -> None:
    """A new package under gateway/ must be given its layer (the contract is exhaustive)."""
    contract = _layers_contract()
    assert contract["exhaustive"] is True
    named = {name.strip("() ") for layer in contract["layers"] for name in re.split(r"[|:]", layer)}
    packages = {
        p.stem if p.is_file() else p.name
        for p in (ROOT / "gateway").iterdir()
        if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py")
    } - {"__init__", "__main__"}
    assert packages - named == set(), "add these to the layers contract in pyproject.toml"


def test_architecture_doc_draws_the_contracted_layers() -> None:
    """docs/architecture.md's layer block lists the contract's layers, highest first, and names
    every contract, so that the page and the check cannot drift apart."""
    doc = DOC.read_text(encoding="utf-8")
    block = re.search(r"```text layers\n(.*?)```", doc, re.DOTALL)
    assert block is not None, "docs/architecture.md lost its ```text layers block"
    drawn = [" ".join(line.split()) for line in block.group(1).splitlines() if line.strip()]
    contracted = [" ".join(layer.split()) for layer in _layers_contract()["layers"]]
    assert drawn == contracted
    missing = [c["name"] for c in _contracts() if c["name"] not in doc]
    assert missing == [], "name these contracts in docs/architecture.md"


@pytest.mark.slow
def test_lower_layers_pass_mypy_strict() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["tool"]["mypy"]["strict"] is True
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def _private_imports(path: Path) -> list[str]:
    """``from gateway.… import _name`` in ``path``: a module reaching into another's privates."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gateway"):
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{alias.name}"
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            ]
    return found


def test_no_module_imports_another_s_private_names() -> None:
    """What one module shares with another is public (no leading underscore); a private name
    imported elsewhere is a seam nobody sees when changing it."""
    found = [
        hit for path in sorted((ROOT / "gateway").rglob("*.py")) for hit in _private_imports(path)
    ]
    assert found == []

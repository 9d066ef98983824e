"""The conformance matrix: docs/conformance.md is the table in code, every provision issue #12
names is in it once, DONE means tested, and every named test exists."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

from gateway.rules.conformance import CIS, PROVISIONS, SC, Status, render

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_IDS = (
    [f"CIS Art. {n}" for n in (*range(3, 17), 18, 19, 22, 23, 24, 25)]
    + ["KZ reservation (CIS Art. 6 а))"]
    + [
        f"SC Art. {n}"
        for n in (
            "5.1",
            "5.1 para. 2",
            "5.2",
            "5.3",
            "6.1",
            "6.2",
            "6.3",
            "7",
            "8.1",
            "8.2",
            "8.3",
            "9.1",
            "9.2",
            "11",
            "13.1",
            "13.2",
        )
    ]
)
"""CIS Art. 3–16, 18, 19, 22–25 with Kazakhstan's reservation; SC Art. 5–9, 11, 13 by
paragraph (5.1 para. 2, the oral request, is a provision of its own)."""


@cache
def existing_test_ids() -> frozenset[str]:
    """``path::function`` and ``path::Class::function`` of every test function, read from the
    test files' syntax trees (collecting the whole suite would import every test module)."""
    ids: set[str] = set()
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        relative = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if _is_test_function(node):
                ids.add(f"{relative}::{node.name}")  # type: ignore[attr-defined]
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                ids |= {
                    f"{relative}::{node.name}::{item.name}"  # type: ignore[attr-defined]
                    for item in node.body
                    if _is_test_function(item)
                }
    return frozenset(ids)


def _is_test_function(node: ast.stmt) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")


def test_the_doc_is_generated_from_the_table() -> None:
    doc = (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")
    assert doc == render(), "docs/conformance.md is stale: run python -m gateway.rules.conformance"


def test_every_provision_is_listed_once_in_order() -> None:
    assert [p.id for p in PROVISIONS] == EXPECTED_IDS
    assert len(PROVISIONS) == 37
    assert {p.agreement for p in PROVISIONS} == {CIS, SC}
    assert all(p.id.startswith("SC") == (p.agreement == SC) for p in PROVISIONS)


def test_done_is_tested_and_every_gap_is_written() -> None:
    untested = [p.id for p in PROVISIONS if p.status is Status.DONE and not p.tests]
    assert untested == [], f"DONE without a test: {untested}"
    unexplained = [p.id for p in PROVISIONS if p.status is not Status.DONE and not p.gap]
    assert unexplained == [], f"PARTIAL or MISSING without the gap written out: {unexplained}"
    assert all(p.text and p.behaviour for p in PROVISIONS)


def test_every_named_test_exists() -> None:
    known = existing_test_ids()
    assert len(known) > 500, "the test files were not found"
    missing = sorted({t for p in PROVISIONS for t in p.tests} - known)
    assert missing == [], f"named in gateway/rules/conformance.py but not a test: {missing}"


def test_the_check_command_tells_a_stale_doc(tmp_path: Path) -> None:
    """``python -m gateway.rules.conformance`` writes the page; ``--check`` exits 1 on drift."""
    (tmp_path / "docs").mkdir()
    command = [sys.executable, "-m", "gateway.rules.conformance"]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    stale = subprocess.run([*command, "--check"], cwd=tmp_path, env=env, capture_output=True)
    assert stale.returncode == 1 and b"out of date" in stale.stderr
    written = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, check=True)
    assert b"37 provisions" in written.stdout
    assert (tmp_path / "docs" / "conformance.md").read_text(encoding="utf-8") == render()
    fresh = subprocess.run([*command, "--check"], cwd=tmp_path, env=env, capture_output=True)
    assert fresh.returncode == 0

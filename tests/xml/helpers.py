"""Shared paths and loaders for the document-model tests."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from gateway.app.documents import check_bytes, check_tree
from gateway.model.problems import DocumentRejected, Problem
from gateway.schemas import SCHEMA_DIR
from gateway.xml.convert import json_to_xml

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = SCHEMA_DIR
VALID = SCHEMAS / "examples" / "valid"
INVALID = SCHEMAS / "examples" / "invalid"


def valid_json_files() -> list[Path]:
    return sorted(VALID.glob("*.json"))


def valid_xml_files() -> list[Path]:
    return sorted(VALID.glob("*.xml"))


def expected_invalid() -> dict[str, str]:
    manifest = tomllib.loads((INVALID / "expected.toml").read_text(encoding="utf-8"))
    return dict(manifest["expected"])


def load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def problems_of(path: Path) -> tuple[Problem, ...]:
    """What the gateway says about an example file (JSON: converted first)."""
    if path.suffix == ".json":
        try:
            root = json_to_xml(load_json(path))
        except DocumentRejected as rejected:
            return rejected.problems
        return check_tree(root).problems
    return check_bytes(path.read_bytes()).problems

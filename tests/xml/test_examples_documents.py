"""The examples in gateway/schemas/examples/ against our validator, xmllint and the converter."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gateway.model.profiles import PROFILES
from gateway.rules.content import CONTENT_RULES
from gateway.xml.convert import canonical, json_to_xml, to_bytes, xml_to_json
from gateway.xml.parsing import parse_untrusted
from tests.tooling import require_tool
from tests.xml.helpers import (
    INVALID,
    SCHEMAS,
    VALID,
    expected_invalid,
    load_json,
    problems_of,
    valid_json_files,
    valid_xml_files,
)


def test_every_kind_of_both_profiles_has_a_valid_example() -> None:
    present = set()
    for path in valid_json_files():
        header = load_json(path)["header"]
        present.add((header["Agreement"], header["Kind"]))
    wanted = {(p.id, kind) for p in PROFILES.values() for kind in p.kinds}
    assert wanted - present == set()


def test_every_json_example_has_its_xml_beside_it() -> None:
    assert [p.stem for p in valid_json_files()] == [p.stem for p in valid_xml_files()]


@pytest.mark.parametrize("path", valid_xml_files(), ids=lambda p: p.stem)
def test_valid_example_passes_schema_and_rules(path) -> None:
    assert problems_of(path) == ()


@pytest.mark.parametrize("path", valid_json_files(), ids=lambda p: p.stem)
def test_xml_example_is_the_conversion_of_its_json(path) -> None:
    document = load_json(path)
    built = json_to_xml(document)
    assert to_bytes(built, pretty=True) == path.with_suffix(".xml").read_bytes()
    parsed = parse_untrusted(path.with_suffix(".xml").read_bytes())
    assert xml_to_json(parsed) == document
    assert canonical(json_to_xml(xml_to_json(parsed))) == canonical(parsed)


def test_valid_examples_pass_xmllint() -> None:
    xmllint = require_tool("xmllint", "libxml2-utils")
    files = [str(p) for p in valid_xml_files()]
    result = subprocess.run(
        [xmllint, "--noout", "--nonet", "--schema", str(SCHEMAS / "envelope.xsd"), *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("validates") == len(files)


def test_xmllint_rejects_a_schema_invalid_example() -> None:
    xmllint = require_tool("xmllint", "libxml2-utils")
    result = subprocess.run(
        [
            xmllint,
            "--noout",
            "--nonet",
            "--schema",
            str(SCHEMAS / "envelope.xsd"),
            str(INVALID / "schema-body-id-pattern.xml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Recipient" in result.stderr


def test_manifest_lists_every_invalid_file() -> None:
    on_disk = {p.name for p in INVALID.iterdir() if p.suffix in (".xml", ".json")}
    assert on_disk == set(expected_invalid())


@pytest.mark.parametrize(("name", "code"), sorted(expected_invalid().items()))
def test_invalid_example_fails_with_its_code(name: str, code: str) -> None:
    problems = problems_of(INVALID / name)
    assert problems, f"{name} passed"
    assert problems[0].code == code, [p.summary() for p in problems]
    first = problems[0]
    assert first.path.startswith("/")
    assert first.message_ru and first.message_en


def test_invalid_examples_cover_every_content_rule() -> None:
    codes = set(expected_invalid().values())
    assert {rule.code for rule in CONTENT_RULES} <= codes


def test_docs_table_of_content_rules_is_the_code_table() -> None:
    documents = (Path(__file__).parents[2] / "docs" / "documents.md").read_text(encoding="utf-8")
    table = documents[documents.index("### Content rules") :]
    rows = [line for line in table.splitlines() if line.startswith("| `RULE_")]
    assert rows == [f"| `{r.code}` | {r.article} | {r.rule} |" for r in CONTENT_RULES]


def test_valid_examples_dir_holds_only_pairs() -> None:
    assert {p.suffix for p in VALID.iterdir()} == {".json", ".xml"}

"""``gateway convert`` and ``gateway validate``: output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.main import main
from tests.xml.helpers import INVALID, REPO, VALID

REQUEST_JSON = VALID / "cis-enforcement.Request.json"
REQUEST_XML = VALID / "cis-enforcement.Request.xml"


def test_validate_valid_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REQUEST_XML)]) == 0
    out = capsys.readouterr().out
    assert "документ корректен" in out
    assert "cis-enforcement:Request" in out


def test_validate_invalid_document_in_russian_with_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(INVALID / "rule-income-period-too-long.xml")]) == 1
    out = capsys.readouterr().out
    assert "RULE_INCOME_PERIOD_TOO_LONG" in out
    assert "[CIS Art. 7]" in out
    assert "не более чем за 3 года" in out
    assert "Что сделать:" in out


def test_validate_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--json", str(INVALID / "schema-body-id-pattern.xml")]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is False
    assert result["problems"][0]["code"] == "SCHEMA_PATTERN"
    assert result["problems"][0]["path"] == "/Envelope/Header/Recipient"

    assert main(["validate", "--json", str(REQUEST_XML)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "file": str(REQUEST_XML),
        "valid": True,
        "problems": [],
    }


def test_validate_malformed_xml_is_invalid_not_unreadable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate", str(INVALID / "xml-doctype.xml")]) == 1
    assert "XML_DOCTYPE_FORBIDDEN" in capsys.readouterr().out


def test_validate_missing_file_is_unreadable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A file that is not there is an unavailable dependency: exit code 3 (docs/operations.md).
    assert main(["validate", str(tmp_path / "absent.xml")]) == 3
    err = capsys.readouterr().err
    assert err.startswith("ошибка: не удалось прочитать файл") and "[FILE_UNREADABLE]" in err
    assert main(["validate", "--json", str(tmp_path / "absent.xml")]) == 3
    assert json.loads(capsys.readouterr().out)["readable"] is False


@pytest.mark.parametrize("kind", ["Request", "cis-enforcement:Request"])
def test_convert_prints_the_xml(kind: str, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["convert", kind, str(REQUEST_JSON)]) == 0
    assert capsysbinary.readouterr().out == REQUEST_XML.read_bytes()


@pytest.mark.parametrize(
    "kind", ["Response", "ru-kz-supreme-courts:Request", "cis-extradition:Request"]
)
def test_convert_checks_kind_against_the_header(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["convert", kind, str(REQUEST_JSON)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "JSON_KIND_MISMATCH" in captured.err


def test_convert_reports_schema_and_rule_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["convert", "Withdrawal", str(INVALID / "json-unknown-field.json")]) == 1
    assert "JSON_UNKNOWN_FIELD" in capsys.readouterr().err

    document = json.loads(REQUEST_JSON.read_text(encoding="utf-8"))
    document["header"]["Language"] = "kk"
    path = tmp_path / "kk.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    assert main(["convert", "--json", "Request", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err)["problems"][0]["code"] == "RULE_LANGUAGE"


def test_convert_unreadable_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert main(["convert", "Request", str(broken)]) == 1  # read, judged: not JSON
    assert "[JSON_SYNTAX]" in capsys.readouterr().err
    assert main(["convert", "Request", str(tmp_path / "absent.json")]) == 3


def test_console_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "validate", str(INVALID / "rule-language.xml")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 1
    assert "RULE_LANGUAGE" in result.stdout


def test_oversized_files_are_invalid_not_unreadable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.xml.parsing import MAX_DOCUMENT_BYTES

    big = tmp_path / "big.xml"
    big.write_bytes(b"<a>" + b" " * MAX_DOCUMENT_BYTES + b"</a>")
    assert main(["validate", str(big)]) == 1
    assert "XML_TOO_LARGE" in capsys.readouterr().out
    big_json = tmp_path / "big.json"
    big_json.write_bytes(b'{"x": "' + b" " * MAX_DOCUMENT_BYTES + b'"}')
    assert main(["convert", "Request", str(big_json)]) == 1
    assert "JSON_TOO_LARGE" in capsys.readouterr().err

"""docs/purge-and-audit.md lists every audit event as gateway.store.audit_events describes it:
the table between its markers is generated, and a stale one fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store.audit_doc import BEGIN, END, main, render_doc
from gateway.store.audit_events import AUDIT_EVENTS, events_table

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "purge-and-audit.md"


def test_the_doc_table_is_generated_from_the_registry() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert text == render_doc(text), "stale: run python -m gateway.store.audit_doc"
    section = text[text.index("## The audit trail") : text.index("## The other scheduled jobs")]
    assert BEGIN + events_table() + END in section


def test_a_stale_table_is_rewritten() -> None:
    table = events_table()
    assert all(f"| `{kind}` |" in table for kind in AUDIT_EVENTS)
    stale = f"before\n{BEGIN}| event | records |\n|---|---|\n| `gone` | Gone. |\n{END}after\n"
    assert render_doc(stale) == f"before\n{BEGIN}{table}{END}after\n"


def test_the_command_checks_without_writing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["--check"]) == 0
    assert "is up to date" in capsys.readouterr().out

"""The use cases that were command bodies, called directly: backup and restore, a document's
check and conversion, the jobs' schedule, a refusal's one mapping (the command line's tests
run the same through the ``gateway`` process)."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.app.backup import backup, restore
from gateway.app.database import head_revision, schema_state, upgrade_store
from gateway.app.documents import check_bytes, convert
from gateway.app.failures import ExitCode, Failure, explain
from gateway.app.jobs import job_rows
from gateway.app.scheduled import JOB_NAMES
from gateway.config import NodeConfig
from gateway.model.problems import Refused
from gateway.rules.originals import OriginalRefused
from gateway.schemas import VALID_EXAMPLES_DIR
from gateway.store.conversations import ProceedingCloseRefused


def _node(root: Path) -> NodeConfig:
    (root / "keys").mkdir(parents=True, exist_ok=True)
    path = root / "node.toml"
    path.write_text(
        f'[node]\nbody_id = "RU-FSSP"\ntimezone = "Europe/Moscow"\ndata_dir = "{root}/data"\n\n'
        f'[keys]\ndir = "{root}/keys"\n',
        encoding="utf-8",
    )
    return NodeConfig.from_toml(path)


def test_a_backup_restores_into_empty_folders_and_never_over_a_store(tmp_path: Path) -> None:
    config = _node(tmp_path / "old")
    upgrade_store(config.database_url, lambda _: None)
    (config.keys.dir / "seal.key.pem").write_bytes(b"encrypted key")
    out = tmp_path / "backup"

    manifest = backup(config, out)

    assert manifest["body_id"] == "RU-FSSP" and manifest["revision"] == head_revision()
    assert set(manifest["files"]) == {"gateway.db", "keys/seal.key.pem", "node.toml"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert json.loads((out / "MANIFEST.json").read_text("utf-8")) == manifest
    with pytest.raises(Failure) as exists:
        backup(config, out)
    assert exists.value.code == "FILE_EXISTS"

    fresh = _node(tmp_path / "new")
    assert restore(fresh, out) == manifest
    assert schema_state(fresh.database_url).revision == head_revision()
    assert (fresh.keys.dir / "seal.key.pem").read_bytes() == b"encrypted key"
    with pytest.raises(Failure) as again:
        restore(fresh, out)
    assert again.value.code == "FILE_EXISTS"  # the restored key is there: nothing overwritten


def test_a_changed_backup_is_refused(tmp_path: Path) -> None:
    config = _node(tmp_path / "old")
    upgrade_store(config.database_url, lambda _: None)
    out = tmp_path / "backup"
    backup(config, out)
    (out / "node.toml").write_text("# changed\n", encoding="utf-8")

    with pytest.raises(Failure) as corrupt:
        restore(_node(tmp_path / "new"), out)

    assert (corrupt.value.code, corrupt.value.exit_code) == ("BACKUP_CORRUPT", ExitCode.REFUSED)
    assert not (tmp_path / "new" / "data" / "gateway.db").exists()


def test_a_document_is_checked_and_converted_as_the_commands_do() -> None:
    xml = (VALID_EXAMPLES_DIR / "cis-enforcement.Request.xml").read_bytes()
    document = json.loads((VALID_EXAMPLES_DIR / "cis-enforcement.Request.json").read_text())

    checked = check_bytes(xml)
    converted = convert("cis-enforcement:Request", document)
    wrong_kind = convert("Response", document)

    assert checked.valid and checked.header is not None and checked.header.kind == "Request"
    assert converted.xml is not None and check_bytes(converted.xml).valid
    assert wrong_kind.xml is None
    assert [p.code for p in wrong_kind.problems] == ["JSON_KIND_MISMATCH"]
    assert [p.code for p in check_bytes(b"<not-closed>").problems] != []


def test_the_schedule_lists_every_job_before_any_scheduler_ran(tmp_path: Path) -> None:
    config = _node(tmp_path)
    upgrade_store(config.database_url, lambda _: None)

    rows = job_rows(config, datetime(2027, 3, 1, 12, tzinfo=UTC))

    assert [r["job"] for r in rows] == list(JOB_NAMES)
    assert all(r["last_outcome"] is None and r["next_run"] for r in rows)
    purge = next(r for r in rows if r["job"] == "purge")
    assert purge["schedule"] == "30 2 * * *"
    assert purge["next_run"] == "2027-03-01T23:30:00+00:00"  # 02:30 in Europe/Moscow


@pytest.mark.parametrize(
    ("refusal", "conflict", "exit_code"),
    [
        (ProceedingCloseRefused("PROCEEDING_ALREADY_CLOSED", "Уже закрыто.", "closed"), True, 1),
        (ProceedingCloseRefused("UNKNOWN_CONVERSATION", "Нет такой.", "unknown"), False, 2),
        (OriginalRefused("ORIGINAL_TRACKING", "tracking", "Трек-номер.", "bad"), False, 1),
        (OriginalRefused("ORIGINAL_ALREADY_SENT", "sent_on", "Уже отмечено.", "sent"), True, 1),
    ],
)
def test_a_refusal_says_once_whether_it_is_a_conflict(
    refusal: Refused, conflict: bool, exit_code: int
) -> None:
    """The local API answers 409 for a conflict, 422 otherwise, and the console the same; the
    command line exits 2 for an unknown id, 1 for a refusal; a field is named."""
    explained = explain(refusal)

    assert refusal.conflict is conflict
    assert explained is not None and explained.exit_code == exit_code
    assert explained.code == refusal.code
    field = refusal.extra.get("field")
    assert explained.message_ru == (f"{field}: " if field else "") + refusal.message_ru

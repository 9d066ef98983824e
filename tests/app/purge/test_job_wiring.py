"""The real job bodies, driven with pinned run times: purge + checkpoint, deadline reminders,
key-expiry warnings, the outbox sweep; ``scheduler_for`` wires all four."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from gateway.app.audit_checkpoints import verify_trail
from gateway.app.scheduled import (
    deadline_reminders_body,
    job_bodies,
    key_expiry_body,
    outbox_sweep_body,
)
from gateway.config import NodeConfig
from gateway.crypto.keys.generations import always_in_force
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import KeyStore, SigningKey
from gateway.jobs.scheduler import JOB_NAMES, JobRun, scheduler_for
from gateway.store import Store, audit
from gateway.store.tables import conversations
from tests.app.purge.world import T0, JobNode, add_conversation, after, enqueue_pending


def _run(job: str, at: datetime) -> JobRun:
    return JobRun(job, at, at, "RU-FSSP@test:1")


def _keys(config: NodeConfig) -> KeyStore:
    return KeyStore.from_config(config)


def test_purge_body_purges_and_checkpoints(
    store: Store, ring: KekRing, node_toml: Path, seal: SigningKey
) -> None:
    config = NodeConfig.from_toml(node_toml)
    with store.transaction() as conn:
        add_conversation(conn, ring, T0, count=4)
    keys = _keys(config)
    try:
        bodies = job_bodies(config, JobNode(store, keys, "RU-FSSP", ring))
        assert set(bodies) == set(JOB_NAMES)
        report = bodies["purge"](_run("purge", after(T0, days=400)))
    finally:
        keys.close()
    assert report.purged == 4
    result = verify_trail(store, always_in_force([seal.certificate]))
    assert result.intact and result.checkpoints_checked == 1
    if store.dialect == "sqlite":
        # What the purge deleted is not left in the write-ahead log until SQLite's own next
        # checkpoint (days on a quiet node): the run empties it.
        wal = Path(f"{store.engine.url.database}-wal")
        assert wal.exists() and wal.stat().st_size == 0


def _set_deadline(store: Store, cid: str, due: date, closed: bool = False) -> None:
    with store.transaction() as conn:
        conn.execute(
            conversations.update()
            .where(conversations.c.conversation_id == cid)
            .values(deadline=due, closed_at=T0 if closed else None)
        )


def test_deadline_reminders(store: Store, ring: KekRing, node_toml: Path) -> None:
    config = NodeConfig.from_toml(node_toml)
    # Monday 2027-03-01; 5 RU working days on: due Monday 2027-03-09 (8 March is a holiday).
    today = datetime(2027, 3, 1, 9, 0, tzinfo=T0.tzinfo)
    with store.transaction() as conn:
        near, far, overdue, closed = (add_conversation(conn, ring, T0) for _ in range(4))
    _set_deadline(store, near.conversation_id, date(2027, 3, 9))
    _set_deadline(store, far.conversation_id, date(2027, 3, 20))
    _set_deadline(store, overdue.conversation_id, date(2027, 2, 25))
    _set_deadline(store, closed.conversation_id, date(2027, 2, 25), closed=True)
    sent = deadline_reminders_body(config, store)(_run("deadline-reminders", today))
    assert {r.conversation_id: r.days_left for r in sent} == {
        near.conversation_id: 5,
        overdue.conversation_id: -2,
    }
    with store.read() as conn:
        events = [e for e in audit.events(conn) if e.kind == "deadline.reminder"]
    assert {e.subjects["conversation_id"]: e.details["overdue"] for e in events} == {
        near.conversation_id: False,
        overdue.conversation_id: True,
    }
    assert all(e.actor == "job:deadline-reminders" and e.at == today for e in events)


def test_key_expiry_warnings(store: Store, node_toml: Path, seal: SigningKey) -> None:
    config = NodeConfig.from_toml(node_toml)
    keys = _keys(config)
    expiry = seal.certificate.not_valid_after_utc
    try:
        body = key_expiry_body(keys, store)
        assert body(_run("key-expiry-warnings", expiry - timedelta(days=45))) == []
        assert body(_run("key-expiry-warnings", expiry - timedelta(days=29, hours=1))) == [
            ("seal", 29)
        ]
    finally:
        keys.close()
    with store.read() as conn:
        events = [e for e in audit.events(conn) if e.kind == "key.expiring"]
    assert [(e.subjects["key"], e.details["days_left"]) for e in events] == [("seal", 29)]


def test_outbox_sweep_reports_stuck_rows(store: Store, ring: KekRing) -> None:
    with store.transaction() as conn:
        conv = add_conversation(conn, ring, T0, direction="out")
        enqueue_pending(conn, conv.message_ids[0], T0)
    body = outbox_sweep_body(store)
    assert body(_run("outbox-retry", T0 + timedelta(minutes=5)))["stuck"] == 0
    counts = body(_run("outbox-retry", T0 + timedelta(hours=2)))
    assert counts["stuck"] == 1 and counts.get("pending") == 1


def test_scheduler_for_wires_four_jobs(store: Store, ring: KekRing, node_toml: Path) -> None:
    config = NodeConfig.from_toml(node_toml)
    keys = _keys(config)
    try:
        scheduler = scheduler_for(config, JobNode(store, keys, "RU-FSSP", ring))
        assert scheduler is not None
        assert sorted(scheduler._specs) == sorted(JOB_NAMES)
        scheduler.engine.dispose()
        scheduler._store_engine.dispose()
    finally:
        keys.close()
    disabled = node_toml.with_name("off.toml")
    disabled.write_text(node_toml.read_text() + "\n[scheduler]\nenabled = false\n")
    keys = _keys(config)
    try:
        assert (
            scheduler_for(NodeConfig.from_toml(disabled), JobNode(store, keys, "RU-FSSP", ring))
            is None
        )
    finally:
        keys.close()


def _policy_file(path: Path, keep: str, reason: str = "") -> None:
    extra = f'below_minimum_reason = "{reason}"\n' if reason else ""
    path.write_text(
        f'[[policy]]\nname = "p"\ncounts_from = "received"\nkeep = "{keep}"\n{extra}',
        encoding="utf-8",
    )


def test_policy_file_changes_are_audited_at_start_and_at_each_reload(
    store: Store, ring: KekRing, node_toml: Path, tmp_path: Path
) -> None:
    """Issue #20 item 4: every change of the policy file leaves ``retention.policy_changed``
    with old and new hashes — when ``serve`` starts (the job bodies load it) and when the purge
    job reads it again before a run — and a period below the minimum carries its reason."""
    from gateway.app.retention import load_policy_file
    from gateway.model.problems import ConfigurationError

    file = tmp_path / "retention.toml"
    _policy_file(file, "1 year")
    text = node_toml.read_text(encoding="utf-8")
    text = text[: text.index("[[retention.policy]]")] + f'[retention]\npolicy_file = "{file}"\n'
    node_toml.write_text(text, encoding="utf-8")
    config = NodeConfig.from_toml(node_toml)

    def changes() -> list[dict[str, object]]:
        with store.read() as conn:
            found = audit.events(conn, kinds=["retention.policy_changed"])
        return [dict(e.details) for e in found]

    keys = _keys(config)
    node = JobNode(store, keys, "RU-FSSP", ring)
    try:
        first = load_policy_file(file).sha256
        job_bodies(config, node)  # `serve` starts
        assert [(c["old_sha256"], c["new_sha256"]) for c in changes()] == [(None, first)]
        bodies = job_bodies(config, node)  # restarted, file unchanged: nothing new
        assert len(changes()) == 1

        _policy_file(file, "2 years")  # edited while `serve` runs
        second = load_policy_file(file).sha256
        bodies["purge"](_run("purge", after(T0, days=400)))
        assert [(c["old_sha256"], c["new_sha256"]) for c in changes()][1:] == [(first, second)]

        _policy_file(file, "30 days", reason="court order 5/2027 shortens it")
        third = load_policy_file(file).sha256
        bodies["purge"](_run("purge", after(T0, days=401)))
        last = changes()[-1]
        assert (last["old_sha256"], last["new_sha256"]) == (second, third)
        assert json.loads(str(last["below_minimum"])) == {"p": "court order 5/2027 shortens it"}
        assert len(changes()) == 3  # each change once, not again by the run's start

        file.write_text("[[policy]]\nname = 'p'\n", encoding="utf-8")  # broken
        with pytest.raises(ConfigurationError):
            bodies["purge"](_run("purge", after(T0, days=402)))
    finally:
        keys.close()

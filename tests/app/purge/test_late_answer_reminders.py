"""The deadline-reminders job reports each late answer once (CIS Art. 12 para. 3; SC
Art. 6.1), on SQLite and PostgreSQL, with days counted by the one legal clock."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from gateway.app.scheduled import deadline_reminders_body
from gateway.config import NodeConfig
from gateway.crypto.keys.kek import KekRing
from gateway.jobs.scheduler import JobRun
from gateway.rules.clock import Calendars
from gateway.store import Store, audit
from gateway.store import late_answers as late_store
from gateway.store.tables import conversations
from tests.app.purge.world import T0, add_conversation


def _run(at: datetime) -> JobRun:
    return JobRun("deadline-reminders", at, at, "RU-FSSP@test:1")


def test_a_late_answer_is_reported_once(store: Store, ring: KekRing, node_toml: Path) -> None:
    config = NodeConfig.from_toml(node_toml)
    with store.transaction() as conn:
        conv = add_conversation(conn, ring, T0)
        late_store.record(
            conn,
            late_store.LateAnswerRow(
                message_id="5a4e1c7e-0000-4000-8000-000000000001",
                conversation_id=conv.conversation_id,
                kind="Response",
                due=date(2027, 2, 16),
                answered_on=date(2027, 3, 2),
                days_late=10,
                working_days=True,
                recorded_at=T0,
            ),
        )
    body = deadline_reminders_body(config, store, lambda: Calendars.build())
    first = body(_run(T0 + timedelta(hours=1)))
    assert [(r.conversation_id, r.days_left, r.answered_late) for r in first] == [
        (conv.conversation_id, -10, True)
    ]
    assert body(_run(T0 + timedelta(days=1))) == []  # reported once
    with store.read() as conn:
        events = [e for e in audit.events(conn) if e.kind == "deadline.answered-late"]
        assert late_store.count(conn) == 1
    assert [(e.details["due"], e.details["days_late"]) for e in events] == [("2027-02-16", 10)]
    assert events[0].actor == "job:deadline-reminders"


def test_a_paused_term_is_not_reminded(store: Store, ring: KekRing, node_toml: Path) -> None:
    config = NodeConfig.from_toml(node_toml)
    with store.transaction() as conn:
        paused, running = (add_conversation(conn, ring, T0) for _ in range(2))
        for conv, state in ((paused, "awaiting-additional-info"), (running, "in-progress")):
            conn.execute(
                conversations.update()
                .where(conversations.c.conversation_id == conv.conversation_id)
                .values(state=state, deadline=T0.date() + timedelta(days=1))
            )
    sent = deadline_reminders_body(config, store, lambda: Calendars.build())(_run(T0))
    assert [r.conversation_id for r in sent] == [running.conversation_id]

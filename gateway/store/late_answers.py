"""Late answers: the recorded fact that a Response or Refusal came after the due date with no
delay notice covering it (CIS Art. 12 para. 3; SC Art. 6.1). Written in the same transaction
as the answer's step, on both sides; read by the views, the console and the reminder job."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.dialect import insert_if_absent
from gateway.store.tables import late_answers


@dataclass(frozen=True, slots=True)
class LateAnswerRow:
    message_id: str
    conversation_id: str
    kind: str
    due: date
    answered_on: date
    days_late: int
    """In the term's unit: working days when :attr:`working_days`, else calendar days."""
    working_days: bool
    recorded_at: datetime


def record(conn: Connection, row: LateAnswerRow) -> None:
    """Record once: a replayed or re-decided step does not add a second row."""
    insert_if_absent(
        conn,
        late_answers,
        ["message_id"],
        {
            "message_id": row.message_id,
            "conversation_id": row.conversation_id,
            "kind": row.kind,
            "due": row.due,
            "answered_on": row.answered_on,
            "days_late": row.days_late,
            "working_days": row.working_days,
            "recorded_at": row.recorded_at,
        },
    )


def of_conversations(conn: Connection, conversation_ids: Iterable[str]) -> list[LateAnswerRow]:
    ids = list(conversation_ids)
    if not ids:
        return []
    rows = conn.execute(
        sa.select(late_answers)
        .where(late_answers.c.conversation_id.in_(ids))
        .order_by(late_answers.c.recorded_at, late_answers.c.message_id)
    )
    return [_row(r) for r in rows]


def unreported(conn: Connection, limit: int) -> list[LateAnswerRow]:
    """Late answers the reminder job has not reported yet, oldest first."""
    rows = conn.execute(
        sa.select(late_answers)
        .where(late_answers.c.reported_at.is_(None))
        .order_by(late_answers.c.recorded_at, late_answers.c.message_id)
        .limit(limit)
    )
    return [_row(r) for r in rows]


def mark_reported(conn: Connection, message_ids: Iterable[str], at: datetime) -> None:
    ids = list(message_ids)
    if ids:
        conn.execute(
            late_answers.update()
            .where(late_answers.c.message_id.in_(ids), late_answers.c.reported_at.is_(None))
            .values(reported_at=at)
        )


def count(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(late_answers)).scalar_one())


def _row(r: sa.Row) -> LateAnswerRow:
    return LateAnswerRow(
        r.message_id,
        r.conversation_id,
        r.kind,
        r.due,
        r.answered_on,
        r.days_late,
        bool(r.working_days),
        r.recorded_at,
    )

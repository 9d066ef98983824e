"""The original by post (CIS Art. 10 para. 1): per document, when its paper original was sent
and with which tracking number, and when it was received. The one place that records it: the
node's local service (API, console) and ``gateway originals`` (CLI) call :func:`mark_sent` and
:func:`mark_received`, which check the rules (gateway.rules.originals), write the row and the
audit event (``original.sent``, ``original.received``) in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.rules.originals import (
    AGREEMENTS_WITH_ORIGINAL,
    MessageFacts,
    OriginalRefused,
    check_received,
    check_sent,
    check_tracking,
    kinds_with_original,
)
from gateway.store import audit
from gateway.store import messages as msg_store
from gateway.store.messages import Direction
from gateway.store.tables import messages, originals

SENT_EVENT = "original.sent"
RECEIVED_EVENT = "original.received"


@dataclass(frozen=True, slots=True)
class OriginalRow:
    message_id: str
    conversation_id: str
    kind: str
    outgoing: bool
    created: datetime
    sent_on: date | None
    tracking: str | None
    received_on: date | None

    def to_json(self) -> dict[str, str | bool | None]:
        return {
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "kind": self.kind,
            "direction": "out" if self.outgoing else "in",
            "created": self.created.isoformat(),
            "sent_on": self.sent_on.isoformat() if self.sent_on else None,
            "tracking": self.tracking,
            "received_on": self.received_on.isoformat() if self.received_on else None,
        }


def _facts(conn: Connection, message_id: str, zone: ZoneInfo) -> tuple[MessageFacts, str]:
    stored = msg_store.get(conn, message_id)
    if stored is None:
        raise OriginalRefused(
            "UNKNOWN_MESSAGE",
            "message_id",
            f"Документ {message_id} не найден: проверьте идентификатор.",
            f"no stored message {message_id}",
        )
    h = stored.header
    facts = MessageFacts(
        h.message_id,
        h.agreement,
        h.kind,
        stored.direction is Direction.OUT,
        h.created.astimezone(zone).date(),
    )
    return facts, h.conversation_id


def _current(conn: Connection, message_id: str) -> sa.Row | None:
    return conn.execute(
        sa.select(originals).where(originals.c.message_id == message_id).with_for_update()
    ).first()


def mark_sent(
    conn: Connection,
    message_id: str,
    *,
    sent_on: date,
    tracking: str,
    actor: str,
    now: datetime,
    zone: ZoneInfo,
) -> OriginalRow:
    """Record that the original of our document ``message_id`` was posted on ``sent_on`` with
    ``tracking`` (CIS Art. 10 para. 1), audited ``original.sent``. Dates are the node's
    (``zone``). Raises :class:`OriginalRefused` naming the field and the rule; nothing changes."""
    tracking = check_tracking(tracking)
    facts, conversation_id = _facts(conn, message_id, zone)
    row = _current(conn, message_id)
    check_sent(
        facts,
        sent_on=sent_on,
        already_sent=row.sent_on if row else None,
        today=now.astimezone(zone).date(),
    )
    values = {"sent_on": sent_on, "tracking": tracking}
    return _write(conn, SENT_EVENT, message_id, conversation_id, row, values, actor, now)


def mark_received(
    conn: Connection,
    message_id: str,
    *,
    received_on: date,
    actor: str,
    now: datetime,
    zone: ZoneInfo,
) -> OriginalRow:
    """Record that the original of ``message_id`` arrived on ``received_on``: here, for a
    document received; at the other party, for ours (the carrier's delivery). Audited
    ``original.received``; raises :class:`OriginalRefused`, nothing changed."""
    facts, conversation_id = _facts(conn, message_id, zone)
    row = _current(conn, message_id)
    check_received(
        facts,
        received_on=received_on,
        sent_on=row.sent_on if row else None,
        already_received=row.received_on if row else None,
        today=now.astimezone(zone).date(),
    )
    values = {"received_on": received_on}
    return _write(conn, RECEIVED_EVENT, message_id, conversation_id, row, values, actor, now)


def _write(
    conn: Connection,
    event: str,
    message_id: str,
    conversation_id: str,
    row: sa.Row | None,
    values: dict[str, Any],
    actor: str,
    now: datetime,
) -> OriginalRow:
    """Write ``values`` into the original's row (``row``: as it was, None: made now), audit
    ``event`` with them, and return the row as it now is."""
    details = {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items()}
    values = {**values, "updated_at": now}
    if row is not None:
        conn.execute(originals.update().where(originals.c.message_id == message_id), values)
    else:
        conn.execute(
            originals.insert(),
            {"message_id": message_id, "conversation_id": conversation_id, **values},
        )
    audit.append(
        conn,
        now=now,
        actor=actor,
        kind=event,
        subjects={"conversation_id": conversation_id, "message": message_id},
        details=details,
    )
    return get(conn, message_id)  # type: ignore[return-value]


def _select() -> sa.Select:
    m, o = messages.c, originals.c
    return (
        sa.select(
            m.message_id,
            m.conversation_id,
            m.agreement,
            m.kind,
            m.direction,
            m.created,
            o.sent_on,
            o.tracking,
            o.received_on,
        )
        .select_from(messages.outerjoin(originals, o.message_id == m.message_id))
        .where(
            sa.or_(
                *(
                    sa.and_(m.agreement == agreement, m.kind.in_(sorted(kinds)))
                    for agreement in sorted(AGREEMENTS_WITH_ORIGINAL)
                    if (kinds := kinds_with_original(agreement))
                )
            )
        )
        .order_by(m.created, m.id)
    )


def _row(r: sa.Row) -> OriginalRow:
    return OriginalRow(
        r.message_id,
        r.conversation_id,
        r.kind,
        r.direction == Direction.OUT,
        r.created,
        r.sent_on,
        r.tracking,
        r.received_on,
    )


def get(conn: Connection, message_id: str) -> OriginalRow | None:
    """The document's original as recorded (dates empty until marked), or None when it has
    no original by post."""
    r = conn.execute(_select().where(messages.c.message_id == message_id)).first()
    return _row(r) if r is not None else None


def of_conversations(conn: Connection, conversation_ids: Iterable[str]) -> list[OriginalRow]:
    """Every document with an original by post in these conversations, oldest first."""
    ids = list(conversation_ids)
    if not ids:
        return []
    rows = conn.execute(_select().where(messages.c.conversation_id.in_(ids)))
    return [_row(r) for r in rows]


def listed(conn: Connection, conversation_id: str | None = None) -> list[OriginalRow]:
    """Every document with an original by post (of one conversation), oldest first."""
    query = _select()
    if conversation_id is not None:
        query = query.where(messages.c.conversation_id == conversation_id)
    return [_row(r) for r in conn.execute(query)]


def not_sent(conn: Connection, created_before: datetime, limit: int) -> list[OriginalRow]:
    """Our documents created before ``created_before`` whose original is not marked sent,
    oldest first (the reminder job then counts working days)."""
    m = messages.c
    rows = conn.execute(
        _select()
        .where(
            m.direction == Direction.OUT.value,
            m.created < created_before,
            originals.c.sent_on.is_(None),
        )
        .limit(limit)
    )
    return [_row(r) for r in rows]

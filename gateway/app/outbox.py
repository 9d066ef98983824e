"""What waits for delivery, as the dashboard lists it: outbox entries pending or given up, with
the conversation each belongs to, the next due first (the outbox's due index)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from gateway.app.context import AppContext, require
from gateway.exchange.service import Action
from gateway.store.outbox import OutboxState
from gateway.store.tables import messages, outbox

UNDELIVERED_ROWS = 50
"""Outbox entries the dashboard lists, the next due first: a screenful; the metrics count all."""


@dataclass(frozen=True, slots=True)
class UndeliveredItem:
    """An outbox entry not yet delivered."""

    message_id: str
    conversation_id: str
    destination: str
    state: str
    """``pending`` or ``failed``."""
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None = None
    """A stable error code, never text from the peer."""


def undelivered(ctx: AppContext, limit: int = UNDELIVERED_ROWS) -> list[UndeliveredItem]:
    """Entries pending or given up, given-up first, then by when they are next due."""
    require(ctx, Action.LIST_CONVERSATIONS)
    stmt = (
        sa.select(
            outbox.c.message_id,
            messages.c.conversation_id,
            outbox.c.destination,
            outbox.c.state,
            outbox.c.attempts,
            outbox.c.next_attempt_at,
            outbox.c.last_error,
        )
        .join(messages, messages.c.message_id == outbox.c.message_id)
        .where(outbox.c.state.in_((OutboxState.PENDING.value, OutboxState.FAILED.value)))
        .order_by(outbox.c.state.desc(), outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
    )
    with ctx.store.read() as conn:
        return [
            UndeliveredItem(
                message_id=row.message_id,
                conversation_id=row.conversation_id,
                destination=row.destination,
                state=row.state,
                attempts=row.attempts,
                next_attempt_at=row.next_attempt_at
                if row.state == OutboxState.PENDING.value
                else None,
                last_error=row.last_error,
            )
            for row in conn.execute(stmt)
        ]

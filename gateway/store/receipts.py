"""Receipts: which message was acknowledged by which signed receipt (or rejection).

The receipt document itself is a message like any other (kind ``Receipt`` / ``Rejection``,
stored through ``messages``); this table links it to the message it acknowledges, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.dialect import insert_if_absent
from gateway.store.messages import Direction
from gateway.store.tables import receipts

_GET = sa.select(receipts).where(receipts.c.message_id == sa.bindparam("message_id"))


class ReceiptOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str
    """The message acknowledged."""
    receipt_message_id: str
    """The Receipt or Rejection message that acknowledges it."""
    direction: Direction
    """``in``: a peer acknowledged our message; ``out``: we acknowledged theirs."""
    outcome: ReceiptOutcome
    code: str | None
    """For a rejection: the stable problem code."""
    at: datetime


def record(
    conn: Connection,
    *,
    message_id: str,
    receipt_message_id: str,
    direction: Direction,
    outcome: ReceiptOutcome,
    at: datetime,
    code: str | None = None,
) -> bool:
    """Link a receipt to the message it acknowledges; False if one was already recorded."""
    return insert_if_absent(
        conn,
        receipts,
        ["message_id"],
        dict(
            message_id=message_id,
            receipt_message_id=receipt_message_id,
            direction=direction.value,
            outcome=outcome.value,
            code=code,
            at=at,
        ),
    )


def get(conn: Connection, message_id: str) -> Receipt | None:
    """The receipt recorded for a message, or None."""
    row = conn.execute(_GET, {"message_id": message_id}).first()
    if row is None:
        return None
    return Receipt(
        row.message_id,
        row.receipt_message_id,
        Direction(row.direction),
        ReceiptOutcome(row.outcome),
        row.code,
        row.at,
    )

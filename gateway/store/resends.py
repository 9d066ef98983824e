"""Resends: which new message replaced a refused or dead-lettered one (``tables.resends``)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.tables import resends


class AlreadyResent(Exception):
    """The original was resent before (each is replaced at most once)."""

    def __init__(self, original_id: str, resent_as: str) -> None:
        self.original_id = original_id
        self.resent_as = resent_as
        super().__init__(f"message {original_id} was already resent as {resent_as}")


def record(
    conn: Connection, message_id: str, original_id: str, conversation_id: str, at: datetime
) -> None:
    """Link ``message_id`` to the ``original_id`` it replaces, in the caller's transaction.
    Raises :class:`AlreadyResent` when the original already has a replacement."""
    earlier = resent_as(conn, original_id)
    if earlier is not None:
        raise AlreadyResent(original_id, earlier)
    conn.execute(
        resends.insert().values(
            message_id=message_id,
            original_id=original_id,
            conversation_id=conversation_id,
            resent_at=at,
        )
    )


def resent_as(conn: Connection, original_id: str) -> str | None:
    """The message that replaced ``original_id``, if any."""
    return conn.execute(
        sa.select(resends.c.message_id).where(resends.c.original_id == original_id)
    ).scalar_one_or_none()


def resent_from(conn: Connection, message_id: str) -> str | None:
    """The message ``message_id`` replaced, if it is a resend."""
    return conn.execute(
        sa.select(resends.c.original_id).where(resends.c.message_id == message_id)
    ).scalar_one_or_none()

"""The conversation state machine's state, one JSON row per conversation.

The JSON (:mod:`gateway.exchange.machine_codec`) holds ids, states, roles, instants and decision
codes only — no personal data — so it is stored in clear next to the conversation row and written
under the conversation's row lock (taken by its version-checked UPDATE, its INSERT, or
``conversations.get(..., for_update=True)``).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.dialect import upsert
from gateway.store.tables import conversation_machines

_GET = sa.select(conversation_machines.c.machine).where(
    conversation_machines.c.conversation_id == sa.bindparam("conversation_id")
)


def get(conn: Connection, conversation_id: str) -> str | None:
    """The machine's JSON, or None if none was stored for the conversation."""
    return conn.execute(_GET, {"conversation_id": conversation_id}).scalar_one_or_none()


def put(conn: Connection, conversation_id: str, machine: str, now: datetime) -> None:
    """Insert or replace, in one statement; the caller holds the conversation's row lock."""
    upsert(
        conn,
        conversation_machines,
        ["conversation_id"],
        ["machine", "updated_at"],
        {"conversation_id": conversation_id, "machine": machine, "updated_at": now},
    )

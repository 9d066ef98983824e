"""Marking a conversation's proceeding closed (CIS Art. 9.6) as a use case: ``gateway proceedings
close``, the local API's ``POST /api/v1/conversations/{conversation_id}/proceeding-closed`` and
the console's form call :func:`close_proceeding` as their actor (``tests/app/
test_case_surfaces.py`` compares the three). A refusal is :class:`ProceedingCloseRefused` with
the rule's code and Russian message (``UNKNOWN_CONVERSATION``: the servers answer 404).

Audit event written (by the store, in the same transaction)::

    proceeding.closed   subjects conversation_id; details closed_at, reference
"""

from __future__ import annotations

from datetime import datetime

from gateway.app.context import AppContext, require
from gateway.exchange.service import Action
from gateway.store import conversations
from gateway.store.conversations import MAX_PROCEEDING_REFERENCE, ProceedingCloseRefused

__all__ = ["MAX_PROCEEDING_REFERENCE", "ProceedingCloseRefused", "close_proceeding"]


def close_proceeding(
    ctx: AppContext, conversation_id: str, closed_at: datetime, reference: str
) -> datetime:
    """Record when the proceeding was closed; return the stored instant. Raises
    :class:`ProceedingCloseRefused` (unknown conversation, already closed, a bad date or
    reference); nothing is changed then."""
    require(ctx, Action.CLOSE_PROCEEDING, conversation_id)
    with ctx.store.transaction() as conn:
        closed = conversations.close_proceeding(
            conn,
            conversation_id,
            closed_at=closed_at,
            reference=reference,
            actor=ctx.actor.code,
            now=ctx.clock(),
        )
    assert closed.proceeding_closed_at is not None
    return closed.proceeding_closed_at

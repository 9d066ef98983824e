"""The original by post (CIS Art. 10 para. 1) as use cases: ``gateway originals sent|received|
list``; the local API's ``POST /api/v1/messages/{message_id}/original/sent|received`` and the
console's forms call :func:`mark_sent` and :func:`mark_received` as their actor (``tests/app/
test_case_surfaces.py`` compares the three). A refusal is
:class:`~gateway.rules.originals.OriginalRefused` naming the field and the rule
(``UNKNOWN_MESSAGE``: the servers answer 404).

Audit events written (by the store, in the same transaction)::

    original.sent       subjects conversation_id, message; details sent_on, tracking
    original.received   subjects conversation_id, message; details received_on
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from gateway.app.context import AppContext, require
from gateway.exchange.service import Action
from gateway.rules.originals import OriginalRefused
from gateway.store import originals
from gateway.store.originals import OriginalRow

__all__ = ["OriginalRefused", "OriginalRow", "list_originals", "mark_received", "mark_sent"]


def _zone(ctx: AppContext) -> ZoneInfo:
    """Dates are the node's: in its ``[node] timezone``."""
    return ZoneInfo(ctx.config.node.timezone if ctx.config else "UTC")


def mark_sent(ctx: AppContext, message_id: str, sent_on: date, tracking: str) -> OriginalRow:
    """Record that the original of our document was posted on ``sent_on`` with ``tracking``."""
    require(ctx, Action.RECORD_ORIGINAL, message_id)
    with ctx.store.transaction() as conn:
        return originals.mark_sent(
            conn,
            message_id,
            sent_on=sent_on,
            tracking=tracking,
            actor=ctx.actor.code,
            now=ctx.clock(),
            zone=_zone(ctx),
        )


def mark_received(ctx: AppContext, message_id: str, received_on: date) -> OriginalRow:
    """Record that the original of ``message_id`` arrived on ``received_on``."""
    require(ctx, Action.RECORD_ORIGINAL, message_id)
    with ctx.store.transaction() as conn:
        return originals.mark_received(
            conn,
            message_id,
            received_on=received_on,
            actor=ctx.actor.code,
            now=ctx.clock(),
            zone=_zone(ctx),
        )


def list_originals(ctx: AppContext, conversation_id: str | None = None) -> list[OriginalRow]:
    """Every document with an original by post (of one conversation), oldest first."""
    require(ctx, Action.LIST_CONVERSATIONS)
    with ctx.store.read() as conn:
        return originals.listed(conn, conversation_id)

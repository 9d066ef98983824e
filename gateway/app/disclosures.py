"""Reading the record of disclosures (CIS Art. 9.1-9.3) as a use case: ``gateway disclose
list``. Searching by a recipient's name or opening the sealed names is itself a use of personal
data: recorded, by ids and counts only.

Audit event written here::

    disclosure.records.read   subjects message (when asked by message);
                              details by_recipient, decrypted, records
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.app.context import ACTOR_CHARS, AppContext, require
from gateway.crypto.keys.kek import KekRing
from gateway.exchange.service import Action
from gateway.store import audit, disclosures
from gateway.store.disclosures import DisclosureRecord, DisclosureStoreError, SealedFacts

__all__ = ["DisclosureRecord", "DisclosureStoreError", "Disclosures", "SealedFacts", "read"]


@dataclass(frozen=True, slots=True)
class Disclosures:
    records: list[DisclosureRecord]
    opened: list[SealedFacts]
    """Each record's sealed recipient and purpose, in order (empty unless asked)."""


def read(
    ctx: AppContext,
    ring: KekRing,
    *,
    message_id: str | None = None,
    recipient: str | None = None,
    show_recipients: bool = False,
) -> Disclosures:
    """The disclosures of one message, or to one recipient (by the sealed name's keyed tag).
    Raises :class:`DisclosureStoreError` when a sealed record does not open."""
    require(ctx, Action.DISCLOSE, message_id or "")
    now = ctx.clock()
    with ctx.store.transaction() as conn:
        if message_id is not None:
            found = disclosures.list_for_message(conn, message_id)
        else:
            found = disclosures.find_by_recipient(conn, ring, recipient or "", now)
        opened = (
            [disclosures.open_sealed(conn, ring, r.disclosure_id, now) for r in found]
            if show_recipients
            else []
        )
        if recipient is not None or show_recipients:
            audit.append(
                conn,
                now=now,
                actor=ctx.actor.name[:ACTOR_CHARS],
                kind="disclosure.records.read",
                subjects={"message": message_id} if message_id is not None else {},
                details={
                    "by_recipient": recipient is not None,
                    "decrypted": show_recipients,
                    "records": len(found),
                },
            )
    return Disclosures(found, opened)

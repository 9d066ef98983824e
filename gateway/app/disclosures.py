"""Disclosing a received document and reading the record of disclosures (CIS Art. 9.1-9.3) as
use cases: ``gateway disclose`` and ``gateway disclosures``. Searching by a recipient's name or
opening the sealed names is itself a use of personal data: recorded, by ids and counts only.
The local API and the console disclose through the node's service, which calls the same
:func:`gateway.exchange.disclosure.disclose` (``document.disclosed`` / ``disclosure.refused``).

Audit event written here::

    disclosure.records.read   subjects message (when asked by message);
                              details by_recipient, decrypted, records
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.app.context import ACTOR_CHARS, AppContext, require
from gateway.crypto.keys.kek import KekRing
from gateway.exchange import disclosure
from gateway.exchange.disclosure import Disclosure, DisclosureRefused, RecipientCategory
from gateway.exchange.service import Action
from gateway.store import audit, disclosures
from gateway.store.disclosures import DisclosureRecord, DisclosureStoreError, SealedFacts

__all__ = [
    "Disclosure",
    "DisclosureRecord",
    "DisclosureRefused",
    "DisclosureStoreError",
    "Disclosures",
    "SealedFacts",
    "disclose",
    "read",
]


def disclose(
    ctx: AppContext,
    ring: KekRing,
    message_id: str,
    *,
    recipient: str,
    category: str,
    purpose: str,
) -> Disclosure:
    """Judge whether the agreement allows handing the document to ``recipient``; record the
    disclosure (recipient and purpose sealed under ``ring``) and return the signed document,
    or record the refusal and raise :class:`DisclosureRefused`."""
    require(ctx, Action.DISCLOSE, message_id)
    if ctx.config is None:
        raise ValueError("disclosing needs the node's configuration (its body id)")
    return disclosure.disclose(
        ctx.store,
        ring,
        body_id=ctx.config.node.body_id,
        message_id=message_id,
        recipient=recipient,
        category=RecipientCategory(category),
        purpose=purpose,
        actor=ctx.actor.name[:ACTOR_CHARS],
        now=ctx.clock(),
    )


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

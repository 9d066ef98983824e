"""Disclosing a received document and reading the record of disclosures (CIS Art. 9.1-9.3) as
use cases: ``gateway disclose`` and ``gateway disclosures``; the local API's ``POST
/api/v1/messages/{message_id}/disclosures`` and the console's disclosure form call
:func:`disclose` too, as their actor (``tests/app/test_case_surfaces.py`` compares the three).
Searching by a recipient's name or opening the sealed names is itself a use of personal data:
recorded, by ids and counts only. Both need the node's KEK ring in the context
(:attr:`AppContext.kek_ring <gateway.app.context.AppContext.kek_ring>`).

Audit events written (by :func:`gateway.exchange.disclosure.disclose`)::

    document.disclosed        subjects message, conversation, disclosure;
                              details code, article, category, consent_request
    disclosure.refused        subjects message, conversation; details code, article, category

and here::

    disclosure.records.read   subjects message (when asked by message);
                              details by_recipient, decrypted, records
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.app.context import AppContext, require
from gateway.crypto.keys.kek import KekRing
from gateway.exchange import disclosure
from gateway.exchange.disclosure import (
    Disclosure,
    DisclosureError,
    DisclosureRefused,
    RecipientCategory,
)
from gateway.exchange.service import Action
from gateway.store import audit, disclosures
from gateway.store.disclosures import DisclosureRecord, DisclosureStoreError, SealedFacts

__all__ = [
    "Disclosure",
    "DisclosureError",
    "DisclosureRecord",
    "DisclosureRefused",
    "DisclosureStoreError",
    "Disclosures",
    "SealedFacts",
    "disclose",
    "read",
]


def _ring(ctx: AppContext) -> KekRing:
    if ctx.kek_ring is None:
        raise ValueError("disclosures need the node's KEK ring in the context (kek_ring)")
    return ctx.kek_ring


def disclose(
    ctx: AppContext,
    message_id: str,
    *,
    recipient: str,
    category: str,
    purpose: str,
) -> Disclosure:
    """Judge whether the agreement allows handing the document to ``recipient``; record the
    disclosure (recipient and purpose sealed under the node's KEK ring) and return the signed
    document, or record the refusal and raise :class:`DisclosureRefused`; a message not
    stored here (or of other bodies' conversation) raises :class:`DisclosureError`."""
    require(ctx, Action.DISCLOSE, message_id)
    if ctx.config is None:
        raise ValueError("disclosing needs the node's configuration (its body id)")
    return disclosure.disclose(
        ctx.store,
        _ring(ctx),
        body_id=ctx.config.node.body_id,
        message_id=message_id,
        recipient=recipient,
        category=RecipientCategory(category),
        purpose=purpose,
        actor=ctx.actor.code,
        now=ctx.clock(),
    )


@dataclass(frozen=True, slots=True)
class Disclosures:
    records: list[DisclosureRecord]
    opened: list[SealedFacts]
    """Each record's sealed recipient and purpose, in order (empty unless asked)."""


def read(
    ctx: AppContext,
    *,
    message_id: str | None = None,
    recipient: str | None = None,
    show_recipients: bool = False,
) -> Disclosures:
    """The disclosures of one message, or to one recipient (by the sealed name's keyed tag).
    Raises :class:`DisclosureStoreError` when a sealed record does not open."""
    require(ctx, Action.DISCLOSE, message_id or "")
    ring = _ring(ctx)
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
                actor=ctx.actor.code,
                kind="disclosure.records.read",
                subjects={"message": message_id} if message_id is not None else {},
                details={
                    "by_recipient": recipient is not None,
                    "decrypted": show_recipients,
                    "records": len(found),
                },
            )
    return Disclosures(found, opened)

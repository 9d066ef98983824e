"""Conversations: filling the list's case number, debtor and search index for conversations
recorded before they existed (migration 0012 adds the columns; the values need the KEK)."""

from __future__ import annotations

from collections.abc import Callable

from gateway.app.context import AppContext, require
from gateway.crypto.keys.kek_ring import load_kek_ring
from gateway.crypto.keys.keystore import KeyStore
from gateway.exchange import listing
from gateway.exchange.service import Action

REINDEX_BATCH = 500
"""Conversations per transaction: each opens one document; a batch stays well under a second."""


def reindex(
    ctx: AppContext, keys: KeyStore, *, progress: Callable[[int], None] | None = None
) -> int:
    """Seal the list display and index the tags of every conversation that has none, from its
    opening document, in batches (resumable: run it again after an interruption); how many.
    Needs the KEK, so it is an administrator's act on the node's host; recorded."""
    require(ctx, Action.MANAGE_KEYS, "search-index")
    ring = load_kek_ring(keys)
    done, after = 0, ""
    while True:
        with ctx.store.transaction() as conn:
            batch = listing.reindex(conn, ring, after, REINDEX_BATCH, ctx.clock())
        if not batch:
            break
        done, after = done + len(batch), batch[-1]
        if progress is not None:
            progress(done)
    with ctx.store.transaction() as conn:
        ctx.audit(
            conn,
            "conversations.reindexed",
            details={"conversations": done},
        )
    return done

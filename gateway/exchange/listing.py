"""The conversation list's case number and debtor, and the search by them (issue #15 item 3).

At record time — in the write transaction that opens a conversation — the opening document's
list facts (:func:`gateway.rules.listing.listing_facts`: case number, masked debtor) are sealed
into the conversation row and the debtor's names and the case number are indexed as keyed HMAC
tags (``search_tags``). Reading a page then opens one small sealed value per row shown (at most
a page, 50) with a key derived once; no message is decrypted and no document parsed.

Keys: one 256-bit secret in ``secret_keys`` (``search-index``), wrapped by the node's KEK — so
it is the node's key material, re-wrapped on KEK rotation, useless in a stolen database without
the KEK — from which HKDF derives the tag key and the display key
(:func:`gateway.crypto.at_rest.search_keys`). The derived keys are kept in memory per process,
like the KEK itself.

Confidential conversations (CIS Art. 16; SC Art. 8.1): a user without ``confidential-reader``
gets neither value (``hidden``: the row shows «скрыто») and the sealed value is not opened for
them; their searches leave confidential conversations out, since a hit alone would tell which
debtor or case a confidential conversation is about.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree

from gateway.crypto import at_rest
from gateway.crypto.at_rest import SearchKeys, WrappedKey
from gateway.crypto.keys.kek import KekRing
from gateway.rules.listing import ListingFacts, listing_facts
from gateway.store import conversations as conv_store
from gateway.store import keys as key_store
from gateway.store import messages as msg_store
from gateway.xml.parsing import parse_untrusted

MAX_SEARCH_CHARS = 200
"""A case number or a name; longer is not a search."""

_AAD_DOMAIN = "gateway:conversation-display:v1"
_CACHE: dict[tuple[str, bytes], SearchKeys] = {}
_CACHE_LOCK = threading.Lock()
_BY_ENGINE: weakref.WeakKeyDictionary[Any, SearchKeys] = weakref.WeakKeyDictionary()
_MADE_IN: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
"""Per engine, the transaction that made the search secret (not kept until another reads it)."""


@dataclass(frozen=True, slots=True)
class Listing:
    """What the list shows of one conversation to one user."""

    case_number: str | None = None
    debtor: str | None = None
    hidden: bool = False
    """Confidential, and the user may not read it: neither value is given."""


def record_listing(
    conn: Any, ring: KekRing, conversation_id: str, opening: etree._Element, now: datetime
) -> None:
    """Seal the list facts of ``opening`` into its (existing) conversation and index its tags,
    in the caller's write transaction."""
    made = listed(conn, ring, conversation_id, opening, now)
    conv_store.set_listing(conn, conversation_id, made.nonce, made.sealed, made.tags)


def listed(
    conn: Any, ring: KekRing, conversation_id: str, opening: etree._Element, now: datetime
) -> conv_store.Listed:
    """The sealed list facts of ``opening`` and its tags, for the conversation it opens
    (``conversations.open_conversation(listing=…)`` writes them with the row), in the caller's
    write transaction."""
    facts = listing_facts(opening)
    keys = _keys(conn, ring, now)
    nonce, sealed = seal_display(keys, conversation_id, facts)
    return conv_store.Listed(nonce, sealed, tuple(tags_of(keys, facts)))


def seal_display(
    keys: SearchKeys, conversation_id: str, facts: ListingFacts
) -> tuple[bytes, bytes]:
    """``(nonce, sealed)`` of the list's values, bound to the conversation."""
    plain = json.dumps({"case": facts.case_number, "debtor": facts.debtor}, ensure_ascii=False)
    return at_rest.encrypt_part(keys.display, plain.encode(), _aad(conversation_id))


def tags_of(keys: SearchKeys, facts: ListingFacts) -> list[bytes]:
    """The search tags of a conversation: its debtor's names and its case number."""
    tags = [at_rest.search_tag(keys.tag, "debtor", name) for name in facts.debtor_names]
    if facts.case_number:
        tags.append(at_rest.search_tag(keys.tag, "case", facts.case_number))
    return tags


def search_tags(conn: Any, ring: KekRing, query: str) -> tuple[bytes, ...]:
    """The tags a typed search matches: as a case number and as a debtor's name (either may
    be what was typed). Empty when nothing was ever indexed or the text normalises to nothing."""
    keys = _read_keys(conn, ring)
    if keys is None:
        return ()
    tags = []
    for field in ("case", "debtor"):
        try:
            tags.append(at_rest.search_tag(keys.tag, field, query[:MAX_SEARCH_CHARS]))
        except at_rest.AtRestError:
            continue  # empty after normalisation: nothing to find by
    return tuple(tags)


def listings(
    conn: Any,
    ring: KekRing,
    items: Iterable[conv_store.Conversation],
    *,
    may_read_confidential: bool,
) -> dict[str, Listing]:
    """Each conversation's list values for a user (by id), opened from the sealed display."""
    keys = _read_keys(conn, ring)
    shown: dict[str, Listing] = {}
    for c in items:
        if c.confidential and not may_read_confidential:
            shown[c.conversation_id] = Listing(hidden=True)
        elif keys is not None and c.display is not None and c.display_nonce is not None:
            shown[c.conversation_id] = _open(keys, c.conversation_id, c.display_nonce, c.display)
    return shown


def reindex(conn: Any, ring: KekRing, after: str, limit: int, now: datetime) -> list[str]:
    """Index up to ``limit`` conversations recorded before the list display existed (id order
    after ``after``) from their opening documents; their ids. A conversation whose opening
    document is gone (purged) gets an empty display, so it is not tried again."""
    done = conv_store.unindexed(conn, after, limit)
    for conversation_id in done:
        record_listing(conn, ring, conversation_id, _opening(conn, ring, conversation_id), now)
    return done


def _opening(conn: Any, ring: KekRing, conversation_id: str) -> etree._Element:
    for message in msg_store.list_for_conversation(conn, conversation_id):
        try:
            return parse_untrusted(msg_store.read_document(conn, message.header.message_id, ring))
        except (msg_store.MessageGone, msg_store.KeyShredded):
            break
    return etree.Element("Envelope")  # no document left: nothing to show or find by


def _open(keys: SearchKeys, conversation_id: str, nonce: bytes, sealed: bytes) -> Listing:
    plain = json.loads(at_rest.decrypt_part(keys.display, nonce, sealed, _aad(conversation_id)))
    return Listing(case_number=plain.get("case"), debtor=plain.get("debtor"))


def _aad(conversation_id: str) -> bytes:
    """Binds a sealed display to its conversation: moved to another row it fails to open."""
    return f"{_AAD_DOMAIN}\x00{conversation_id}".encode()


def _keys(conn: Any, ring: KekRing, now: datetime) -> SearchKeys:
    """The keys for writing, the secret made on first use. Found stored, they are kept per
    engine like :func:`_read_keys` (no key row read per conversation opened) — unless this
    very transaction made the secret: it could still roll back."""
    engine = conn.engine
    keys = _BY_ENGINE.get(engine)
    if keys is not None:
        return keys
    stored = key_store.stored_search_secret(conn)
    if stored is not None and _MADE_IN.get(engine) is not conn.get_transaction():
        return _BY_ENGINE.setdefault(engine, _derive(stored, ring))
    if stored is None:
        key_store.search_secret(conn, ring, now)  # made here, in the caller's write
        _MADE_IN[engine] = conn.get_transaction()
        stored = key_store.stored_search_secret(conn)
        assert stored is not None
    return _derive(stored, ring)


def _read_keys(conn: Any, ring: KekRing) -> SearchKeys | None:
    """The keys for reading, None before anything was indexed. The secret of a store never
    changes (a KEK rotation re-wraps the same secret), so once found it is kept per engine and a
    page reads no key row."""
    engine = conn.engine
    keys = _BY_ENGINE.get(engine)
    if keys is None:
        stored = key_store.stored_search_secret(conn)
        if stored is None:
            return None
        keys = _BY_ENGINE.setdefault(engine, _derive(stored, ring))
    return keys


def _derive(stored: WrappedKey, ring: KekRing) -> SearchKeys:
    """Derived once per process and wrapped secret (a PKCS#11 unwrap per page would cost a
    token round trip); a re-wrapped secret is a new cache entry with the same keys."""
    key = (stored.kek_id, stored.blob)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is None:
        cached = at_rest.search_keys(at_rest.unwrap_data_key(stored, ring))
        with _CACHE_LOCK:
            _CACHE[key] = cached
    return cached

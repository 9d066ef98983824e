"""Conversations: compare-and-set transitions, keyset pages with filters, counts, debtor tags."""

from __future__ import annotations

import random
import secrets
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy.engine import Connection

from gateway.crypto import at_rest
from gateway.store import Store, conversations
from gateway.store.conversations import ConversationFilter, Cursor
from tests.store import factory
from tests.store.conftest import NOW

BODIES = ("RU-FSSP", "KZ-MJ", "BY-MJ", "KG-SIS")
STATES = ("received", "answered", "overdue", "closed")
KINDS = ("Request", "ProtectionMeasuresInquiry")


def _populate(store: Store, count: int, seed: int) -> list[conversations.Conversation]:
    rng = random.Random(seed)
    with store.transaction() as conn:
        for i in range(count):
            requesting, requested = rng.sample(BODIES, 2)
            # Several conversations share an opened_at: the id must break the tie.
            opened = NOW - timedelta(minutes=rng.randrange(count // 3))
            factory.open_conversation(
                conn,
                opened,
                agreement=rng.choice(("cis-enforcement", "ru-kz-supreme-courts")),
                requesting_party=requesting,
                requested_party=requested,
                opening_kind=rng.choice(KINDS),
                state=rng.choice(STATES),
                confidential=rng.random() < 0.3,
                deadline=None
                if i % 7 == 0
                else date(2026, 12, 1) + timedelta(days=rng.randrange(40)),
            )
        return _all(conn)


def _all(conn) -> list[conversations.Conversation]:
    out, cursor = [], None
    while True:
        page = conversations.list_page(conn, after=cursor, limit=conversations.MAX_PAGE_SIZE)
        out += page.items
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def _expected(rows, f: ConversationFilter):
    def keep(c) -> bool:
        return (
            (f.agreement is None or c.agreement == f.agreement)
            and (f.body is None or f.body in (c.requesting_party, c.requested_party))
            and (f.state is None or c.state == f.state)
            and (f.kind is None or c.opening_kind == f.kind)
            and (
                f.deadline_from is None
                or (c.deadline is not None and c.deadline >= f.deadline_from)
            )
            and (
                f.deadline_before is None
                or (c.deadline is not None and c.deadline <= f.deadline_before)
            )
            and (f.confidential is None or c.confidential == f.confidential)
        )

    return sorted(
        (c for c in rows if keep(c)), key=lambda c: (c.opened_at, c.conversation_id), reverse=True
    )


FILTERS = [
    ConversationFilter(),
    ConversationFilter(state="overdue"),
    ConversationFilter(body="KZ-MJ"),
    ConversationFilter(agreement="ru-kz-supreme-courts", confidential=True),
    ConversationFilter(kind="ProtectionMeasuresInquiry", body="BY-MJ"),
    ConversationFilter(deadline_from=date(2026, 12, 10), deadline_before=date(2026, 12, 20)),
    ConversationFilter(state="received", deadline_before=date(2026, 12, 15), confidential=False),
    ConversationFilter(body="XX-NONE"),
]


def test_keyset_pages_match_a_full_sort(store: Store) -> None:
    everything = _populate(store, 150, seed=7)
    assert len(everything) == 150
    for f in FILTERS:
        expected = _expected(everything, f)
        for size in (4, 50):
            got, cursor, pages = [], None, 0
            with store.read() as conn:
                while True:
                    page = conversations.list_page(conn, f, after=cursor, limit=size)
                    assert len(page.items) <= size
                    got += page.items
                    pages += 1
                    if page.next_cursor is None:
                        break
                    # The cursor survives a trip through the browser.
                    cursor = Cursor.decode(page.next_cursor.encode())
            assert [c.conversation_id for c in got] == [c.conversation_id for c in expected], f
            assert pages == max(1, -(-len(expected) // size))


def test_pages_stay_correct_when_rows_arrive_between_pages(store: Store) -> None:
    _populate(store, 30, seed=3)
    with store.read() as conn:
        first = conversations.list_page(conn, limit=10)
    with store.transaction() as conn:  # newer conversations arrive while the operator reads
        for _ in range(5):
            factory.open_conversation(conn, NOW + timedelta(days=1))
    with store.read() as conn:
        rest = _after(conn, first.next_cursor)
    ids = [c.conversation_id for c in first.items + tuple(rest)]
    assert len(ids) == len(set(ids)) == 30


def _after(conn, cursor):
    out = []
    while cursor is not None:
        page = conversations.list_page(conn, after=cursor, limit=10)
        out += page.items
        cursor = page.next_cursor
    return out


def test_count_by_state(store: Store) -> None:
    everything = _populate(store, 120, seed=11)
    for f in FILTERS[:4]:
        expected: dict[str, int] = {}
        for c in _expected(everything, f):
            expected[c.state] = expected.get(c.state, 0) + 1
        with store.read() as conn:
            assert conversations.count_by_state(conn, f) == expected


@pytest.mark.parametrize("text", ["", "!!!", "x" * 300, "WyIyMDI2LTExLTIzVDEwOjAwOjAwIiwgMV0="])
def test_garbage_cursor_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="cursor"):
        Cursor.decode(text)


def test_page_limit_is_bounded(store: Store) -> None:
    with store.read() as conn, pytest.raises(ValueError, match="limit"):
        conversations.list_page(conn, limit=conversations.MAX_PAGE_SIZE + 1)


def test_transition_is_compare_and_set(store: Store) -> None:
    with store.transaction() as conn:
        cid = factory.open_conversation(conn, NOW)
        assert not conversations.open_conversation(
            conn,
            conversation_id=cid,
            agreement="x",
            requesting_party="A",
            requested_party="B",
            opening_kind="Request",
            state="other",
            confidential=True,
            deadline=None,
            now=NOW,
        )
    before = conversations.get
    later = NOW + timedelta(hours=1)
    with store.transaction() as conn:
        original = before(conn, cid)
        assert conversations.transition(
            conn,
            cid,
            expected_state="received",
            new_state="answered",
            now=later,
            last_kind="Response",
            deadline=None,
        )
        assert not conversations.transition(
            conn, cid, expected_state="received", new_state="closed", now=later
        )
        after = conversations.get(conn, cid, for_update=True)
    assert after == replace(
        original, state="answered", last_kind="Response", deadline=None, updated_at=later, version=2
    )


def test_a_decision_on_a_snapshot_applies_only_at_its_version(store: Store) -> None:
    """The shells decide on an unlocked snapshot and let the UPDATE check its version: a writer
    that moved the conversation meanwhile, even back to the same state, makes it apply nothing."""
    with store.transaction() as conn:
        cid = factory.open_conversation(conn, NOW)
    with store.read() as conn:
        snapshot = conversations.get(conn, cid)
    assert snapshot is not None
    later = NOW + timedelta(hours=1)
    with store.transaction() as conn:  # another writer: same state, new version
        assert conversations.transition(
            conn, cid, expected_state=snapshot.state, new_state=snapshot.state, now=later
        )
    with store.transaction() as conn:
        assert not conversations.transition(
            conn,
            cid,
            expected_state=snapshot.state,
            new_state="answered",
            now=later,
            expected_version=snapshot.version,
        )
        assert conversations.transition(
            conn,
            cid,
            expected_state=snapshot.state,
            new_state="answered",
            now=later,
            expected_version=snapshot.version + 1,
        )
        after = conversations.get(conn, cid)
    assert after is not None and (after.state, after.version) == ("answered", 3)


def _tagged(conn: Connection, *tags: bytes) -> list[str]:
    page = conversations.list_page(conn, conversations.ConversationFilter(tags=tags))
    return [c.conversation_id for c in page.items]


def test_search_tags_find_conversations_and_the_display_is_kept(store: Store) -> None:
    key = at_rest.search_keys(secrets.token_bytes(32)).tag
    tag = at_rest.search_tag(key, "debtor", factory.DEBTOR_NAME)
    other = at_rest.search_tag(key, "debtor", "Другой Должник")
    case = at_rest.search_tag(key, "case", "184512/26/77039-ИП")
    with store.transaction() as conn:
        a = factory.open_conversation(conn, NOW)
        b = factory.open_conversation(conn, NOW + timedelta(minutes=1))
        c = factory.open_conversation(conn, NOW)
        conversations.set_listing(conn, a, b"n" * 12, b"sealed-a", [tag, tag, other])
        conversations.set_listing(conn, b, b"m" * 12, b"sealed-b", [tag, case])
        conversations.set_listing(conn, b, b"m" * 12, b"sealed-b", [tag, case])  # again: harmless
    with store.read() as conn:
        assert _tagged(conn, at_rest.search_tag(key, "debtor", "қасымов ерлан маратұлы")) == [b, a]
        assert _tagged(conn, other) == [a]
        assert _tagged(conn, case, other) == [b, a]
        assert _tagged(conn, at_rest.search_tag(key, "case", "1")) == []
        stored = conversations.get(conn, b)
        assert stored is not None and (stored.display_nonce, stored.display) == (
            b"m" * 12,
            b"sealed-b",
        )
        assert conversations.unindexed(conn, "", 10) == [c]
        assert conversations.unindexed(conn, c, 10) == []


def _scan(store: Store) -> dict[tuple[str, str, str, str], int]:
    scanned: dict[tuple[str, str, str, str], int] = {}
    with store.read() as conn:
        for c in _all(conn):
            key = (c.state, c.agreement, c.requesting_party, c.requested_party)
            scanned[key] = scanned.get(key, 0) + 1
    return scanned


def test_counts_equal_a_scan_after_opens_moves_rollbacks_and_purges(store: Store) -> None:
    """The counts table follows every change in its own transaction: opened, moved (and moved
    again in one transaction), a unit of a batch undone, a whole transaction rolled back,
    conversations purged; it always equals a scan, and the overview's count reads it."""
    everything = _populate(store, 60, seed=5)
    rng = random.Random(5)
    with store.transaction() as conn:
        for c in everything[:20]:
            new = rng.choice(STATES)
            assert conversations.transition(
                conn, c.conversation_id, expected_state=c.state, new_state=new, now=NOW
            )
            assert conversations.transition(
                conn, c.conversation_id, expected_state=new, new_state="closed", now=NOW
            )
        # A compare-and-set that fails changes no count.
        assert not conversations.transition(
            conn, everything[20].conversation_id, expected_state="nope", new_state="x", now=NOW
        )
    with store.batch() as batch:
        with batch.unit("kept") as conn:
            factory.open_conversation(conn, NOW, agreement="ru-kz-supreme-courts")
        with batch.unit("undone") as conn:
            factory.open_conversation(conn, NOW, state="answered")
            conversations.transition(
                conn,
                everything[30].conversation_id,
                expected_state=everything[30].state,
                new_state="overdue",
                now=NOW,
            )
            raise RuntimeError("this unit fails")
    with pytest.raises(RuntimeError), store.transaction() as conn:
        factory.open_conversation(conn, NOW)
        raise RuntimeError("the whole transaction fails")
    with store.transaction() as conn:
        gone = [c.conversation_id for c in everything[40:50]]
        assert conversations.delete(conn, gone) == 10
    scanned = _scan(store)
    assert sum(scanned.values()) == 60 + 1 - 10
    with store.read() as conn:
        assert conversations.count_by_key(conn) == scanned
        by_state: dict[str, int] = {}
        for (state, *_), n in scanned.items():
            by_state[state] = by_state.get(state, 0) + n
        assert conversations.count_by_state(conn) == by_state


def test_due_by_orders_by_due_date_across_states(store: Store) -> None:
    everything = _populate(store, 80, seed=13)
    states = ("received", "overdue")
    due = date(2026, 12, 15)
    expected = sorted(
        (
            c
            for c in everything
            if c.state in states and c.deadline is not None and c.deadline <= due
        ),
        key=lambda c: (c.deadline, c.opened_at, c.conversation_id),
    )
    assert len({c.state for c in expected}) == 2  # the list mixes states
    with store.read() as conn:
        got = conversations.due_by(conn, states, due, limit=10)
    assert [c.conversation_id for c in got] == [c.conversation_id for c in expected[:10]]

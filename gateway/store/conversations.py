"""Conversations: a request (or unsolicited information) and everything sent about it.

The store keeps a conversation's state, deadline and confidentiality flag; the state machine
itself lives in ``gateway.exchange`` and hands the store plain strings. A transition is a
compare-and-set on the state (and a version number), so two processes can never both move
the same conversation from the same state.

The console's list is a keyset page ordered newest first by ``(opened_at, conversation_id)``:
each page starts strictly after the previous page's last row, so page N costs the same as
page 1 at a million rows, and the filters each lead a composite index ending in that order.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.model.problems import Refused
from gateway.store import audit, counts
from gateway.store.dialect import in_text_set, insert_all_if_absent, insert_if_absent
from gateway.store.tables import (
    ID_LENGTH,
    conversation_machines,
    conversations,
    messages,
    receipts,
    search_tags,
)

MAX_PAGE_SIZE = 200
"""A console page larger than this is a scrape, not a page."""
MAX_CURSOR_LENGTH = 200
"""A cursor is a timestamp and a UUID in base64; anything longer is not ours."""


@dataclass(frozen=True, slots=True)
class Conversation:
    conversation_id: str
    agreement: str
    requesting_party: str
    requested_party: str
    opening_kind: str
    """The kind that opened it (``Request``, ``UnsolicitedInformation``, …)."""
    last_kind: str
    """The kind of the latest message stored in it."""
    state: str
    confidential: bool
    deadline: date | None
    opened_at: datetime
    updated_at: datetime
    version: int
    """Bumped by every transition; lets a caller detect that someone else moved it."""
    closed_at: datetime | None
    """When it reached a closed state (a retention period may count from it)."""
    proceeding_closed_at: datetime | None
    """When the case system reported the proceeding (or court case) closed."""
    urgent: bool = False
    """Its request was sent as urgent (SC Art. 5.2)."""
    display_nonce: bytes | None = None
    display: bytes | None = None
    """The list's case number and masked debtor, sealed (``gateway.exchange.listing``);
    None: not indexed yet."""


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    """What a list of conversations is filtered on (the local API, the console, the store);
    ``None`` means "any". All given filters must hold (AND)."""

    agreement: str | None = None
    body: str | None = None
    """Either party's body id (requesting or requested)."""
    state: str | None = None
    kind: str | None = None
    """The opening kind."""
    deadline_from: date | None = None
    """Deadline on or after this date (conversations without a deadline are left out)."""
    deadline_before: date | None = None
    """Deadline on or before this date."""
    confidential: bool | None = None
    search: str | None = None
    """A case number or a debtor's name, found through the keyed index (exact after
    normalisation: case, ё/е, spaces, dashes; see gateway.exchange.listing). The local
    service turns it into ``tags``; the store reads only those."""
    tags: tuple[bytes, ...] | None = None
    """Only conversations indexed under one of these search tags (debtor or case number)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position after the last row of a page."""

    opened_at: datetime
    conversation_id: str

    def encode(self) -> str:
        raw = json.dumps([self.opened_at.astimezone(UTC).isoformat(), self.conversation_id])
        return base64.urlsafe_b64encode(raw.encode()).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Parse a cursor from a request; ``ValueError`` naming the problem if it is not one."""
        if len(text) > MAX_CURSOR_LENGTH:
            raise ValueError("cursor: too long; start again from the first page")
        try:
            at, cid = json.loads(base64.urlsafe_b64decode(text.encode("ascii")))
            opened_at = datetime.fromisoformat(at)
        except (ValueError, TypeError, UnicodeError):
            raise ValueError("cursor: not a page cursor; start again from the first page") from None
        if opened_at.tzinfo is None or not isinstance(cid, str) or len(cid) > ID_LENGTH:
            raise ValueError("cursor: not a page cursor; start again from the first page")
        return cls(opened_at, cid)


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[Conversation, ...]
    next_cursor: Cursor | None
    """None on the last page."""


_COLUMNS = [conversations.c[name] for name in Conversation.__dataclass_fields__]
"""The columns in the dataclass's field order: a row of them is its positional arguments."""


def _row(row: Any) -> Conversation:
    return Conversation(*row)


def open_conversation(
    conn: Connection,
    *,
    conversation_id: str,
    agreement: str,
    requesting_party: str,
    requested_party: str,
    opening_kind: str,
    state: str,
    confidential: bool,
    deadline: date | None,
    now: datetime,
    urgent: bool = False,
    listing: Listed | None = None,
) -> bool:
    """Create the conversation if it does not exist; True if this call created it. With
    ``listing`` the sealed list display goes in with the row and its tags beside it (what
    :func:`set_listing` records, without a second write of the row)."""
    shown = {} if listing is None else {"display_nonce": listing.nonce, "display": listing.sealed}
    created = insert_if_absent(
        conn,
        conversations,
        ["conversation_id"],
        dict(
            conversation_id=conversation_id,
            agreement=agreement,
            requesting_party=requesting_party,
            requested_party=requested_party,
            opening_kind=opening_kind,
            last_kind=opening_kind,
            state=state,
            confidential=confidential,
            deadline=deadline,
            opened_at=now,
            updated_at=now,
            version=1,
            urgent=urgent,
            **shown,
        ),
    )
    if created:
        counts.add(conn, (state, agreement, requesting_party, requested_party), +1)
        if listing is not None:
            _index(conn, conversation_id, listing.tags)
    return created


_GET = sa.select(*_COLUMNS).where(
    conversations.c.conversation_id == sa.bindparam("conversation_id")
)
# SQLAlchemy leaves FOR UPDATE out on SQLite (its BEGIN IMMEDIATE writer is the lock).
_GET_FOR_UPDATE = _GET.with_for_update()


def get(conn: Connection, conversation_id: str, *, for_update: bool = False) -> Conversation | None:
    """The conversation, or None. ``for_update`` locks the row on PostgreSQL until commit."""
    stmt = _GET_FOR_UPDATE if for_update else _GET
    row = conn.execute(stmt, {"conversation_id": conversation_id}).first()
    return _row(row) if row else None


_GET_WITH_MACHINE = (
    sa.select(*_COLUMNS, conversation_machines.c.machine)
    .select_from(
        conversations.outerjoin(
            conversation_machines,
            conversation_machines.c.conversation_id == conversations.c.conversation_id,
        )
    )
    .where(conversations.c.conversation_id == sa.bindparam("conversation_id"))
)
# Only the conversation's row is locked: PostgreSQL refuses FOR UPDATE on the nullable side of
# an outer join, and the machine's row is written only under the conversation's lock anyway.
_GET_WITH_MACHINE_FOR_UPDATE = _GET_WITH_MACHINE.with_for_update(of=conversations)


def get_with_machine(
    conn: Connection, conversation_id: str, *, for_update: bool = False
) -> tuple[Conversation | None, str | None]:
    """The conversation and its state machine's JSON (``gateway.store.machines``) in one
    statement: (None, None) when the conversation is unknown, (row, None) when it has no
    machine stored. ``for_update`` locks the conversation's row as :func:`get` does."""
    stmt = _GET_WITH_MACHINE_FOR_UPDATE if for_update else _GET_WITH_MACHINE
    row = conn.execute(stmt, {"conversation_id": conversation_id}).first()
    if row is None:
        return None, None
    return _row(row[:-1]), row[-1]


_ONE_ROW = sa.select(sa.literal(1).label("one")).subquery("one_row")
_RECEIVE_SNAPSHOT = sa.select(
    sa.select(messages.c.document_sha256)
    .where(messages.c.message_id == sa.bindparam("message_id"))
    .scalar_subquery()
    .label("stored_sha256"),
    sa.select(receipts.c.receipt_message_id)
    .where(receipts.c.message_id == sa.bindparam("message_id"))
    .scalar_subquery()
    .label("receipt_message_id"),
    *_COLUMNS,
    conversation_machines.c.machine,
).select_from(
    _ONE_ROW.outerjoin(
        conversations, conversations.c.conversation_id == sa.bindparam("conversation_id")
    ).outerjoin(
        conversation_machines,
        conversation_machines.c.conversation_id == conversations.c.conversation_id,
    )
)
"""Always one row (a one-row table outer-joined to the conversation): the message's SHA-256 and
receipt when it is stored, then :data:`_GET_WITH_MACHINE`'s columns, NULL for an unknown
conversation."""


@dataclass(frozen=True, slots=True)
class ReceiveSnapshot:
    stored_sha256: bytes | None
    """A message with this id is stored already: its SHA-256."""
    receipt_message_id: str | None
    """That message's receipt, when it has one."""
    conversation: Conversation | None
    machine: str | None
    """The conversation's machine JSON (``gateway.store.machines``), when stored."""


def receive_snapshot(conn: Connection, message_id: str, conversation_id: str) -> ReceiveSnapshot:
    """What a receiver decides on, in one statement: whether the message is stored (and its
    receipt), and its conversation with its machine (as :func:`get_with_machine`, unlocked)."""
    row = conn.execute(
        _RECEIVE_SNAPSHOT, {"message_id": message_id, "conversation_id": conversation_id}
    ).one()
    known = row[2] is not None
    return ReceiveSnapshot(
        stored_sha256=row[0],
        receipt_message_id=row[1],
        conversation=_row(row[2:-1]) if known else None,
        machine=row[-1] if known else None,
    )


_UNCHANGED: Any = object()
_TRANSITION_OPTIONAL = ("last_kind", "deadline", "confidential", "closed_at")
_TRANSITION_KEYED = frozenset((*_TRANSITION_OPTIONAL, "w_expected_version"))
_TRANSITIONS: dict[frozenset[str], sa.Update] = {}
"""The compare-and-set UPDATE for each set of optional columns given and whether the version is
checked (at most 32), built once."""


def _transition_statement(optional: frozenset[str]) -> sa.Update:
    stmt = _TRANSITIONS.get(optional)
    if stmt is None:
        c = conversations.c
        stmt = (
            conversations.update()
            .where(
                c.conversation_id == sa.bindparam("w_conversation_id"),
                c.state == sa.bindparam("w_expected_state"),
                *(
                    [c.version == sa.bindparam("w_expected_version")]
                    if "w_expected_version" in optional
                    else []
                ),
            )
            .values(
                version=c.version + 1,
                state=sa.bindparam("state"),
                updated_at=sa.bindparam("updated_at"),
                **{name: sa.bindparam(name) for name in _TRANSITION_OPTIONAL if name in optional},
            )
            # RETURNING, not rowcount: the counts need the conversation's key (and drivers
            # disagree on rowcount when RETURNING is there).
            .returning(c.agreement, c.requesting_party, c.requested_party)
        )
        _TRANSITIONS[optional] = stmt
    return stmt


_MARK_PROCEEDING_CLOSED = (
    conversations.update()
    .where(conversations.c.conversation_id == sa.bindparam("w_conversation_id"))
    .values(
        proceeding_closed_at=sa.bindparam("proceeding_closed_at"),
        updated_at=sa.bindparam("updated_at"),
    )
)


def transition(
    conn: Connection,
    conversation_id: str,
    *,
    expected_state: str,
    new_state: str,
    now: datetime,
    last_kind: str | None = None,
    deadline: date | None = _UNCHANGED,
    confidential: bool | None = None,
    closed_at: datetime | None = _UNCHANGED,
    expected_version: int | None = None,
) -> bool:
    """Move the conversation from ``expected_state`` to ``new_state`` (compare-and-set).

    False if it is not in ``expected_state`` any more, or not at ``expected_version`` when it
    is given (someone else moved it, or it does not exist): the caller re-reads and re-decides.
    The UPDATE locks the row, so a decision made on an unlocked snapshot of version N is applied
    only if nobody moved the conversation since. ``deadline``, ``confidential`` and
    ``closed_at`` (set it when entering a closed state) change only when given.
    """
    params: dict[str, Any] = {
        "w_conversation_id": conversation_id,
        "w_expected_state": expected_state,
        "state": new_state,
        "updated_at": now,
    }
    if expected_version is not None:
        params["w_expected_version"] = expected_version
    if last_kind is not None:
        params["last_kind"] = last_kind
    if deadline is not _UNCHANGED:
        params["deadline"] = deadline
    if confidential is not None:
        params["confidential"] = confidential
    if closed_at is not _UNCHANGED:
        params["closed_at"] = closed_at
    optional = frozenset(params.keys() & _TRANSITION_KEYED)
    moved = conn.execute(_transition_statement(optional), params).first()
    if moved is None:
        return False
    if new_state != expected_state:
        agreement, requesting, requested = moved
        counts.add(conn, (expected_state, agreement, requesting, requested), -1)
        counts.add(conn, (new_state, agreement, requesting, requested), +1)
    return True


def delete(conn: Connection, conversation_ids: Iterable[str]) -> int:
    """Delete these conversations (a purge, once their last message is gone) and count them
    out; how many were deleted."""
    c = conversations.c
    ids = list(conversation_ids)
    if not ids:
        return 0
    gone = conn.execute(
        conversations.delete()
        .where(in_text_set(conn, c.conversation_id, ids))
        .returning(c.state, c.agreement, c.requesting_party, c.requested_party)
    ).all()
    for state, agreement, requesting, requested in gone:
        counts.add(conn, (state, agreement, requesting, requested), -1)
    return len(gone)


def mark_proceeding_closed(
    conn: Connection, conversation_id: str, at: datetime, now: datetime
) -> bool:
    """Record that the case system closed the proceeding at ``at``; False if no such
    conversation. Retention periods may count from it."""
    result = conn.execute(
        _MARK_PROCEEDING_CLOSED,
        {"w_conversation_id": conversation_id, "proceeding_closed_at": at, "updated_at": now},
    )
    return result.rowcount == 1


PROCEEDING_CLOSED_EVENT = "proceeding.closed"
"""Audit kind of a proceeding marked closed (its retention clock starts)."""
MAX_PROCEEDING_REFERENCE = 128
"""The reference is the act that closed the proceeding (number and date), not prose: no
personal data, like a legal hold's reason."""


class ProceedingCloseRefused(Refused):
    """A proceeding cannot be marked closed as asked; :attr:`code` and the Russian message say
    why and what to do. Nothing was changed."""

    CONFLICTS = frozenset({"PROCEEDING_ALREADY_CLOSED"})

    def __init__(self, code: str, message_ru: str, message_en: str) -> None:
        super().__init__(code, message_en, message_ru, {"article": "CIS Art. 9.6"})


def close_proceeding(
    conn: Connection,
    conversation_id: str,
    *,
    closed_at: datetime,
    reference: str,
    actor: str,
    now: datetime,
) -> Conversation:
    """Mark the proceeding of a conversation closed at ``closed_at``, audited
    (``proceeding.closed``), in the caller's transaction.

    CIS Art. 9.6: information received is kept in the proceeding until it is destroyed under
    the requesting party's law, so retention policies counting from ``proceeding-closed`` start
    now. The date is set once: a second mark, a date in the future or before the conversation
    began is refused (:class:`ProceedingCloseRefused`) and nothing changes.
    """
    if closed_at.tzinfo is None or closed_at.utcoffset() is None:
        raise ValueError("closed_at must carry a time zone")
    reference = reference.strip()
    if not reference or len(reference) > MAX_PROCEEDING_REFERENCE:
        raise ProceedingCloseRefused(
            "PROCEEDING_REFERENCE",
            f"Укажите основание закрытия производства (реквизиты акта, 1–"
            f"{MAX_PROCEEDING_REFERENCE} знаков, без персональных данных).",
            f"reference must be 1..{MAX_PROCEEDING_REFERENCE} characters (the act that closed "
            "the proceeding, no personal data)",
        )
    stored = get(conn, conversation_id, for_update=True)
    if stored is None:
        raise ProceedingCloseRefused(
            "UNKNOWN_CONVERSATION",
            f"Переписка {conversation_id} не найдена: проверьте идентификатор.",
            f"no stored conversation {conversation_id}",
        )
    if stored.proceeding_closed_at is not None:
        when = stored.proceeding_closed_at.isoformat()
        raise ProceedingCloseRefused(
            "PROCEEDING_ALREADY_CLOSED",
            f"Производство по переписке уже отмечено закрытым ({when}); дата не меняется, "
            "иначе сдвинулся бы срок хранения (ст. 9.6 Соглашения СНГ).",
            f"the proceeding was marked closed at {when} already; the date is set once",
        )
    if closed_at > now:
        raise ProceedingCloseRefused(
            "PROCEEDING_CLOSED_IN_FUTURE",
            f"Дата закрытия производства ({closed_at.isoformat()}) ещё не наступила: отметьте "
            "закрытие, когда оно состоится.",
            f"closed_at {closed_at.isoformat()} is in the future",
        )
    if closed_at < stored.opened_at:
        raise ProceedingCloseRefused(
            "PROCEEDING_CLOSED_BEFORE_CONVERSATION",
            f"Дата закрытия производства ({closed_at.isoformat()}) раньше начала переписки "
            f"({stored.opened_at.isoformat()}): запрос направляется по открытому производству "
            "(ст. 10 Соглашения СНГ); проверьте дату.",
            f"closed_at {closed_at.isoformat()} is before the conversation began "
            f"({stored.opened_at.isoformat()})",
        )
    mark_proceeding_closed(conn, conversation_id, closed_at, now)
    audit.append(
        conn,
        now=now,
        actor=actor,
        kind=PROCEEDING_CLOSED_EVENT,
        subjects={"conversation_id": conversation_id},
        details={"closed_at": closed_at.isoformat(), "reference": reference},
    )
    return replace(stored, proceeding_closed_at=closed_at, updated_at=now)


def _where(filters: ConversationFilter) -> list[sa.ColumnElement[bool]]:
    c = conversations.c
    clauses: list[sa.ColumnElement[bool]] = []
    if filters.agreement is not None:
        clauses.append(c.agreement == filters.agreement)
    if filters.body is not None:
        clauses.append(
            sa.or_(c.requesting_party == filters.body, c.requested_party == filters.body)
        )
    if filters.state is not None:
        clauses.append(c.state == filters.state)
    if filters.kind is not None:
        clauses.append(c.opening_kind == filters.kind)
    if filters.deadline_from is not None:
        clauses.append(c.deadline >= filters.deadline_from)
    if filters.deadline_before is not None:
        clauses.append(c.deadline <= filters.deadline_before)
    if filters.confidential is not None:
        clauses.append(c.confidential == filters.confidential)
    if filters.tags is not None:
        # A semi-join from the tag's primary key: the few tagged conversations are found first
        # and sorted, instead of walking the page index and probing each row.
        clauses.append(
            c.conversation_id.in_(
                sa.select(search_tags.c.conversation_id).where(
                    search_tags.c.tag.in_(list(filters.tags))
                )
            )
        )
    return clauses


def list_page(
    conn: Connection,
    filters: ConversationFilter = ConversationFilter(),
    after: Cursor | None = None,
    limit: int = 50,
) -> Page:
    """One page of conversations, newest first, strictly after ``after``."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be 1..{MAX_PAGE_SIZE}, got {limit}")
    c = conversations.c
    clauses = _where(filters)
    if after is not None:
        clauses.append(
            sa.tuple_(c.opened_at, c.conversation_id)
            < sa.tuple_(
                sa.literal(after.opened_at, conversations.c.opened_at.type),
                sa.literal(after.conversation_id, conversations.c.conversation_id.type),
            )
        )
    rows = conn.execute(
        sa.select(*_COLUMNS)
        .where(*clauses)
        .order_by(c.opened_at.desc(), c.conversation_id.desc())
        .limit(limit + 1)
    ).all()
    items = tuple(_row(r) for r in rows[:limit])
    next_cursor = (
        Cursor(items[-1].opened_at, items[-1].conversation_id) if len(rows) > limit else None
    )
    return Page(items, next_cursor)


def count_by_state(
    conn: Connection, filters: ConversationFilter = ConversationFilter()
) -> dict[str, int]:
    """How many conversations are in each state (only states that occur), under the filters.

    Filters on the agreement, a party and the state are answered from the counts table
    (:mod:`gateway.store.counts`: a few rows, whatever the number of conversations); others
    count the conversations themselves."""
    if replace(filters, agreement=None, body=None, state=None, search=None) == ConversationFilter():
        return _from_counts(conn, filters)
    # Under another filter, grouping by an expression rather than the bare column keeps
    # SQLite's planner from walking the whole state index (to skip a sort) and makes it search
    # the filter's covering index instead: ~3 s → ~0.03 s for a rare kind at a million rows.
    # With no filter but the state, the state index is the right walk. PostgreSQL
    # hash-aggregates either way.
    only_state = replace(filters, state=None, search=None) == ConversationFilter()
    state = conversations.c.state if only_state else (conversations.c.state + "").label("state")
    rows = conn.execute(sa.select(state, sa.func.count()).where(*_where(filters)).group_by(state))
    return {state: count for state, count in rows}


def due_by(
    conn: Connection, states: Iterable[str], due_by: date, limit: int = MAX_PAGE_SIZE
) -> list[Conversation]:
    """Conversations in ``states`` due on or before ``due_by``, soonest due first (then the
    oldest), across states.

    Each state's soonest ``limit`` are read from the state's range of the (state, due date)
    index and merged: the walk never meets the closed conversations, most of a million and
    most due long ago, which one walk of the due-date index filtering by state would step
    over before reaching the first open one."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be 1..{MAX_PAGE_SIZE}, got {limit}")
    chosen = tuple(sorted(set(states)))
    if not chosen:
        return []
    rows = conn.execute(_due_statement(chosen), {"due_by": due_by, "limit": limit})
    return [_row(r) for r in rows]


@lru_cache(maxsize=16)
def _due_statement(states: tuple[str, ...]) -> sa.Select[Any]:
    """:func:`due_by`'s statement for ``states``, built once: building and keying a union of a
    subquery a state costs SQLAlchemy ~5 ms of CPU a call, running the cached one ~0.7 ms (at a
    million rows, on PostgreSQL)."""
    c = conversations.c
    due_by, limit = sa.bindparam("due_by", type_=sa.Date), sa.bindparam("limit", type_=sa.Integer)
    per_state = [
        sa.select(
            sa.select(*_COLUMNS)
            .where(c.state == state, c.deadline <= due_by)
            .order_by(c.deadline, c.opened_at, c.conversation_id)
            .limit(limit)
            .subquery()
        )
        for state in states
    ]
    merged = sa.union_all(*per_state).subquery("due")
    return (
        sa.select(merged)
        .order_by(merged.c.deadline, merged.c.opened_at, merged.c.conversation_id)
        .limit(limit)
    )


def _from_counts(conn: Connection, filters: ConversationFilter) -> dict[str, int]:
    by_state: dict[str, int] = {}
    for (state, agreement, requesting, requested), n in counts.read(conn).items():
        if filters.agreement is not None and agreement != filters.agreement:
            continue
        if filters.body is not None and filters.body not in (requesting, requested):
            continue
        if filters.state is not None and state != filters.state:
            continue
        by_state[state] = by_state.get(state, 0) + n
    return {state: n for state, n in by_state.items() if n}


def count_by_key(conn: Connection) -> dict[counts.Key, int]:
    """Conversations by (state, agreement, requesting party, requested party): the direction
    is whether the node is the requesting or the requested party."""
    return counts.read(conn)


def set_listing(
    conn: Connection, conversation_id: str, nonce: bytes, display: bytes, tags: Iterable[bytes]
) -> None:
    """Record the conversation's sealed list display and index it under its search tags
    (``at_rest.search_tag``), in the caller's write transaction; again is harmless."""
    conn.execute(
        conversations.update()
        .where(conversations.c.conversation_id == conversation_id)
        .values(display_nonce=nonce, display=display)
    )
    _index(conn, conversation_id, tags)


@dataclass(frozen=True, slots=True)
class Listed:
    """A conversation's sealed list display and its search tags, as :func:`set_listing` takes
    them (``gateway.exchange.listing`` makes them)."""

    nonce: bytes
    sealed: bytes
    tags: tuple[bytes, ...]


def _index(conn: Connection, conversation_id: str, tags: Iterable[bytes]) -> None:
    """The conversation's search tags, in one statement; again is harmless."""
    insert_all_if_absent(
        conn,
        search_tags,
        ["tag", "conversation_id"],
        [{"tag": tag, "conversation_id": conversation_id} for tag in sorted(set(tags))],
    )


def unindexed(conn: Connection, after: str, limit: int) -> list[str]:
    """Ids of conversations without a list display (made before it existed), in id order
    strictly after ``after``: the reindexing command's batches."""
    c = conversations.c
    rows = conn.execute(
        sa.select(c.conversation_id)
        .where(c.display.is_(None), c.conversation_id > after)
        .order_by(c.conversation_id)
        .limit(limit)
    )
    return list(rows.scalars())

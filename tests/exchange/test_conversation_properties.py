"""Property: random event sequences never reach an undefined state; closed states stay closed."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.exchange.conversation import (
    CLOCK_PAUSED_IN,
    TRANSITIONS,
    Conversation,
    ProtocolError,
    State,
    apply,
)
from gateway.model.profiles import PROFILES
from tests.exchange.conversation_helpers import PATHS, D, R, ev, reach

ALL_KINDS = sorted({kind for p in PROFILES.values() for kind in p.kinds} | {"Bogus"})
DECISIONS = ["", "accept", "decline", "proceed", "withdraw", "granted", "refused", "x"]

raw_event = st.tuples(
    st.sampled_from(ALL_KINDS),
    st.sampled_from([R, D]),
    st.sampled_from(DECISIONS),
    st.sampled_from(["", "основания отказа"]),
    st.integers(min_value=0, max_value=40),  # index of an earlier message to reply to
    st.booleans(),  # reuse an earlier message id (a duplicate)
    st.none() | st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)),
)


def _check_invariants(c: Conversation) -> None:
    assert c.state in TRANSITIONS
    clock = c.clock
    if c.state is State.IN_PROGRESS:
        assert clock.running
    if c.state in CLOCK_PAUSED_IN:
        assert clock.paused and clock.started_at is not None
    if c.closed:
        assert not clock.running and not clock.paused
    assert all(p.until is not None for p in clock.pauses[:-1])
    assert all(p.until is None or p.until >= p.since for p in clock.pauses)
    if c.refusal_grounds:
        assert c.state is State.REFUSED


def _event(pick: int, raw, conversation: Conversation, n: int, ids: list[str]):  # type: ignore[no-untyped-def]
    """Mostly an event the table allows now (so sequences go deep), sometimes anything at all.

    ``pick`` steers: its last digit chooses between a state-changing move, any allowed move and
    the raw random event; the rest indexes the move. It comes from a seeded ``Random`` that
    hypothesis provides, because hypothesis's own integers favour small values and the walk
    would then always take the first move.
    """
    kind, sender, decision, grounds, reply, duplicate, expected_by = raw
    row = TRANSITIONS[conversation.state]
    moves = sorted(row, key=lambda k: (k[0], k[1].value))
    changes = [k for k in moves if row[k] is not conversation.state]
    choice, index = pick % 10, pick // 10
    if choice < 5 and changes:
        moves = changes
    if choice < 8 and moves:
        key, sender = moves[index % len(moves)]
        kind, _, refined = key.partition(":")
        decision = refined or decision
    mid = ids[reply % len(ids)] if duplicate and ids else f"m{n}"
    return ev(
        kind,
        sender,
        mid,
        n,
        decision=decision,
        grounds=grounds,
        in_reply_to=ids[reply % len(ids)] if ids else None,
        expected_by=expected_by,
    )


@pytest.mark.parametrize(
    ("agreement", "start"),
    [(agreement, state) for agreement, paths in PATHS.items() for state in paths],
)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_events=st.lists(raw_event, max_size=25), steer=st.randoms(use_true_random=False))
def test_random_sequences_stay_defined_and_closed_stays_closed(  # type: ignore[no-untyped-def]
    agreement, start, raw_events, steer
) -> None:
    """Walks start from every state (reached by its own events), so all states get walked from."""
    conversation = reach(agreement, start)
    ids: list[str] = sorted(conversation.message_ids)
    closed_in = conversation.state if conversation.closed else None
    for n, raw in enumerate(raw_events, start=100):
        event = _event(steer.randrange(10_000), raw, conversation, n, ids)
        before = conversation
        try:
            step = apply(conversation, event)
        except ProtocolError as error:
            assert conversation == before
            assert error.state is before.state
            continue
        conversation = step.conversation
        ids.append(event.message_id)
        _check_invariants(conversation)
        if closed_in is not None:
            assert conversation.state is closed_in
        if conversation.closed:
            closed_in = conversation.state
        assert conversation.state in TRANSITIONS[before.state].values() or (
            conversation.state is before.state
        )

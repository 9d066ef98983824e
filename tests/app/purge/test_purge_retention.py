"""The purge against the clock: each policy kind crosses its boundary exactly at the computed
instant; holds block and their release lets go; undelivered messages stay; the dry run is the
real run; reruns purge nothing twice; the report is signed and stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from gateway.app.purge import Action, Decision, plan, run_purge, verify_report
from gateway.crypto.keys.generations import always_in_force
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import SigningKey
from gateway.store import Store, audit, purge
from gateway.store.tables import conversations, purge_reports, purge_runs, tombstones
from tests.app.purge.world import T0, add_conversation, after, enqueue_pending, one_policy, state_of

TICK = timedelta(microseconds=1)


def _purge(store: Store, policy_set, now, seal: SigningKey, **kw):
    return run_purge(store, policy_set, now, seal=seal, actor="job:purge", **kw)


def _stones(store: Store) -> set[str]:
    with store.read() as conn:
        return set(conn.execute(sa.select(tombstones.c.message_id)).scalars())


@pytest.mark.parametrize(
    "counts_from, start",
    [
        ("received", T0),
        ("conversation-closed", after(T0, days=40)),
        ("proceeding-closed", after(T0, days=400)),
    ],
)
def test_each_event_kind_crosses_at_its_instant(
    store: Store, ring: KekRing, seal: SigningKey, counts_from: str, start
) -> None:
    policy_set = one_policy(counts_from, "18 months")
    with store.transaction() as conn:
        conv = add_conversation(
            conn,
            ring,
            T0,
            closed_at=after(T0, days=40),
            proceeding_closed_at=after(T0, days=400),
        )
        never = add_conversation(conn, ring, T0)  # neither closed: only 'received' can expire it
    expiry = one_policy(counts_from, "18 months").policies[0].keep.after(start)

    report = _purge(store, policy_set, expiry - TICK, seal)
    assert report.purged == 0
    assert all(state_of(store, ring, m) == "whole" for m in conv.message_ids)

    report = _purge(store, policy_set, expiry, seal)
    assert report.purged_by_policy == {"p": 2 if counts_from != "received" else 4}
    assert all(state_of(store, ring, m) == "tombstoned" for m in conv.message_ids)
    expected_never = "tombstoned" if counts_from == "received" else "whole"
    assert all(state_of(store, ring, m) == expected_never for m in never.message_ids)
    # Decades later an unclosed conversation is still kept under the event-based policies.
    _purge(store, policy_set, after(T0, days=365 * 60), seal)
    assert all(state_of(store, ring, m) == expected_never for m in never.message_ids)
    with store.read() as conn:
        gone = conn.execute(
            sa.select(conversations.c.conversation_id).where(
                conversations.c.conversation_id == conv.conversation_id
            )
        ).first()
        stone = purge.get_tombstone(conn, conv.message_ids[0])
    assert gone is None  # its last message went, so did the conversation
    assert stone is not None and stone.policy == "p" and stone.purged_at == expiry


def test_hold_blocks_and_release_lets_go(store: Store, ring: KekRing, seal: SigningKey) -> None:
    policy_set = one_policy("received", "1 year")
    with store.transaction() as conn:
        held = add_conversation(conn, ring, T0)
        free = add_conversation(conn, ring, T0)
        hold_id = purge.place_hold(conn, held.conversation_id, "order 7/2027", "admin1", T0)
    later = after(T0, days=800)
    report = _purge(store, policy_set, later, seal)
    assert report.purged == 2 and report.held_by_policy == {"p": 2}
    assert [state_of(store, ring, m) for m in held.message_ids] == ["whole", "whole"]
    assert {state_of(store, ring, m) for m in free.message_ids} == {"tombstoned"}
    with store.transaction() as conn:
        assert purge.release_hold(conn, hold_id, "admin2", later, "order 7/2027 lifted")
        assert not purge.release_hold(conn, hold_id, "admin2", later)
    report = _purge(store, policy_set, later, seal)
    assert report.purged == 2 and report.held_by_policy == {}
    assert {state_of(store, ring, m) for m in held.message_ids} == {"tombstoned"}
    with store.read() as conn:
        kinds = [e.kind for e in audit.events(conn, limit=1000)]
        assert audit.verify(conn).intact
    assert kinds.count("hold.placed") == 1 and kinds.count("hold.released") == 1


def test_hold_on_unknown_conversation_is_refused(store: Store) -> None:
    with pytest.raises(purge.HoldRefused, match="no stored conversation"), store.transaction() as c:
        purge.place_hold(c, "00000000-0000-4000-8000-000000000000", "order 1", "admin", T0)


def test_undelivered_messages_stay(store: Store, ring: KekRing, seal: SigningKey) -> None:
    with store.transaction() as conn:
        conv = add_conversation(conn, ring, T0, direction="out")
        enqueue_pending(conn, conv.message_ids[0], T0)
    report = _purge(store, one_policy("received", "1 year"), after(T0, days=800), seal)
    assert report.purged == 1 and report.undelivered == 1
    assert state_of(store, ring, conv.message_ids[0]) == "whole"
    assert state_of(store, ring, conv.message_ids[1]) == "tombstoned"


def test_dry_run_lists_exactly_what_the_run_deletes(
    store: Store, ring: KekRing, seal: SigningKey
) -> None:
    policy_set = one_policy("conversation-closed", "2 years")
    with store.transaction() as conn:
        convs = [
            add_conversation(conn, ring, T0, count=3, closed_at=after(T0, days=d))
            for d in (10, 200, 400, 800)
        ]
        add_conversation(conn, ring, T0, count=2)  # open: kept
        held = add_conversation(conn, ring, T0, closed_at=after(T0, days=5))
        purge.place_hold(conn, held.conversation_id, "case 9", "admin", T0)
        out = add_conversation(conn, ring, T0, direction="out", closed_at=after(T0, days=5))
        enqueue_pending(conn, out.message_ids[1], T0)
    now = after(T0, days=365 * 2 + 300)
    decisions = [d for d in plan(store, policy_set, now) if isinstance(d, Decision)]
    listed = {d.message_id for d in decisions if d.action == Action.PURGE}
    assert {d.message_id for d in decisions if d.action == Action.HELD} == set(held.message_ids)
    assert {d.message_id for d in decisions if d.action == Action.UNDELIVERED} == {
        out.message_ids[1]
    }
    assert all(d.expires_at <= now and d.policy == "p" for d in decisions)
    report = _purge(store, policy_set, now, seal, batch_size=4)
    assert _stones(store) == listed
    assert listed == {*convs[0].message_ids, *convs[1].message_ids, out.message_ids[0]}
    assert report.purged == len(listed)


def test_rerun_is_idempotent_and_reports_are_signed(
    store: Store, ring: KekRing, seal: SigningKey
) -> None:
    policy_set = one_policy("received", "1 year")
    with store.transaction() as conn:
        for _ in range(3):
            add_conversation(conn, ring, T0, count=3)
    now = after(T0, days=366)
    first = _purge(store, policy_set, now, seal, batch_size=2)
    second = _purge(store, policy_set, now, seal)
    assert (first.purged, second.purged) == (9, 0)
    assert verify_report(store, first.run_id, always_in_force([seal.certificate])).ok
    assert verify_report(store, second.run_id, always_in_force([seal.certificate])).ok
    with store.transaction() as conn:
        conn.execute(
            purge_reports.update()
            .where(purge_reports.c.run_id == first.run_id)
            .values(report=first.report.replace('"purged":9', '"purged":8'))
        )
    check = verify_report(store, first.run_id, always_in_force([seal.certificate]))
    assert not check.ok and "does not verify" in check.reason


def test_interrupted_run_is_closed_and_finished(
    store: Store, ring: KekRing, seal: SigningKey
) -> None:
    with store.transaction() as conn:
        conv = add_conversation(conn, ring, T0)
        purge.start_run(conn, "dead-run", "retention-policies", "job:purge", T0)
    report = _purge(store, one_policy("received", "1 year"), after(T0, days=400), seal)
    assert report.purged == 2
    with store.read() as conn:
        dead = purge.get_run(conn, "dead-run")
        states = dict(conn.execute(sa.select(purge_runs.c.run_id, purge_runs.c.state)).all())
    assert dead is not None and dead.state == "failed" and dead.error_code == "interrupted"
    assert states[report.run_id] == "finished"
    check = verify_report(store, "dead-run", always_in_force([seal.certificate]))
    assert check.ok and check.report["errors"] == {"interrupted": 1}
    assert {state_of(store, ring, m) for m in conv.message_ids} == {"tombstoned"}

"""The hash-chained audit trail: honest chains verify, every kind of tampering is found and
located, concurrent appends never fork the chain."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.store import Store, audit, open_store
from gateway.store.tables import audit_events, audit_head
from tests.store.conftest import NOW

KIND = "document.read"
"""A registered kind for events whose kind does not matter here."""


def _append(store: Store, count: int) -> None:
    with store.transaction() as conn:
        for i in range(count):
            audit.append(
                conn,
                now=NOW + timedelta(seconds=i),
                actor="operator1" if i % 2 else "peer:KZ-MJ",
                kind="message.received",
                subjects={"message_id": f"m-{i}"},
                details={"n": i, "ok": True, "code": None},
            )


def _verify(store: Store) -> audit.AuditVerification:
    with store.read() as conn:
        return audit.verify(conn)


def test_honest_chain_verifies(store: Store) -> None:
    assert _verify(store).intact and _verify(store).events_checked == 0
    _append(store, 12)
    result = _verify(store)
    assert result.intact and result.events_checked == 12 and result.last_seq == 12
    result.raise_for_failure()
    with store.read() as conn:
        events = audit.events(conn)
    assert [e.seq for e in events] == list(range(1, 13))
    assert events[0].prev_hash == audit.GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert events[3].details == {"n": 3, "ok": True, "code": None}


def test_rolled_back_append_leaves_no_trace(store: Store) -> None:
    _append(store, 2)
    with pytest.raises(RuntimeError), store.transaction() as conn:
        audit.append(conn, now=NOW, actor="x", kind=KIND)
        raise RuntimeError("the change it recorded failed")
    _append(store, 1)
    assert _verify(store).intact and _verify(store).last_seq == 3


def _tamper(store: Store, sql: str, **params) -> None:
    with store.transaction() as conn:
        conn.execute(sa.text(sql), params)


def _broken(store: Store, at: int, reason: str) -> None:
    result = _verify(store)
    assert not result.intact
    assert result.broken_at == at, result.reason
    assert reason in result.reason
    with pytest.raises(audit.AuditChainBroken, match=f"seq {at}"):
        result.raise_for_failure()


@pytest.mark.parametrize(
    "column, value",
    [
        ("actor", "someone-else"),
        ("kind", "message.sent"),
        ("details", '{"code":null,"n":999,"ok":true}'),
        ("subjects", '{"message_id":"m-other"}'),
    ],
)
def test_modified_event_is_found(store: Store, column: str, value: str) -> None:
    _append(store, 8)
    with store.transaction() as conn:
        conn.execute(audit_events.update().where(audit_events.c.seq == 5).values({column: value}))
    _broken(store, 5, "modified")


def test_modified_time_is_found(store: Store) -> None:
    _append(store, 8)
    with store.transaction() as conn:
        conn.execute(
            audit_events.update().where(audit_events.c.seq == 4).values(at=NOW - timedelta(days=1))
        )
    _broken(store, 4, "modified")


def test_deleted_event_is_found(store: Store) -> None:
    _append(store, 8)
    _tamper(store, "DELETE FROM audit_events WHERE seq = 3")
    _broken(store, 3, "missing")


def test_deleted_tail_is_found(store: Store) -> None:
    _append(store, 8)
    _tamper(store, "DELETE FROM audit_events WHERE seq >= 7")
    _broken(store, 7, "deleted")


def test_inserted_event_is_found(store: Store) -> None:
    """A forger shifts events 4.. up by one and slips a well-formed event in at 4, with a hash
    correctly chained to event 3: event 5 (the old 4) no longer follows it."""
    _append(store, 8)
    with store.transaction() as conn:
        rows = conn.execute(sa.select(audit_events).order_by(audit_events.c.seq.desc())).all()
        for row in rows:
            if row.seq >= 4:
                conn.execute(
                    audit_events.update()
                    .where(audit_events.c.seq == row.seq)
                    .values(seq=row.seq + 1)
                )
        prev = next(r.hash for r in rows if r.seq == 3)
        forged_hash = audit.event_hash(prev, 4, NOW, "forger", "user.created", "{}", "{}")
        conn.execute(
            audit_events.insert().values(
                seq=4,
                at=NOW,
                actor="forger",
                kind="user.created",
                subjects="{}",
                details="{}",
                prev_hash=prev,
                hash=forged_hash,
            )
        )
    _broken(store, 5, "does not follow")


def test_inserted_event_at_the_end_is_found(store: Store) -> None:
    _append(store, 3)
    with store.read() as conn:
        last = audit.events(conn)[-1]
    with store.transaction() as conn:
        forged = audit.event_hash(last.hash, 4, NOW, "forger", "x", "{}", "{}")
        conn.execute(
            audit_events.insert().values(
                seq=4,
                at=NOW,
                actor="forger",
                kind="x",
                subjects="{}",
                details="{}",
                prev_hash=last.hash,
                hash=forged,
            )
        )
    _broken(store, 4, "beyond the head")


def test_reordered_events_are_found(store: Store) -> None:
    _append(store, 8)
    with store.transaction() as conn:
        five, six = (
            conn.execute(sa.select(audit_events).where(audit_events.c.seq == s)).one()
            for s in (5, 6)
        )
        for target, source in ((5, six), (6, five)):
            values = {
                c: getattr(source, c)
                for c in ("at", "actor", "kind", "subjects", "details", "prev_hash", "hash")
            }
            conn.execute(audit_events.update().where(audit_events.c.seq == target).values(**values))
    _broken(store, 5, "does not follow")


def test_details_must_be_codes(store: Store) -> None:
    with store.transaction() as conn:
        with pytest.raises(audit.AuditError, match="ids and codes"):
            audit.append(conn, now=NOW, actor="a", kind=KIND, details={"nested": {"name": "x"}})
        with pytest.raises(audit.AuditError, match="bytes"):
            audit.append(conn, now=NOW, actor="a", kind=KIND, details={"blob": "x" * 5000})
        with pytest.raises(ValueError, match="naive"):
            audit.append(conn, now=NOW.replace(tzinfo=None), actor="a", kind=KIND)


def test_concurrent_appends_never_fork(store: Store) -> None:
    workers, per_worker = 4, 15
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_worker):
                with store.transaction() as conn:
                    audit.append(conn, now=NOW, actor=f"w{n}", kind=KIND, details={"i": i})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = _verify(store)
    assert result.intact, result.reason
    assert result.last_seq == workers * per_worker
    with store.read() as conn:
        assert conn.execute(sa.select(audit_head.c.seq)).scalar_one() == workers * per_worker


def test_verify_sees_one_snapshot_while_others_append(store: Store) -> None:
    """An append committed while a verification runs must not look like tampering."""
    _append(store, 3)
    with store.read() as reader:
        assert len(audit.events(reader)) == 3  # the snapshot starts here
        _append(store, 2)  # another process appends meanwhile
        result = audit.verify(reader)
    assert result.intact and result.last_seq == 3, result.reason
    assert _verify(store).last_seq == 5


def test_read_transaction_refuses_writes_on_postgres(pg_session_store: Store) -> None:
    with pytest.raises(sa.exc.InternalError, match="read-only"), pg_session_store.read() as conn:
        conn.execute(audit_head.update().values(seq=99))


def test_append_in_a_read_transaction_is_refused_at_once(store: Store) -> None:
    """A read transaction always rolls back: an event queued there would vanish silently."""
    with store.read() as conn, pytest.raises(audit.AuditError, match="read-only"):
        audit.append(conn, now=NOW, actor="a", kind=KIND)
    assert _verify(store).last_seq == 0


@contextmanager
def _statements_on(store: Store, table: str) -> Iterator[list[str]]:
    """The verbs of the statements that name ``table``, as they reach the database."""
    seen: list[str] = []

    def count(_conn, _cursor, statement, _params, _context, _many) -> None:
        if table in statement:
            seen.append(statement.split()[0].upper())

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)


def test_one_head_read_and_update_per_transaction(store: Store) -> None:
    with _statements_on(store, "audit_head") as seen, store.transaction() as conn:
        for i in range(5):
            audit.append(conn, now=NOW, actor=f"a{i % 2}", kind=KIND, details={"i": i})
        audit.append_many(
            conn,
            now=NOW,
            actor="purge:p",
            entries=[("purge.batch", {}, {"n": n}) for n in range(3)],
        )
        assert seen == []  # nothing is written before commit
    # The engine's first append reads the head (after a guess left by an earlier test's store
    # on the same PostgreSQL engine, which moves nothing).
    assert seen[-2:] == ["SELECT", "UPDATE"] and seen[:-2] in ([], ["UPDATE"])
    result = _verify(store)
    assert result.intact and result.last_seq == 8, result.reason
    with store.read() as conn:
        kinds = [(e.actor, e.kind, dict(e.details)) for e in audit.events(conn)]
    assert kinds[:2] == [("a0", KIND, {"i": 0}), ("a1", KIND, {"i": 1})]
    assert kinds[-1] == ("purge:p", "purge.batch", {"n": 2})
    with _statements_on(store, "audit_head") as seen, store.transaction() as conn:
        audit.append(conn, now=NOW, actor="a", kind=KIND)
    assert seen == ["UPDATE"]  # from the head this engine wrote, checked in the UPDATE
    assert _verify(store).last_seq == 9


def test_an_engine_appends_after_another_moved_the_head(store: Store) -> None:
    """The head an engine last wrote is a guess: after another engine (another process) has
    appended, the guess moves nothing, the head is read again and the chain stays one."""
    other = open_store(store.engine.url.render_as_string(hide_password=False))
    try:
        _append(store, 2)
        with other.transaction() as conn:
            audit.append(conn, now=NOW, actor="other", kind=KIND)
        with _statements_on(store, "audit_head") as seen:
            _append(store, 1)
        assert seen == ["UPDATE", "SELECT", "UPDATE"]  # the guess missed, the head was read
        _append(store, 1)
    finally:
        other.dispose()
    result = _verify(store)
    assert result.intact and result.last_seq == 5, result.reason
    with store.read() as conn:
        assert [e.actor for e in audit.events(conn)][2] == "other"


def test_chain_continues_rows_written_before_batching(store: Store) -> None:
    """Rows chained one by one (as stored before appends were batched) and rows of a batch
    form one chain that verify accepts: the format did not change."""
    prev, rows = audit.GENESIS_HASH, []
    for seq in (1, 2):
        digest = audit.event_hash(prev, seq, NOW, "old", "k", '{"m":"x"}', "{}")
        rows.append(
            {
                "seq": seq,
                "at": NOW,
                "actor": "old",
                "kind": "k",
                "subjects": '{"m":"x"}',
                "details": "{}",
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    with store.transaction() as conn:
        conn.execute(audit_events.insert(), rows)
        conn.execute(audit_head.update().values(seq=2, hash=prev))
    _append(store, 3)
    result = _verify(store)
    assert result.intact and result.last_seq == 5, result.reason
    with store.read() as conn:
        assert audit.event_at(conn, 3).prev_hash == prev


def test_savepoint_rollback_drops_only_its_events(store: Store) -> None:
    with store.transaction() as conn:
        audit.append(conn, now=NOW, actor="a", kind=KIND, details={"step": "kept.before"})
        with pytest.raises(RuntimeError), conn.begin_nested():
            audit.append(conn, now=NOW, actor="a", kind=KIND, details={"step": "dropped"})
            with conn.begin_nested():
                audit.append(conn, now=NOW, actor="a", kind=KIND, details={"step": "dropped.inner"})
            raise RuntimeError("this unit failed")
        with conn.begin_nested():
            audit.append(conn, now=NOW, actor="a", kind=KIND, details={"step": "kept.released"})
        audit.append(conn, now=NOW, actor="a", kind=KIND, details={"step": "kept.after"})
    with store.read() as conn:
        assert [e.details["step"] for e in audit.events(conn)] == [
            "kept.before",
            "kept.released",
            "kept.after",
        ]
    assert _verify(store).intact


def test_every_commit_path_flushes(store: Store) -> None:
    with store.engine.connect() as conn:
        conn.execute(sa.select(1))  # autobegin
        audit.append(conn, now=NOW, actor="a", kind=KIND, details={"step": "via.commit"})
        conn.commit()
    with store.engine.begin() as conn:
        audit.append(conn, now=NOW, actor="a", kind=KIND, details={"step": "via.engine.begin"})
    with store.transaction() as conn:
        audit.append(conn, now=NOW, actor="a", kind=KIND, details={"step": "early"})
        assert audit.flush(conn) == 3
        assert audit.head(conn)[0] == 3
        audit.append(conn, now=NOW, actor="a", kind=KIND, details={"step": "late"})
    with store.read() as conn:
        assert [e.details["step"] for e in audit.events(conn)] == [
            "via.commit",
            "via.engine.begin",
            "early",
            "late",
        ]


def test_engine_without_the_hook_is_refused(store: Store) -> None:
    bare = sa.create_engine(store.engine.url, poolclass=sa.NullPool)
    try:
        with (
            bare.connect() as conn,
            conn.begin(),
            pytest.raises(audit.AuditError, match="open_store"),
        ):
            audit.append(conn, now=NOW, actor="a", kind=KIND)
    finally:
        bare.dispose()


def test_head_is_locked_only_at_commit_on_postgres(pg_session_store: Store) -> None:
    """A transaction that has queued events does not hold the head: another one appends and
    commits meanwhile, and the first still chains after it."""
    store = pg_session_store
    with store.transaction() as first:
        audit.append(first, now=NOW, actor="slow", kind=KIND)
        done = threading.Event()

        def other() -> None:
            _append(store, 2)
            done.set()

        thread = threading.Thread(target=other)
        thread.start()
        assert done.wait(10), "the second writer waited for the first transaction's head lock"
        thread.join()
    with store.read() as conn:
        assert [e.actor for e in audit.events(conn)] == ["peer:KZ-MJ", "operator1", "slow"]
    assert _verify(store).intact


def test_two_processes_append_one_chain(store: Store) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    rounds = 25
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.store.audit_child", url, f"proc{n}", str(rounds)],
            env=env,
        )
        for n in range(2)
    ]
    _append(store, 10)  # this process too
    assert [c.wait(timeout=120) for c in children] == [0, 0]
    per_process = sum(1 + i % 3 for i in range(rounds))
    result = _verify(store)
    assert result.intact, result.reason
    assert result.last_seq == 2 * per_process + 10


def test_flush_inside_a_savepoint(store: Store) -> None:
    with store.transaction() as conn:
        with pytest.raises(RuntimeError), conn.begin_nested():
            audit.append(conn, now=NOW, actor="a", kind=KIND, details={"step": "dropped"})
            assert audit.flush(conn) == 1  # written inside the savepoint ...
            audit.append(conn, now=NOW, actor="a", kind=KIND, details={"step": "dropped.too"})
            raise RuntimeError("... and undone with it")
        audit.append(conn, now=NOW, actor="a", kind=KIND, details={"step": "kept"})
        with conn.begin_nested(), pytest.raises(audit.AuditError, match="savepoint"):
            audit.flush(conn)  # would tie "kept" to this savepoint
    with store.read() as conn:
        assert [e.details["step"] for e in audit.events(conn)] == ["kept"]
    assert _verify(store).intact


def test_an_unregistered_kind_is_refused(store: Store) -> None:
    """A kind not described in gateway.store.audit_events is a programming error: refused at
    the append, by name, and nothing reaches the chain; so is a retired one."""
    with store.transaction() as conn:
        with pytest.raises(ValueError, match=r"'made\.up' is not registered"):
            audit.append(conn, now=NOW, actor="a", kind="made.up")
        with pytest.raises(ValueError, match=r"'purge\.tombstones' is retired"):
            audit.append(conn, now=NOW, actor="a", kind="purge.tombstones")
        with pytest.raises(ValueError, match=r"'made\.up' is not registered"):
            audit.append_many(
                conn, now=NOW, actor="a", entries=[(KIND, {}, {}), ("made.up", {}, {})]
            )
    assert _verify(store).last_seq == 0

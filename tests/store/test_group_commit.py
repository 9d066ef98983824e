"""Group commit: concurrent units share transactions; one unit's failure undoes only that unit;
a unit's result is returned only after its batch committed. On both stores."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from gateway.store.group_commit import GroupCommitter

MARKS = sa.Table("group_commit_marks", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))


def _prepare(store) -> None:
    """A scratch table of its own, empty (the PostgreSQL store is shared by the session)."""
    MARKS.metadata.drop_all(store.engine)
    MARKS.metadata.create_all(store.engine)


def _count(store) -> int:
    with store.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(MARKS)).scalar_one()


def test_concurrent_units_are_committed_in_fewer_transactions(store) -> None:
    _prepare(store)
    committer = GroupCommitter(store)
    started = threading.Barrier(16)

    def insert(number: int) -> int:
        started.wait()

        def work(conn) -> int:
            conn.execute(MARKS.insert().values(id=number))
            return number

        return committer.run(work, key=number)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(insert, range(16)))

    assert results == list(range(16))
    assert _count(store) == 16
    assert committer.units == 16
    assert committer.batches < 16, "no unit shared a transaction"


def test_a_failing_unit_is_undone_alone_and_its_error_reaches_its_caller(store) -> None:
    _prepare(store)
    committer = GroupCommitter(store)
    committer.run(lambda conn: conn.execute(MARKS.insert().values(id=1)))
    start = threading.Barrier(6)

    def insert(number: int) -> str:
        start.wait()
        try:
            committer.run(lambda conn: conn.execute(MARKS.insert().values(id=number)), key=number)
        except sa.exc.IntegrityError:
            return "refused"
        return "stored"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(insert, [1, 2, 3, 4, 5, 6]))

    assert outcomes == ["refused", "stored", "stored", "stored", "stored", "stored"]
    assert _count(store) == 6


def test_a_result_is_returned_only_after_its_commit(store) -> None:
    _prepare(store)
    committer = GroupCommitter(store)
    seen: list[int] = []

    def insert_then_look(number: int) -> None:
        committer.run(lambda conn: conn.execute(MARKS.insert().values(id=number)))
        seen.append(_count(store))  # another connection sees it: it was committed

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(insert_then_look, range(1, 9)))

    assert len(seen) == 8 and min(seen) >= 1
    assert _count(store) == 8

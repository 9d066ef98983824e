"""Job locks on both dialects: exclusive, released, who holds it; SQLite leases; PG sessions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gateway.app.locks import JobLock, advisory_key, job_lock, job_locks

T0 = datetime(2026, 11, 23, 2, 30, tzinfo=UTC)


class Clock:
    """A pinned clock that tests move by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    yield engine
    engine.dispose()


def test_lock_is_exclusive_names_its_holder_and_is_free_after_release(engine: sa.Engine) -> None:
    with job_lock(engine, "purge", "RU-FSSP@gw1:1") as first:
        assert first
        other = JobLock(engine, "purge", "RU-FSSP@gw2:2")
        assert not other.acquire()
        assert other.held_by is not None and "RU-FSSP@gw1:1" in other.held_by
        with job_lock(engine, "outbox-retry", "RU-FSSP@gw2:2") as different_job:
            assert different_job  # locks are per job
    with job_lock(engine, "purge", "RU-FSSP@gw2:2") as later:
        assert later


def test_lock_is_released_when_the_body_raises(engine: sa.Engine) -> None:
    with pytest.raises(RuntimeError), job_lock(engine, "purge", "a") as acquired:
        assert acquired
        raise RuntimeError("job failed")
    with job_lock(engine, "purge", "b") as acquired:
        assert acquired


def test_bad_job_name_is_refused(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="short code"):
        JobLock(engine, "Purge Now", "a")


# --- SQLite leases -------------------------------------------------------------------------------


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'gateway.db'}", poolclass=sa.NullPool)
    yield engine
    engine.dispose()


def test_sqlite_expired_lease_is_taken_over_and_the_stale_holder_cannot_release_it(
    sqlite_engine: sa.Engine,
) -> None:
    clock = Clock(T0)
    lease = timedelta(minutes=5)
    crashed = JobLock(sqlite_engine, "purge", "gw1", lease=lease, renew_every=None, clock=clock)
    assert crashed.acquire()
    successor = JobLock(sqlite_engine, "purge", "gw2", lease=lease, renew_every=None, clock=clock)
    clock.at = T0 + lease - timedelta(seconds=1)
    assert not successor.acquire()
    assert successor.held_by is not None and "gw1" in successor.held_by
    clock.at = T0 + lease
    assert successor.acquire()
    crashed.release()  # too late: must not delete gw2's row
    with sqlite_engine.connect() as conn:
        owner = conn.execute(sa.select(job_locks.c.owner)).scalar_one()
    assert owner == "gw2"
    third = JobLock(sqlite_engine, "purge", "gw3", lease=lease, renew_every=None, clock=clock)
    assert not third.acquire()
    successor.release()
    assert third.acquire()
    third.release()


def test_sqlite_renewal_extends_the_lease(sqlite_engine: sa.Engine) -> None:
    clock = Clock(T0)
    lease = timedelta(minutes=5)
    holder = JobLock(sqlite_engine, "purge", "gw1", lease=lease, renew_every=None, clock=clock)
    assert holder.acquire()
    clock.at = T0 + timedelta(minutes=4)
    assert holder.renew()
    clock.at = T0 + timedelta(minutes=8)
    rival = JobLock(sqlite_engine, "purge", "gw2", lease=lease, renew_every=None, clock=clock)
    assert not rival.acquire()  # the lease now runs to minute 9
    clock.at = T0 + timedelta(minutes=9)
    assert rival.acquire()
    assert not holder.renew()  # taken over: the old holder learns it lost the lock
    rival.release()


def test_sqlite_heartbeat_keeps_a_long_job_locked(sqlite_engine: sa.Engine) -> None:
    """Real clock: a 0.4 s lease renewed every 0.1 s still holds after 1 s."""
    lease, every = timedelta(seconds=0.4), timedelta(seconds=0.1)
    with job_lock(sqlite_engine, "purge", "gw1", lease=lease, renew_every=every) as acquired:
        assert acquired
        time.sleep(1.0)
        rival = JobLock(sqlite_engine, "purge", "gw2", lease=lease, renew_every=None)
        assert not rival.acquire()
    with job_lock(sqlite_engine, "purge", "gw2", lease=lease, renew_every=None) as acquired:
        assert acquired


# --- PostgreSQL advisory locks ------------------------------------------------------------------


def test_postgres_lock_dies_with_its_session(pg_url: str, pg_admin: sa.Engine) -> None:
    engine = sa.create_engine(pg_url, poolclass=sa.NullPool)
    try:
        holder = JobLock(engine, "purge", "gw1")
        assert holder.acquire()
        with pg_admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'gateway job purge gw1'"
                )
            )
            conn.commit()
        deadline = time.monotonic() + 5
        while True:  # the server frees the lock as the killed backend exits
            successor = JobLock(engine, "purge", "gw2")
            if successor.acquire() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert successor.held
        successor.release()
        with pytest.raises(sa.exc.OperationalError):
            holder.release()  # its connection is gone; the error surfaces, nothing is pooled
    finally:
        engine.dispose()


def test_postgres_keys_are_per_schema(pg_url: str, pg_admin: sa.Engine) -> None:
    """Two deployments in two schemas of one database do not block each other."""
    assert advisory_key("a", "purge") != advisory_key("b", "purge")
    engine = sa.create_engine(pg_url, poolclass=sa.NullPool)
    try:
        with (
            job_lock(engine, "purge", "schema-node") as mine,
            job_lock(pg_admin, "purge", "public-node") as theirs,
        ):
            assert mine and theirs
    finally:
        engine.dispose()

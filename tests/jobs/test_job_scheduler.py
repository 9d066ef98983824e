"""The scheduler: configuration, catch-up of runs missed while down (once), and two nodes on one
database never running a job at the same time."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from gateway.app.schedule import ScheduleSettings
from gateway.app.scheduled import PURGE
from gateway.config import NodeConfig
from gateway.jobs.scheduler import (
    JOB_NAMES,
    GatewayScheduler,
    JobOutcome,
    JobRun,
    JobSpec,
    Outcome,
    job_specs,
)
from gateway.model.problems import ConfigurationError

ALMATY = ZoneInfo("Asia/Almaty")


def _config(tmp_path: Path, scheduler: str = "", timezone: str = "Asia/Almaty") -> NodeConfig:
    path = tmp_path / "node.toml"
    path.write_text(
        f'[node]\nbody_id = "KZ-MJ"\ntimezone = "{timezone}"\n\n{scheduler}', encoding="utf-8"
    )
    return NodeConfig.from_toml(path)


# --- configuration ------------------------------------------------------------------------------


def test_defaults_purge_at_0230_node_time(tmp_path: Path) -> None:
    settings = ScheduleSettings.from_config(_config(tmp_path))
    assert settings.timezone == ALMATY
    bodies = dict.fromkeys(JOB_NAMES, lambda run: None)
    specs = {s.name: s for s in job_specs(settings, bodies)}
    assert set(specs) == set(JOB_NAMES)
    after = datetime(2026, 11, 23, 2, 31, tzinfo=ALMATY)
    fire = specs[PURGE].trigger.get_next_fire_time(None, after)
    assert fire == datetime(2026, 11, 24, 2, 30, tzinfo=ALMATY)
    assert fire.utcoffset() == timedelta(hours=5)
    assert specs[PURGE].misfire_grace_seconds is None and specs[PURGE].coalesce


def test_configured_schedule_is_used(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        '[scheduler]\npurge = "15 3 * * mon-fri"\noutbox_retry_seconds = 10\nowner = "gw1"\n',
    )
    settings = ScheduleSettings.from_config(config)
    assert (settings.purge, settings.outbox_retry_seconds, settings.owner) == (
        "15 3 * * mon-fri",
        10,
        "gw1",
    )
    (spec,) = job_specs(settings, {PURGE: lambda run: None})
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=ALMATY)
    assert spec.trigger.get_next_fire_time(None, saturday) == datetime(
        2026, 11, 30, 3, 15, tzinfo=ALMATY
    )


@pytest.mark.parametrize(
    ("section", "line", "reason"),
    [
        ('[scheduler]\npurge = "30 25 * * *"\n', 6, "not a crontab expression"),
        ("[scheduler]\npurge = 230\n", 6, "crontab string"),
        ('[scheduler]\ndeadline_reminders = "0 8 * * 1-5"\n', 6, "weekdays as names"),
        ('[scheduler]\nenabled = true\npurg = "30 2 * * *"\n', 7, "unknown key 'purg'"),
        ("[scheduler]\noutbox_retry_seconds = 1\n", 6, "from 5 to 3600"),
        ('[scheduler]\nlock_lease_seconds = "300"\n', 6, "whole number of seconds"),
    ],
)
def test_broken_schedule_names_file_line_and_key(
    tmp_path: Path, section: str, line: int, reason: str
) -> None:
    config = _config(tmp_path, section)
    with pytest.raises(ConfigurationError) as caught:
        ScheduleSettings.from_config(config)
    assert str(caught.value).startswith(f"{config.path}:{line}: [scheduler]")
    assert reason in str(caught.value)


def test_bad_time_zone_is_refused(tmp_path: Path) -> None:
    # Refused when NODE.toml is read (gateway.config), before any schedule is built.
    with pytest.raises(
        ConfigurationError, match="timezone 'Mars/Olympus' — не имя часового пояса IANA"
    ):
        ScheduleSettings.from_config(_config(tmp_path, timezone="Mars/Olympus"))


def test_disabled_scheduler_is_none(tmp_path: Path) -> None:
    config = _config(tmp_path, "[scheduler]\nenabled = false\n")
    assert GatewayScheduler.from_config(config, {PURGE: lambda run: None}) is None


def test_unknown_job_body_is_refused(tmp_path: Path) -> None:
    settings = ScheduleSettings.from_config(_config(tmp_path))
    with pytest.raises(ValueError, match="unknown job"):
        job_specs(settings, {"vacuum": lambda run: None})


# --- catch-up after downtime --------------------------------------------------------------------


async def _leave_due_in_past(url: str, spec: JobSpec, days_down: int) -> datetime:
    """Run a node once, then stop it with its purge 'days_down' nights overdue: the state a node
    leaves behind when it went down before 02:30 that many nights ago."""
    node = GatewayScheduler(url, [spec], timezone=ALMATY, owner="KZ-MJ@gw1:1")
    await node.start()
    node.apscheduler.pause()  # same turn of the loop as start: nothing has run
    upcoming = node.next_run_time(PURGE)
    assert upcoming is not None and upcoming > datetime.now(UTC)
    node.apscheduler.modify_job(PURGE, next_run_time=upcoming - timedelta(days=days_down))
    await node.shutdown()
    return upcoming


@pytest.mark.parametrize("coalesce", [True, False], ids=["coalesce", "no-coalesce"])
async def test_purge_missed_while_down_runs_once_when_the_node_is_back(
    db_url: str, coalesce: bool
) -> None:
    runs: list[JobRun] = []
    outcomes: list[JobOutcome] = []

    def spec() -> JobSpec:
        return JobSpec(
            PURGE,
            runs.append,
            CronTrigger.from_crontab("30 2 * * *", timezone=ALMATY),
            misfire_grace_seconds=None,
            coalesce=coalesce,
        )

    upcoming = await _leave_due_in_past(db_url, spec(), days_down=3)
    assert runs == []

    node = GatewayScheduler(
        db_url, [spec()], timezone=ALMATY, owner="KZ-MJ@gw1:2", on_outcome=outcomes.append
    )
    await node.start()
    try:
        for _ in range(100):
            if len(outcomes) >= (1 if coalesce else 3):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # room for (wrong) extra runs to show up
        missed = [upcoming - timedelta(days=d) for d in (3, 2, 1)]
        if coalesce:
            # Three nights missed, one run: for the latest missed time.
            assert [r.scheduled_for for r in runs] == missed[-1:]
        else:
            assert [r.scheduled_for for r in runs] == missed  # what coalesce prevents
        assert all(o.outcome is Outcome.RAN for o in outcomes)
        assert node.next_run_time(PURGE) == upcoming  # back on the normal schedule
    finally:
        await node.shutdown()


async def test_missed_run_beyond_its_grace_is_not_run(db_url: str) -> None:
    runs: list[JobRun] = []

    def spec() -> JobSpec:
        trigger = CronTrigger.from_crontab("30 2 * * *", timezone=ALMATY)
        return JobSpec(PURGE, runs.append, trigger, misfire_grace_seconds=60)

    upcoming = await _leave_due_in_past(db_url, spec(), days_down=1)
    node = GatewayScheduler(db_url, [spec()], timezone=ALMATY, owner="KZ-MJ@gw1:2")
    await node.start()
    try:
        await asyncio.sleep(0.3)
        assert runs == []
        assert node.next_run_time(PURGE) == upcoming
    finally:
        await node.shutdown()


async def test_changed_schedule_drops_the_stored_run_time(db_url: str) -> None:
    runs: list[JobRun] = []
    old = JobSpec(PURGE, runs.append, CronTrigger.from_crontab("30 2 * * *", timezone=ALMATY))
    await _leave_due_in_past(db_url, old, days_down=2)
    new_trigger = CronTrigger.from_crontab("0 4 * * *", timezone=ALMATY)
    node = GatewayScheduler(
        db_url, [JobSpec(PURGE, runs.append, new_trigger)], timezone=ALMATY, owner="gw1"
    )
    await node.start()
    try:
        await asyncio.sleep(0.3)
        assert runs == []
        expected = new_trigger.get_next_fire_time(None, datetime.now(ALMATY))
        assert node.next_run_time(PURGE) == expected
    finally:
        await node.shutdown()


async def test_failing_body_is_reported_and_releases_its_lock(db_url: str) -> None:
    outcomes: list[JobOutcome] = []

    async def broken(run: JobRun) -> None:
        raise RuntimeError("store unreachable")

    start = datetime.now(UTC) + timedelta(seconds=0.3)
    trigger = IntervalTrigger(
        seconds=0.5, start_date=start, end_date=start + timedelta(seconds=0.6)
    )
    node = GatewayScheduler(
        db_url,
        [JobSpec(PURGE, broken, trigger, misfire_grace_seconds=None)],
        timezone=ALMATY,
        owner="gw1",
        on_outcome=outcomes.append,
    )
    await node.start()
    try:
        for _ in range(100):
            if len(outcomes) >= 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await node.shutdown()
    # Both runs got the lock: the first failure released it.
    assert [o.outcome for o in outcomes] == [Outcome.FAILED, Outcome.FAILED]
    assert "RuntimeError: store unreachable" in outcomes[0].detail


# --- two nodes, one database --------------------------------------------------------------------

RUNS_TABLE = sa.Table(
    "jobs_test_runs",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("scheduled_for", sa.Float, nullable=False),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("ended", sa.Float, nullable=False),
)
BODY_SECONDS = 0.5
# A node's scheduler and its first database connection can take over a second to start on a
# loaded machine; a run time that passes before then is a misfire, not the race under test.
START_MARGIN = timedelta(seconds=3.0)
NODE_SECONDS = START_MARGIN.total_seconds() + 2.5
"""Long enough that the other node's attempt at the same run time finds the lock taken, well
inside the 1 s interval so that a node is never still busy with the previous run."""


def _recording_body(engine: sa.Engine, owner: str, seconds: float) -> Callable[[JobRun], None]:
    def body(run: JobRun) -> None:
        started = time.time()
        time.sleep(seconds)
        ended = time.time()
        with engine.begin() as conn:
            conn.execute(
                RUNS_TABLE.insert().values(
                    owner=owner,
                    scheduled_for=run.scheduled_for.timestamp(),
                    started=started,
                    ended=ended,
                )
            )

    return body


def _run_node_in_thread(
    url: str,
    owner: str,
    trigger_factory: Callable[[], IntervalTrigger],
    table_prefix: str,
    seconds: float,
    body_seconds: float,
    outcomes: list[JobOutcome],
    errors: list[BaseException],
) -> threading.Thread:
    """A node: its own thread, event loop, engine and AsyncIOScheduler."""

    def main() -> None:
        async def node() -> None:
            engine = sa.create_engine(url, poolclass=sa.NullPool)
            scheduler = GatewayScheduler(
                url,
                [JobSpec(PURGE, _recording_body(engine, owner, body_seconds), trigger_factory())],
                timezone=ALMATY,
                owner=owner,
                table_prefix=table_prefix,
                on_outcome=outcomes.append,
            )
            await scheduler.start()
            await asyncio.sleep(seconds)
            await scheduler.shutdown()
            engine.dispose()

        try:
            asyncio.run(node())
        except BaseException as exc:  # surfaced by the test thread
            errors.append(exc)

    thread = threading.Thread(target=main, name=owner)
    thread.start()
    return thread


def _assert_never_overlapping(url: str) -> list[sa.Row]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(RUNS_TABLE).order_by(RUNS_TABLE.c.started)).all()
    finally:
        engine.dispose()
    for before, after in pairwise(rows):
        assert after.started >= before.ended, f"runs overlap: {before} and {after}"
    return rows


@pytest.fixture
def runs_table(db_url: str) -> str:
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    RUNS_TABLE.create(engine)
    engine.dispose()
    return db_url


def test_two_nodes_triggering_the_same_run_never_overlap_and_the_skip_is_logged(
    runs_table: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each node has its own job table here, so both certainly fire at the same instants (the
    worst case of a shared table, where both may pick a run up); only the lock stands between
    them."""
    url = runs_table
    first_fire = datetime.now(UTC) + START_MARGIN
    fires = [first_fire, first_fire + timedelta(seconds=1.0)]

    def trigger() -> IntervalTrigger:
        return IntervalTrigger(seconds=1.0, start_date=fires[0], end_date=fires[-1])

    outcomes: list[JobOutcome] = []
    errors: list[BaseException] = []
    run_id = secrets.token_hex(3)
    with caplog.at_level(logging.DEBUG, logger="gateway.jobs.scheduler"):
        threads = [
            _run_node_in_thread(
                url,
                owner,
                trigger,
                f"jobs_{owner}_{run_id}_",
                NODE_SECONDS,
                BODY_SECONDS,
                outcomes,
                errors,
            )
            for owner in ("gw1", "gw2")
        ]
        for thread in threads:
            thread.join(timeout=20)
    assert not errors, errors
    rows = _assert_never_overlapping(url)
    # Every run time ran exactly once, on one node or the other.
    assert sorted(r.scheduled_for for r in rows) == [f.timestamp() for f in fires]
    skipped = [o for o in outcomes if o.outcome is Outcome.SKIPPED]
    ran = [o for o in outcomes if o.outcome is Outcome.RAN]
    assert len(ran) == len(fires) and len(skipped) == len(fires)
    skip_logs = [r for r in caplog.records if "skipped on" in r.getMessage()]
    assert len(skip_logs) == len(fires)
    # The loser finds the lock held or, when it gets the lock after the winner, the slot taken.
    assert all(
        "its lock is held by" in r.getMessage() or "slot already taken by" in r.getMessage()
        for r in skip_logs
    )
    # The lock's loser is expected in this layout: told at DEBUG, never as a WARNING.
    assert all(r.levelno == logging.DEBUG for r in skip_logs)


def test_two_nodes_sharing_the_job_table_run_each_time_at_most_once(
    runs_table: str,
) -> None:
    """The production layout: one job table for all nodes. Whoever picks a run time up runs
    it; the other either does not see it (already moved on) or is stopped by the lock."""
    url = runs_table
    start = datetime.now(UTC) + START_MARGIN

    def trigger() -> IntervalTrigger:
        # A run still going when the next comes due is dropped by APScheduler (max_instances
        # 1): keep the body well inside the interval, even on a loaded machine.
        return IntervalTrigger(
            seconds=0.8, start_date=start, end_date=start + timedelta(seconds=0.8)
        )

    outcomes: list[JobOutcome] = []
    errors: list[BaseException] = []
    prefix = f"jobs_shared_{secrets.token_hex(3)}_"
    threads = [
        _run_node_in_thread(url, owner, trigger, prefix, NODE_SECONDS, 0.2, outcomes, errors)
        for owner in ("gw1", "gw2")
    ]
    for thread in threads:
        thread.join(timeout=20)
    assert not errors, errors
    rows = _assert_never_overlapping(url)
    scheduled = [r.scheduled_for for r in rows]
    assert len(scheduled) == len(set(scheduled)), "a run time ran twice"
    assert len(scheduled) == 2  # both run times ran, once each


def test_a_slot_runs_once_even_when_the_loser_gets_the_lock_after_the_winner(
    runs_table: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #20 (a second run of the same slot was stopped only by timing): with an instant
    body, the node that lost the race takes the lock as soon as the winner releases it, and
    used to run the same slot again. The slot row (``jobs_slots``) now stops it, and records
    the one run's outcome."""
    from gateway.app import slots

    url = runs_table
    first_fire = datetime.now(UTC) + START_MARGIN
    fires = [first_fire, first_fire + timedelta(seconds=1.0)]

    def trigger() -> IntervalTrigger:
        return IntervalTrigger(seconds=1.0, start_date=fires[0], end_date=fires[-1])

    outcomes: list[JobOutcome] = []
    errors: list[BaseException] = []
    run_id = secrets.token_hex(3)
    with caplog.at_level(logging.DEBUG, logger="gateway.jobs.scheduler"):
        threads = [
            _run_node_in_thread(
                url, owner, trigger, f"jobs_{owner}_{run_id}_", NODE_SECONDS, 0.0, outcomes, errors
            )
            for owner in ("gw1", "gw2")
        ]
        for thread in threads:
            thread.join(timeout=20)
    assert not errors, errors
    rows = _assert_never_overlapping(url)
    assert sorted(r.scheduled_for for r in rows) == [f.timestamp() for f in fires]
    assert len([o for o in outcomes if o.outcome is Outcome.RAN]) == len(fires)
    assert len([o for o in outcomes if o.outcome is Outcome.SKIPPED]) == len(fires)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            recorded = slots.slots(conn, PURGE)
    finally:
        engine.dispose()
    assert sorted(r.slot for r in recorded) == fires
    assert {r.outcome for r in recorded} == {slots.SUCCEEDED}
    assert all(r.finished_at is not None and r.duration_ms is not None for r in recorded)


def test_a_claimed_slot_is_refused_to_a_restarted_process(db_url: str) -> None:
    """A restart (or a clock step) that replays a slot already run finds it claimed."""
    from gateway.app import slots

    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    try:
        slots.ensure_table(engine)
        slots.ensure_table(engine)  # idempotent: every process calls it at start
        slot = datetime(2026, 12, 1, 21, 30, tzinfo=UTC)
        assert slots.claim(engine, PURGE, slot, "gw1", slot) is None
        assert slots.claim(engine, PURGE, slot, "gw2", slot) == "gw1"
        slots.finish(
            engine,
            PURGE,
            slot,
            outcome=slots.SUCCEEDED,
            finished_at=slot + timedelta(seconds=3),
            count=7,
        )
        assert slots.claim(engine, PURGE, slot, "gw1-restarted", slot) == "gw1"
        with engine.connect() as conn:
            (status,) = slots.status(conn, [PURGE])
        assert status.last_success is not None and status.last_success.count == 7
        assert status.last_success.duration_ms == 3000 and status.failures == 0
    finally:
        engine.dispose()


# --- inside the service -------------------------------------------------------------------------


async def test_scheduler_starts_and_stops_with_the_aiohttp_app(
    tmp_path: Path, aiohttp_client
) -> None:
    from aiohttp import web

    from gateway.jobs.scheduler import scheduler_context

    config = _config(
        tmp_path,
        f'[database]\nurl = "sqlite:///{tmp_path / "gateway.db"}"\n\n[scheduler]\nowner = "gw1"\n',
    )
    scheduler = GatewayScheduler.from_config(config, {PURGE: lambda run: None})
    assert scheduler is not None and scheduler.owner == "gw1"
    app = web.Application()
    app.cleanup_ctx.append(scheduler_context(scheduler))
    client = await aiohttp_client(app)
    assert scheduler.apscheduler.running
    next_purge = scheduler.next_run_time(PURGE)
    assert next_purge is not None and (next_purge.hour, next_purge.minute) == (2, 30)
    assert next_purge.utcoffset() == timedelta(hours=5)  # Asia/Almaty, the node's zone
    await client.close()
    assert not scheduler.apscheduler.running


# --- the job table is not a way in --------------------------------------------------------------


class _Planted:
    """Pickles as 'create this file': what a hostile row in the job table would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize(
    "planted",
    [
        pytest.param(lambda marker: {"trigger": _Planted(marker)}, id="object-in-state"),
        pytest.param(lambda marker: {"func": "antigravity:geohash"}, id="foreign-function"),
    ],
)
async def test_a_planted_job_row_is_refused_not_run(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, planted
) -> None:
    import pickle

    marker = tmp_path / "pwned"
    ran: list[JobRun] = []
    trigger = CronTrigger.from_crontab("30 2 * * *", timezone=ALMATY)
    node = GatewayScheduler(
        db_url, [JobSpec(PURGE, ran.append, trigger)], timezone=ALMATY, owner="gw1"
    )
    await node.start()
    await node.shutdown()
    state = {
        "version": 1,
        "id": "evil",
        "func": "gateway.jobs.scheduler:scheduled_job_placeholder",
        "trigger": trigger,
        "executor": "default",
        "args": (),
        "kwargs": {},
        "name": "evil",
        "misfire_grace_time": None,
        "coalesce": True,
        "max_instances": 1,
        "next_run_time": datetime.now(UTC) - timedelta(hours=1),
    } | planted(marker)
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    table = sa.Table("jobs_apscheduler", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert().values(
                id="evil",
                next_run_time=time.time() - 3600,
                job_state=pickle.dumps(state),
            )
        )
    node = GatewayScheduler(
        db_url, [JobSpec(PURGE, ran.append, trigger)], timezone=ALMATY, owner="gw1"
    )
    with caplog.at_level(logging.ERROR):
        await node.start()
        await asyncio.sleep(0.2)
        next_purge = node.next_run_time(PURGE)
        await node.shutdown()
    assert not marker.exists()
    assert next_purge is not None  # the node's own jobs still work
    with engine.connect() as conn:
        ids = conn.execute(sa.select(table.c.id)).scalars().all()
    engine.dispose()
    assert ids == [PURGE]  # the planted row was removed
    assert "Unable to restore job" in caplog.text

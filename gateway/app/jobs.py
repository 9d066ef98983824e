"""Scheduled jobs as the console and ``gateway jobs list`` show them: each job's last run and
how it ended (``jobs_slots``, node-wide: whichever process ran it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from gateway.app.context import AppContext, require
from gateway.app.schedule import ScheduleSettings, stored_next_runs
from gateway.app.scheduled import JOB_NAMES
from gateway.config import NodeConfig
from gateway.exchange.service import Action
from gateway.store.job_slots import JobStatus, last_runs

__all__ = ["JobStatus", "job_rows", "job_runs", "job_statuses_of"]


def job_runs(ctx: AppContext, jobs: Sequence[str]) -> list[JobStatus]:
    """Last run, last success and failures kept of each of ``jobs``, in their order; a job that
    never ran has none. Administrators (it is the node's configuration at work)."""
    require(ctx, Action.READ_CONFIGURATION, "jobs")
    with ctx.store.read() as conn:
        return last_runs(conn, jobs)


def job_statuses_of(database_url: str, jobs: Sequence[str]) -> dict[str, JobStatus]:
    """As :func:`job_runs`, for ``gateway jobs list`` on a node's database URL: read on a
    connection of its own, writing nothing (before any scheduler ran there are no slots)."""
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return {s.job: s for s in last_runs(conn, jobs)}
    finally:
        engine.dispose()


def _time(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat(timespec="seconds") if at else None


def job_rows(config: NodeConfig, now: datetime) -> list[dict[str, Any]]:
    """What ``gateway jobs list`` prints, one mapping per job: its schedule, last run and next
    run (from the job store, or the schedule when no scheduler has run yet)."""
    settings = ScheduleSettings.from_config(config)
    engine = sa.create_engine(config.database_url, poolclass=sa.NullPool)
    try:
        stored = stored_next_runs(engine)
    finally:
        engine.dispose()
    statuses = job_statuses_of(config.database_url, JOB_NAMES)
    rows = []
    for name in JOB_NAMES:
        status = statuses[name]
        last, success = status.last, status.last_success
        next_run = stored.get(name) or settings.trigger_of(name).get_next_fire_time(None, now)
        rows.append(
            {
                "job": name,
                "schedule": settings.schedule_of(name),
                "enabled": settings.enabled,
                "last_slot": _time(last.slot) if last else None,
                "last_started": _time(last.started_at) if last else None,
                "last_finished": _time(last.finished_at) if last else None,
                "last_outcome": last.outcome if last else None,
                "last_owner": last.owner if last else None,
                "last_count": last.count if last else None,
                "last_detail": last.detail if last else None,
                "last_success": _time(success.finished_at) if success else None,
                "failures": status.failures,
                "next_run": _time(next_run) if settings.enabled else None,
            }
        )
    return rows

"""Scheduled jobs as the console and ``gateway jobs list`` show them: each job's last run and
how it ended (``jobs_slots``, node-wide: whichever process ran it)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from gateway.app.context import AppContext, require
from gateway.exchange.service import Action
from gateway.store.job_slots import JobStatus, last_runs

__all__ = ["JobStatus", "job_runs", "job_statuses_of"]


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

"""The record of scheduled job runs (``jobs_slots``): which slot of which job ran, by whom,
how it ended. The scheduler (:mod:`gateway.app.slots`) claims and finishes slots; this module
holds the table and the reads, so that the application layer (the console, ``gateway jobs
list``, the metrics) reads runs through the store like everything else.

The table is the scheduler's, prefixed apart from the store's tables and created on first use
by a scheduler (not by a migration): before any scheduler ran there is none, and
:func:`last_runs` says so by returning no run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.tables import UtcDateTime

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
KEEP_SLOTS = 200
"""Rows kept per job: weeks of the daily jobs, an hour or two of the outbox sweep."""
MAX_DETAIL = 64
SLOT_TABLE = "jobs_slots"

_metadata = sa.MetaData()
job_slots = sa.Table(
    SLOT_TABLE,
    _metadata,
    sa.Column("job", sa.String(64), primary_key=True),
    sa.Column("slot", UtcDateTime, primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.String(MAX_DETAIL), nullable=True),
    sa.Column("duration_ms", sa.BigInteger, nullable=True),
    sa.Column("count", sa.BigInteger, nullable=True),
)
"""The primary key ``(job, slot)`` is what makes a slot claimable once."""


@dataclass(frozen=True, slots=True)
class SlotRow:
    job: str
    slot: datetime
    owner: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    detail: str | None
    duration_ms: int | None
    count: int | None
    """What the run handled (messages purged, sends retried…), when the job says."""


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One job as ``jobs list`` and the metrics show it."""

    job: str
    last: SlotRow | None
    last_success: SlotRow | None
    failures: int
    """Failed slots among the kept rows."""


def _row(r: object) -> SlotRow:
    return SlotRow(**{f: getattr(r, f) for f in SlotRow.__dataclass_fields__})


def slots(conn: Connection, job: str, limit: int = 20) -> list[SlotRow]:
    """The job's newest slots, newest first."""
    rows = conn.execute(
        sa.select(job_slots)
        .where(job_slots.c.job == job)
        .order_by(job_slots.c.slot.desc())
        .limit(limit)
    )
    return [_row(r) for r in rows]


def status(conn: Connection, jobs: Sequence[str]) -> list[JobStatus]:
    """Last run, last success and failures of each job (a few indexed reads per job)."""
    found = []
    for job in jobs:
        newest = slots(conn, job, limit=1)
        success = conn.execute(
            sa.select(job_slots)
            .where(job_slots.c.job == job, job_slots.c.outcome == SUCCEEDED)
            .order_by(job_slots.c.slot.desc())
            .limit(1)
        ).first()
        failures = conn.execute(
            sa.select(sa.func.count()).where(job_slots.c.job == job, job_slots.c.outcome == FAILED)
        ).scalar_one()
        last = newest[0] if newest else None
        found.append(JobStatus(job, last, _row(success) if success else None, failures))
    return found


def last_runs(conn: Connection, jobs: Sequence[str]) -> list[JobStatus]:
    """As :func:`status`, reading nothing and writing nothing when no scheduler ever ran (no
    table yet): every job then has no run."""
    if not sa.inspect(conn).has_table(SLOT_TABLE):
        return [JobStatus(job, None, None, 0) for job in jobs]
    return status(conn, jobs)

"""Scheduled job slots: each run time of each job is claimed once, by one process, ever.

A slot is the time a job was scheduled for (``JobRun.scheduled_for``). The job lock keeps two
processes from running a job *at the same time*; the slot row keeps them (or a restart, or a
clock step) from running the same *slot* twice: the primary key ``(job, slot)`` lets exactly one
insert win, whatever the timing. The row then records how the run ended, which is what
``gateway jobs list`` and the job metrics read — node-wide, whichever process ran it.

A process killed during a run leaves its slot ``running``: that slot is not run again (the
next slot is; the purge resumes an interrupted run by itself), and ``jobs list`` shows it.

The table (``jobs_slots``, defined with its reads in :mod:`gateway.store.job_slots`) belongs to
the scheduler like ``jobs_locks``: prefixed apart from
the store's tables and created on first use, so that it exists wherever a scheduler runs.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.store.job_slots import (
    FAILED,
    KEEP_SLOTS,
    MAX_DETAIL,
    RUNNING,
    SLOT_TABLE,
    SUCCEEDED,
    JobStatus,
    SlotRow,
    job_slots,
    slots,
    status,
)

__all__ = [
    "FAILED",
    "RUNNING",
    "SLOT_TABLE",
    "SUCCEEDED",
    "JobStatus",
    "SlotRow",
    "claim",
    "ensure_table",
    "finish",
    "slots",
    "status",
]
"""The table and its reads live in :mod:`gateway.store.job_slots`; claiming and finishing a
slot, the scheduler's acts, here."""


def ensure_table(engine: Engine) -> None:
    """Create ``jobs_slots`` if missing (IF NOT EXISTS: two processes may race here)."""
    try:
        with engine.begin() as conn:
            conn.execute(sa.schema.CreateTable(job_slots, if_not_exists=True))
    except sa.exc.DBAPIError:
        # PostgreSQL: a concurrent CREATE … IF NOT EXISTS may still collide in its catalog.
        if not sa.inspect(engine).has_table(SLOT_TABLE):
            raise


def claim(engine: Engine, job: str, slot: datetime, owner: str, now: datetime) -> str | None:
    """Claim ``slot`` of ``job`` for ``owner`` in a transaction of its own. None: claimed now;
    otherwise the owner that claimed it before (the caller skips the run)."""
    try:
        with engine.begin() as conn:
            conn.execute(
                job_slots.insert().values(
                    job=job, slot=slot, owner=owner[:64], started_at=now, outcome=RUNNING
                )
            )
        return None
    except sa.exc.IntegrityError:
        with engine.connect() as conn:
            holder = conn.execute(
                sa.select(job_slots.c.owner).where(job_slots.c.job == job, job_slots.c.slot == slot)
            ).scalar()
        return holder or "another process"


def finish(
    engine: Engine,
    job: str,
    slot: datetime,
    *,
    outcome: str,
    finished_at: datetime,
    detail: str = "",
    count: int | None = None,
) -> None:
    """Record how a claimed slot ended, and keep the newest :data:`KEEP_SLOTS` rows of the job."""
    with engine.begin() as conn:
        started = conn.execute(
            sa.select(job_slots.c.started_at).where(
                job_slots.c.job == job, job_slots.c.slot == slot
            )
        ).scalar()
        duration = max(0, int((finished_at - started).total_seconds() * 1000)) if started else None
        conn.execute(
            job_slots.update()
            .where(job_slots.c.job == job, job_slots.c.slot == slot)
            .values(
                finished_at=finished_at,
                outcome=outcome,
                detail=detail[:MAX_DETAIL] or None,
                duration_ms=duration,
                count=count,
            )
        )
        oldest_kept = conn.execute(
            sa.select(job_slots.c.slot)
            .where(job_slots.c.job == job)
            .order_by(job_slots.c.slot.desc())
            .offset(KEEP_SLOTS - 1)
            .limit(1)
        ).scalar()
        if oldest_kept is not None:
            conn.execute(
                job_slots.delete().where(job_slots.c.job == job, job_slots.c.slot < oldest_kept)
            )

"""The node's schedule: the ``[scheduler]`` section read and checked, each job's trigger, and
the next runs the job store holds. The scheduler (:mod:`gateway.jobs.scheduler`) runs jobs on
it; ``gateway jobs list`` and the console's jobs page show it.

APScheduler's triggers are the calendar arithmetic here (cron in the node's time zone); the
scheduler itself, its job store and executors, stay in the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from gateway.app.locks import DEFAULT_LEASE
from gateway.app.retention import SourceLines
from gateway.app.scheduled import DEADLINE_REMINDERS, KEY_EXPIRY_WARNINGS, OUTBOX_RETRY, PURGE
from gateway.config import NodeConfig
from gateway.model.problems import ConfigurationError

TABLE_PREFIX = "jobs_"
"""Prefix of the scheduler's own tables (job store, SQLite locks): apart from the store's."""
DEFAULT_PURGE_CRON = "30 2 * * *"
"""02:30 node time: after midnight's day change, before the working day (and its traffic)."""
DEFAULT_DEADLINE_REMINDERS_CRON = "0 8 * * *"
"""08:00: the reminder is waiting when the operators start work."""
DEFAULT_KEY_EXPIRY_CRON = "0 7 * * *"
DEFAULT_OUTBOX_RETRY_SECONDS = 30
"""The sweep only picks rows whose back-off has passed; 30 s keeps the added delay small."""
MIN_OUTBOX_RETRY_SECONDS = 5
"""Below this the sweep would mostly find nothing and keep the database busy."""
MAX_LOCK_LEASE_SECONDS = 24 * 3600

_SCHEDULER_KEYS = {
    "enabled",
    "purge",
    "deadline_reminders",
    "key_expiry_warnings",
    "outbox_retry_seconds",
    "lock_lease_seconds",
    "owner",
}


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    """The ``[scheduler]`` section (``NodeConfig.extra["scheduler"]``), checked."""

    timezone: ZoneInfo
    """From ``[node] timezone``: cron times are node-local."""
    enabled: bool = True
    purge: str = DEFAULT_PURGE_CRON
    deadline_reminders: str = DEFAULT_DEADLINE_REMINDERS_CRON
    key_expiry_warnings: str = DEFAULT_KEY_EXPIRY_CRON
    outbox_retry_seconds: int = DEFAULT_OUTBOX_RETRY_SECONDS
    lock_lease_seconds: int = int(DEFAULT_LEASE.total_seconds())
    owner: str = ""
    """This node's name in locks and logs; empty: ``<body id>@<host>:<pid>``."""

    @classmethod
    def from_config(cls, config: NodeConfig) -> ScheduleSettings:
        """Read and check ``[scheduler]``; :class:`ConfigurationError` names file, line, key."""
        try:
            tz = ZoneInfo(config.node.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"{config.path}: [node] timezone {config.node.timezone!r} is not an IANA time "
                "zone name (e.g. Europe/Moscow, Asia/Almaty)"
            ) from None
        raw = config.extra.get("scheduler") or {}
        lines = SourceLines.read(config.path)

        def fail(key: str | None, reason: str) -> ConfigurationError:
            line = lines.key(("scheduler",), None, key) if key else lines.header(("scheduler",))
            where = f"{config.path}:{line}" if line else str(config.path)
            return ConfigurationError(f"{where}: [scheduler] {reason}")

        if not isinstance(raw, dict):
            raise fail(None, "must be a table")
        for key in raw:
            if key not in _SCHEDULER_KEYS:
                raise fail(
                    key, f"unknown key {key!r}; known keys: {', '.join(sorted(_SCHEDULER_KEYS))}"
                )
        values: dict[str, Any] = {}
        for key in ("purge", "deadline_reminders", "key_expiry_warnings"):
            if key in raw:
                expr = raw[key]
                if not isinstance(expr, str):
                    raise fail(key, f'{key} must be a crontab string such as "30 2 * * *"')
                try:
                    cron_trigger(expr, tz)
                except ValueError as exc:
                    raise fail(
                        key,
                        f"{key} = {expr!r} is not a crontab expression (minute hour day month "
                        f'weekday, e.g. "30 2 * * *"): {exc}',
                    ) from None
                values[key] = expr
        for key, low, high in (
            ("outbox_retry_seconds", MIN_OUTBOX_RETRY_SECONDS, 3600),
            ("lock_lease_seconds", 60, MAX_LOCK_LEASE_SECONDS),
        ):
            if key in raw:
                value = raw[key]
                if (
                    not isinstance(value, int)
                    or isinstance(value, bool)
                    or not low <= value <= high
                ):
                    raise fail(key, f"{key} must be a whole number of seconds from {low} to {high}")
                values[key] = value
        if "enabled" in raw:
            if not isinstance(raw["enabled"], bool):
                raise fail("enabled", "enabled must be true or false")
            values["enabled"] = raw["enabled"]
        if "owner" in raw:
            if not isinstance(raw["owner"], str) or not 0 < len(raw["owner"]) <= 100:
                raise fail("owner", "owner must be a name of 1-100 characters (e.g. gw1)")
            values["owner"] = raw["owner"]
        return cls(timezone=tz, **values)

    def trigger_of(self, name: str) -> BaseTrigger:
        """When the job runs: its crontab line, or its interval, in the node's time zone."""
        if name == OUTBOX_RETRY:
            return IntervalTrigger(seconds=self.outbox_retry_seconds, timezone=self.timezone)
        return cron_trigger(self.schedule_of(name), self.timezone)

    def schedule_of(self, name: str) -> str:
        """The job's schedule as configured: a crontab line (node time) or an interval."""
        return {
            PURGE: self.purge,
            DEADLINE_REMINDERS: self.deadline_reminders,
            KEY_EXPIRY_WARNINGS: self.key_expiry_warnings,
            OUTBOX_RETRY: f"every {self.outbox_retry_seconds} s",
        }[name]


def cron_trigger(expr: str, tz: tzinfo) -> CronTrigger:
    """A trigger from a five-field crontab expression (minute hour day month weekday), in the
    node's time zone. Raises ValueError.

    Weekdays must be names (``mon-fri``) or ``*``: crontab counts 0 = Sunday, APScheduler 3's
    ``from_crontab`` counts 0 = Monday, so ``1-5`` would silently mean Tuesday to Saturday.
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"{len(fields)} fields instead of 5")
    if any(c.isdigit() for c in fields[4]):
        raise ValueError(
            "write weekdays as names (mon-fri, sat,sun): crontab numbers them from Sunday = 0, "
            "APScheduler from Monday = 0"
        )
    return CronTrigger.from_crontab(expr, timezone=tz)


def stored_next_runs(engine: sa.Engine, table_prefix: str = TABLE_PREFIX) -> dict[str, datetime]:
    """Each job's next run time as the job store holds it (shared by every process of the
    node); empty when no scheduler has started yet. Read without starting APScheduler."""
    table = sa.table(
        f"{table_prefix}apscheduler", sa.column("id"), sa.column("next_run_time", sa.Float)
    )
    if not sa.inspect(engine).has_table(table.name):
        return {}
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.id, table.c.next_run_time)).all()
    return {
        r.id: datetime.fromtimestamp(r.next_run_time, UTC)
        for r in rows
        if r.next_run_time is not None
    }

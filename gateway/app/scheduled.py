"""The real bodies of the node's scheduled jobs: use cases the scheduler (gateway.jobs) runs.

``gateway serve`` calls ``gateway.jobs.scheduler.scheduler_for`` with the node's configuration
and its node object (anything with ``store``, ``keys`` and ``body_id``); it wires
:func:`job_bodies` into the scheduler, and the jobs run:

* ``purge`` — the nightly purge with its signed report (``gateway.app.purge``), then a signed
  audit checkpoint (the periodic checkpoint: once a day, after the purge's events);
* ``outbox-retry`` — a sweep that only *reports*: the runtime's delivery worker already
  retries due outbox rows on its own (it polls ``claim_due`` and honours each row's back-off),
  so the sweep logs how many rows wait and warns about rows overdue by more than
  :data:`STUCK_AFTER` (a worker that stopped);
* ``deadline-reminders`` — a ``deadline.reminder`` audit event (and a log line) per open
  conversation whose deadline is within :data:`REMINDER_DAYS_BEFORE` days (working days for
  CIS, calendar days for SC) or overdue, counted by the one legal clock
  (``gateway.rules.clock``), and a ``deadline.answered-late`` event once per late answer;
  and an ``original.not-sent`` event (daily, until marked) per document of ours whose paper
  original is not marked sent within ``[originals] send_within_days`` working days (CIS Art. 10
  para. 1, "в разумный срок"; gateway.rules.originals);
* ``key-expiry-warnings`` — a ``key.expiring`` audit event and a warning per key whose
  certificate expires within :data:`KEY_EXPIRY_WARNING_DAYS` days (or has expired).

Every body takes its ``now`` from the run (``JobRun.started_at``), never the clock, so tests
drive them with pinned times. Bodies are synchronous: the scheduler runs them in a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from gateway.app.audit_checkpoints import create_checkpoint
from gateway.app.purge import PURGE_JOB, PurgeReport, run_purge
from gateway.app.retention import PolicySet
from gateway.app.signing import timestamper
from gateway.config import NodeConfig
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import KeyStore, SigningKey
from gateway.exchange.conversation import CLOCK_PAUSED_IN
from gateway.model.problems import ConfigurationError
from gateway.rules.clock import Calendars, days_left
from gateway.rules.deadlines import DEFAULT_REMINDER_DAYS_BEFORE
from gateway.rules.originals import (
    ARTICLE as ORIGINAL_ARTICLE,
)
from gateway.rules.originals import (
    DEFAULT_SEND_WITHIN_DAYS,
    MAX_SEND_WITHIN_DAYS,
    send_by,
)
from gateway.store import Store, audit
from gateway.store import attachments as attachment_store
from gateway.store import late_answers as late_store
from gateway.store import originals as originals_store
from gateway.store import outbox as outbox_store
from gateway.store import purge as purge_store
from gateway.store.tables import conversations, outbox

log = logging.getLogger(__name__)

PURGE = PURGE_JOB
OUTBOX_RETRY = "outbox-retry"
DEADLINE_REMINDERS = "deadline-reminders"
KEY_EXPIRY_WARNINGS = "key-expiry-warnings"
JOB_NAMES = (PURGE, OUTBOX_RETRY, DEADLINE_REMINDERS, KEY_EXPIRY_WARNINGS)
"""The node's jobs; each body audits as ``job:<name>``."""

REMINDER_DAYS_BEFORE = DEFAULT_REMINDER_DAYS_BEFORE
"""5 working days: time to answer or send a delay notice (CIS Art. 12 para. 3)."""
REMINDER_HORIZON = timedelta(days=21)
"""Conversations read per reminder run: due within three weeks (5 working days are at most
~2 calendar weeks even across the longest holiday runs) or overdue; the rule then decides."""
PAUSED_STATES = tuple(str(state) for state in CLOCK_PAUSED_IN)
"""States whose term is paused (gateway.exchange.conversation.CLOCK_PAUSED_IN)."""
REMINDER_PAGE = 500
"""Conversations read per query: bounded memory however many are open."""
KEY_EXPIRY_WARNING_DAYS = 30
"""A month: time to get a new certificate from the CA and roll it out to peers."""
STUCK_AFTER = timedelta(hours=1)
"""An outbox row due this long ago and still pending means delivery is not running."""


class NodeLike(Protocol):
    """What the job bodies need of the node (``gateway.exchange.node.Node`` has it)."""

    store: Store
    keys: KeyStore
    body_id: str
    calendars: Calendars
    kek_ring: KekRing


@dataclass(frozen=True, slots=True)
class JobRun:
    """Passed to a job body: which run this is. Bodies use ``scheduled_for`` or ``started_at``
    as their ``now`` (the purge uses ``started_at``), never the clock directly."""

    job: str
    scheduled_for: datetime
    """The run time the trigger fired for (the latest missed one after a catch-up)."""
    started_at: datetime
    """When the body started, after the lock was taken (UTC)."""
    owner: str
    """This node, as named in the lock (``RU-FSSP@host:pid``)."""


@dataclass(frozen=True, slots=True)
class ReminderSent:
    conversation_id: str
    due: date
    days_left: int
    """In the deadline's unit; negative: overdue (for a late answer: minus the days late)."""
    answered_late: bool = False
    """A late answer's one-time report, not an open conversation's reminder."""
    original_of: str = ""
    """The message whose original by post is not marked sent (``due``: the last day to post
    it), not a deadline."""


def _now() -> datetime:
    return datetime.now(UTC)


def _actor(job: str) -> str:
    return f"job:{job}"


def record_policies(store: Store, policies: PolicySet, *, actor: str, now: datetime) -> bool:
    """Audit the policy set if it is not the one last recorded (``retention.policy_changed``
    with old and new hashes); True if it changed."""
    with store.transaction() as conn:
        changed = purge_store.record_policy_set(
            conn,
            policies.sha256,
            source=policies.source,
            actor=actor,
            now=now,
            below_minimum=policies.below_minimum(),
        )
    if changed:
        log.warning(
            "retention policies changed (%s): now %s; audited", policies.source, policies.sha256
        )
    return changed


def purge_body(
    config: NodeConfig,
    store: Store,
    seal_at: Callable[[datetime], SigningKey],
    kek_ring: KekRing | None = None,
) -> Callable[[JobRun], PurgeReport]:
    """The nightly purge, then the daily signed audit checkpoint, each signed with the seal
    generation active when it signs (``seal_at``): a rotation or a revocation between two runs
    is followed, never a generation taken when ``serve`` started.

    The policy file is read again before each run (``job_bodies`` checked it when ``serve``
    started; inline ``[[retention.policy]]`` tables are part of the node's configuration and
    change with a restart): an edited file takes effect at the next run, and its change is
    audited then, before anything is destroyed under it. A file that no longer loads fails the
    run (the job's failure is counted and logged); it is never replaced by the old set in
    silence."""

    def body(run: JobRun) -> PurgeReport:
        current = PolicySet.from_config(config)
        stamper = timestamper(config)
        record_policies(store, current, actor=_actor(PURGE), now=_now())
        report = run_purge(
            store,
            current,
            run.started_at,
            seal=seal_at(_now()),
            actor=_actor(PURGE),
            scheduled_for=run.scheduled_for,
            keys=kek_ring,
            timestamper=stamper,
        )
        # The checkpoint states when it is signed, by the generation in force then: a run's
        # start would predate a generation activated while the run went on (a switch planned
        # for 03:00 during a purge from 02:30), and `audit verify` would call it forged.
        signed_at = _now()
        create_checkpoint(
            store,
            seal_at(signed_at),
            actor=_actor(PURGE),
            now=signed_at,
            timestamper=stamper,
        )
        if not store.checkpoint_wal():
            log.warning(
                "purge run %s: the SQLite log is still in use; purged rows leave it at "
                "SQLite's next checkpoint",
                report.run_id,
            )
        return report

    return body


def outbox_sweep_body(store: Store) -> Callable[[JobRun], dict[str, int]]:
    """Report the outbox (the delivery worker retries by itself); warn about stuck rows.
    Also delete uploads never submitted within a day (docs/attachments.md): one indexed query
    when there are none."""

    def body(run: JobRun) -> dict[str, int]:
        with store.transaction() as conn:
            swept = attachment_store.sweep_staged(conn, run.started_at, actor=_actor(OUTBOX_RETRY))
        if swept:
            log.info("attachments: %d upload(s) never submitted were deleted", swept)
        with store.read() as conn:
            counts = outbox_store.count_by_state(conn)
            stuck = conn.execute(
                sa.select(sa.func.count())
                .select_from(outbox)
                .where(
                    outbox.c.state == "pending",
                    outbox.c.next_attempt_at < run.started_at - STUCK_AFTER,
                )
            ).scalar_one()
        counts = {**counts, "stuck": stuck, "uploads_deleted": swept}
        if stuck:
            log.warning(
                "outbox: %d message(s) due for over %s are still pending: is the delivery "
                "worker running? (gateway serve logs 'delivery round failed' when it fails)",
                stuck,
                STUCK_AFTER,
            )
        else:
            log.debug("outbox sweep: %s", counts)
        return counts

    return body


def deadline_reminders_body(
    config: NodeConfig,
    store: Store,
    calendars: Callable[[], Calendars] | None = None,
    *,
    days_before: int = REMINDER_DAYS_BEFORE,
) -> Callable[[JobRun], list[ReminderSent]]:
    """Audit a reminder for each open conversation near or past its deadline, and one for each
    late answer not reported yet (CIS Art. 12; SC Art. 6.1).

    Days are counted by the one legal clock (gateway.rules.clock): ``calendars`` gives the
    node's (the directory's calendars and zones); without it, ``holidays`` plus this
    configuration's extra days."""
    if days_before < 0:
        raise ValueError(f"days_before must be 0 or more, not {days_before}")
    within = send_within_days(config)
    if calendars is None:
        built = Calendars.build(
            extra_days_off=config.calendar.extra_days_off,
            extra_working_days=config.calendar.extra_working_days,
        )

        def calendars() -> Calendars:
            return built

    current = calendars

    def body(run: JobRun) -> list[ReminderSent]:
        clock = current()
        # The widest "today" of any zone (UTC+14) bounds the read; each row is then counted
        # from its requested party's own today.
        latest_today = (run.started_at + timedelta(days=1)).date()
        sent: list[ReminderSent] = []
        after = ""
        c = conversations.c
        while True:
            with store.read() as conn:
                rows = conn.execute(
                    sa.select(
                        c.conversation_id,
                        c.agreement,
                        c.requested_party,
                        c.requesting_party,
                        c.deadline,
                        c.urgent,
                    )
                    .where(
                        c.closed_at.is_(None),
                        c.deadline.is_not(None),
                        # A paused term stands still (the requested party waits on the other):
                        # no reminder until it runs again.
                        c.state.not_in(PAUSED_STATES),
                        # SC Art. 5.2: an urgent request is reminded at every run while open.
                        sa.or_(c.urgent, c.deadline <= latest_today + REMINDER_HORIZON),
                        c.conversation_id > after,
                    )
                    .order_by(c.conversation_id)
                    .limit(REMINDER_PAGE)
                ).all()
            due_now = []
            for row in rows:
                left = days_left(
                    row.agreement, row.requested_party, row.deadline, run.started_at, clock
                )
                if row.urgent or left <= days_before:
                    due_now.append((row, left))
            if due_now:
                with store.transaction() as conn:
                    for row, left in due_now:
                        role = _role(config, row.requested_party)
                        audit.append(
                            conn,
                            now=run.started_at,
                            actor=_actor(DEADLINE_REMINDERS),
                            kind="deadline.reminder",
                            subjects={"conversation_id": row.conversation_id},
                            details={
                                "due": row.deadline.isoformat(),
                                "days_left": left,
                                "overdue": left < 0,
                                "role": role,
                                "urgent": row.urgent,
                            },
                        )
                        sent.append(ReminderSent(row.conversation_id, row.deadline, left))
                        log.warning(
                            "deadline %s conversation %s (%s party): %s",
                            row.deadline.isoformat(),
                            row.conversation_id,
                            role,
                            ("URGENT, " if row.urgent else "")
                            + ("OVERDUE" if left < 0 else f"{left} day(s) left"),
                        )
            if len(rows) < REMINDER_PAGE:
                break
            after = rows[-1].conversation_id
        sent.extend(_report_late_answers(config, store, run))
        sent.extend(_remind_originals(config, store, run, clock, within))
        return sent

    return body


def _role(config: NodeConfig, requested_party: str) -> str:
    return "requested" if requested_party == config.node.body_id else "requesting"


def _report_late_answers(config: NodeConfig, store: Store, run: JobRun) -> list[ReminderSent]:
    """One ``deadline.answered-late`` reminder per late answer, once (the row is marked)."""
    sent: list[ReminderSent] = []
    while True:
        with store.transaction() as conn:
            rows = late_store.unreported(conn, REMINDER_PAGE)
            for row in rows:
                audit.append(
                    conn,
                    now=run.started_at,
                    actor=_actor(DEADLINE_REMINDERS),
                    kind="deadline.answered-late",
                    subjects={"conversation_id": row.conversation_id, "message": row.message_id},
                    details={
                        "due": row.due.isoformat(),
                        "answered_on": row.answered_on.isoformat(),
                        "days_late": row.days_late,
                        "kind": row.kind,
                    },
                )
                sent.append(ReminderSent(row.conversation_id, row.due, -row.days_late, True))
                log.warning(
                    "late answer: %s in conversation %s made %s, %d day(s) after the due date "
                    "%s, with no delay notice",
                    row.kind,
                    row.conversation_id,
                    row.answered_on.isoformat(),
                    row.days_late,
                    row.due.isoformat(),
                )
            late_store.mark_reported(conn, [r.message_id for r in rows], run.started_at)
        if len(rows) < REMINDER_PAGE:
            return sent


def send_within_days(config: NodeConfig) -> int:
    """``[originals] send_within_days``: working days to post a document's original (CIS Art.
    10 para. 1 says "в разумный срок"; the default is this project's choice)."""
    section = config.extra.get("originals", {})
    unknown = set(section) - {"send_within_days"} if isinstance(section, dict) else {"?"}
    value = section.get("send_within_days", DEFAULT_SEND_WITHIN_DAYS) if not unknown else None
    if (
        unknown
        or isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= MAX_SEND_WITHIN_DAYS
    ):
        raise ConfigurationError(
            f"{config.path}: [originals] takes only send_within_days, a whole number of working "
            f"days from 1 to {MAX_SEND_WITHIN_DAYS} (default {DEFAULT_SEND_WITHIN_DAYS}): how "
            f"long the original may take to be posted ({ORIGINAL_ARTICLE}, «в разумный срок»)"
        )
    return value


ORIGINALS_PAGE = 1000
"""Documents read per reminder run, oldest first: bounded memory; the rest wait a day."""


def _remind_originals(
    config: NodeConfig, store: Store, run: JobRun, clock: Calendars, within: int
) -> list[ReminderSent]:
    """An ``original.not-sent`` reminder per document of ours whose original is not marked
    sent by its :func:`~gateway.rules.originals.send_by` day, counted in this node's calendar
    and zone. Repeated each run until it is marked: a letter not posted stays a duty."""
    zone = ZoneInfo(config.node.timezone)
    today = run.started_at.astimezone(zone).date()
    calendar = clock.calendar(clock.calendar_state_of(config.node.body_id))
    # Working days are never fewer than calendar days: nothing newer can be overdue.
    with store.read() as conn:
        rows = originals_store.not_sent(
            conn, run.started_at - timedelta(days=within), ORIGINALS_PAGE
        )
    overdue = []
    for row in rows:
        due = send_by(row.created.astimezone(zone).date(), within, calendar)
        if today > due:
            overdue.append((row, due))
    if not overdue:
        return []
    sent: list[ReminderSent] = []
    with store.transaction() as conn:
        for row, due in overdue:
            audit.append(
                conn,
                now=run.started_at,
                actor=_actor(DEADLINE_REMINDERS),
                kind="original.not-sent",
                subjects={"conversation_id": row.conversation_id, "message": row.message_id},
                details={"kind": row.kind, "send_by": due.isoformat(), "days": within},
            )
            left = -calendar.working_days_between(due, today)
            sent.append(ReminderSent(row.conversation_id, due, left, original_of=row.message_id))
            log.warning(
                "original by post: %s %s in conversation %s was to be posted by %s (%s); "
                "mark it sent: gateway originals sent",
                row.kind,
                row.message_id,
                row.conversation_id,
                due.isoformat(),
                ORIGINAL_ARTICLE,
            )
    return sent


def key_expiry_body(
    keys: KeyStore, store: Store, *, warn_days: int = KEY_EXPIRY_WARNING_DAYS
) -> Callable[[JobRun], list[tuple[str, int]]]:
    """Warn (audit + log) about certificates expiring within ``warn_days`` days."""

    def body(run: JobRun) -> list[tuple[str, int]]:
        expiring = []
        for entry in keys.entries():
            left = entry.days_to_expiry(run.started_at)
            if left is None or left > warn_days:
                continue
            label = entry.role + (f"-{entry.name}" if entry.name else "")
            expiring.append((label, left))
        if expiring:
            with store.transaction() as conn:
                for label, left in expiring:
                    audit.append(
                        conn,
                        now=run.started_at,
                        actor=_actor(KEY_EXPIRY_WARNINGS),
                        kind="key.expiring",
                        subjects={"key": label},
                        details={"days_left": left, "expired": left < 0},
                    )
                    log.warning(
                        "key %s: certificate %s; renew it (gateway keys)",
                        label,
                        "has EXPIRED" if left < 0 else f"expires in {left} day(s)",
                    )
        return expiring

    return body


def job_bodies(config: NodeConfig, node: NodeLike) -> dict[str, Callable[[JobRun], Any]]:
    """The four bodies for ``node``. Loads the retention policies and the seal now, so that a
    bad policy file or a missing seal stops ``gateway serve`` at start, not at 02:30."""
    policies = PolicySet.from_config(config)
    node.keys.seal()  # a missing seal stops `serve` now; each run takes the generation in force
    record_policies(node.store, policies, actor=_actor(PURGE), now=_now())

    def seal_at(at: datetime) -> SigningKey:
        return node.keys.seal(at=at)

    return {
        PURGE: purge_body(config, node.store, seal_at, node.kek_ring),
        OUTBOX_RETRY: outbox_sweep_body(node.store),
        DEADLINE_REMINDERS: deadline_reminders_body(config, node.store, lambda: node.calendars),
        KEY_EXPIRY_WARNINGS: key_expiry_body(node.keys, node.store),
    }

"""Prometheus metrics of one node: what the local API, the outbox and the receive path count.

Each :class:`GatewayMetrics` owns its own ``CollectorRegistry`` (never prometheus-client's
global one), so two nodes in one process — or two apps in one test — never share counters.

**Labels are codes only.** A label value ends up in a time-series database kept for months and
readable by anyone who runs dashboards, so it must never hold personal data or a document's
content (DESIGN.md: confidential everywhere, metrics included). Every method below checks its
label values against a closed set (agreements and kinds of :mod:`gateway.model.profiles`, body
ids of the directory's pattern, upper-case rule codes, the outcome enums here) and records
anything else as :data:`OTHER`. The API's route label is the route *template*
(``/api/v1/messages/{message_id}``), never the path with ids in it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.model.bodies import BODY_ID_PATTERN
from gateway.model.profiles import PROFILES

OTHER = "other"
"""The label value recorded in place of one that is not a known code."""

UNMATCHED_ROUTE = "unmatched"
"""Route label of a request that matched no route (the raw path could carry anything)."""

CODE_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")
"""Shape of a stable problem/error code (``RULE_INCOME_PERIOD_TOO_LONG``): upper case, digits,
underscores. A value of another shape is not a code and is recorded as :data:`OTHER`."""

JOB_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
"""Job names are short codes (gateway.app.locks.JOB_NAME_PATTERN)."""
JOB_OUTCOMES = frozenset({"ran", "skipped", "failed"})


class JobStatusLike(Protocol):
    """``gateway.app.slots.JobStatus`` (web does not import jobs at module level)."""

    job: str
    last: Any
    last_success: Any
    failures: int


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

API_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds. Reads answer in milliseconds; a submit (schema, rules, two signatures) in tens of
milliseconds; a 16 MiB submit or a PDF rendition in seconds. The top bucket is the request limit
order of magnitude, so a stuck request shows as +Inf."""

HOP_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
"""Seconds from handing a document to a peer to its signed receipt. On a working link this is
well under a second (mTLS keep-alive, FACTS.md); minutes and an hour catch outbox retries after
an outage (retry ceilings grow to an hour, gateway.exchange.retry.MAX_DELAY)."""


class DeliveryOutcome(StrEnum):
    """What one delivery attempt to a peer ended in."""

    DELIVERED = "delivered"
    """The peer answered with its signed receipt."""
    REJECTED = "rejected"
    """The peer answered with a signed rejection: retrying the same bytes will not help."""
    RETRY = "retry"
    """Connection, TLS, timeout or 5xx: the outbox will try again."""
    DEAD_LETTER = "dead-letter"
    """The outbox gave up (gateway.exchange.retry.DeadLetter); an operator was alerted."""


class LateSide(StrEnum):
    """Which way a late answer went (CIS Art. 12; SC Art. 6.1)."""

    SENT = "sent"
    """Our operator answered after the due date with no delay notice."""
    RECEIVED = "received"
    """The peer's answer came after the due date with no delay notice."""


class RejectionSource(StrEnum):
    """Whose document was refused, and by whom."""

    LOCAL = "local"
    """The case system's document, refused by our node before signing (the API's 422)."""
    RECEIVED = "received"
    """A peer's document, refused by our node's receive path."""
    BY_PEER = "by-peer"
    """Our document, refused by the peer (its signed rejection)."""


_AGREEMENTS = frozenset(PROFILES)
_KINDS = frozenset(kind for profile in PROFILES.values() for kind in profile.kinds)


def _agreement(value: str | None) -> str:
    return value if value in _AGREEMENTS else OTHER


def _kind(value: str | None) -> str:
    return value if value in _KINDS else OTHER


def _code(value: str | None) -> str:
    return value if value is not None and CODE_PATTERN.fullmatch(value) else OTHER


def _body(value: str | None) -> str:
    return value if value is not None and BODY_ID_PATTERN.fullmatch(value) else OTHER


@dataclass(frozen=True, slots=True)
class ScheduledKey:
    """One key generation's place in the schedule (labels: role and generation, codes only —
    an official's key name may be a person's name and is never a label)."""

    role: str
    generation: int
    activation_at: datetime | None
    revoked_at: datetime | None


class _KeyScheduleCollector(Collector):
    """``gateway_key_activation_timestamp_seconds`` and ``…_revocation_…``, read at scrape."""

    def __init__(self, entries: Callable[[], Iterable[ScheduledKey]]) -> None:
        self.entries = entries

    def collect(self) -> Iterator[GaugeMetricFamily]:
        activation = GaugeMetricFamily(
            "gateway_key_activation_timestamp_seconds",
            "When a key generation becomes (or became) active by the schedule, Unix time.",
            labels=("role", "generation"),
        )
        revocation = GaugeMetricFamily(
            "gateway_key_revocation_timestamp_seconds",
            "When a key generation was revoked, Unix time.",
            labels=("role", "generation"),
        )
        try:
            entries = list(self.entries())
        except Exception:  # a scrape must never fail because a key file is being replaced
            entries = []
        seen: set[tuple[str, str, str]] = set()
        for entry in entries:
            labels = [entry.role, str(entry.generation)]
            for family, when in (
                (activation, entry.activation_at),
                (revocation, entry.revoked_at),
            ):
                key = (family.name, *labels)
                if when is not None and key not in seen:  # officials share role labels
                    seen.add(key)
                    family.add_metric(labels, when.timestamp())
        yield activation
        yield revocation


class GatewayMetrics:
    """The node's counters and histograms, in a registry of their own.

    The node calls :meth:`message_submitted`, :meth:`message_received`, :meth:`message_rejected`,
    :meth:`delivery` and :meth:`hop_latency`; the local API calls :meth:`api_request` from its
    middleware. :meth:`exposition` renders the Prometheus text for ``GET /metrics``.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._api_requests = Counter(
            "gateway_api_requests",
            "Local API requests by method, route template and status.",
            ("method", "route", "status"),
            registry=r,
        )
        self._api_duration = Histogram(
            "gateway_api_request_duration_seconds",
            "Local API request duration by method and route template.",
            ("method", "route"),
            buckets=API_LATENCY_BUCKETS,
            registry=r,
        )
        self._submitted = Counter(
            "gateway_messages_submitted",
            "Documents the case system submitted and the node accepted for sending.",
            ("agreement", "kind"),
            registry=r,
        )
        self._received = Counter(
            "gateway_messages_received",
            "Documents received from peers and accepted (signatures, schema, rules passed).",
            ("agreement", "kind"),
            registry=r,
        )
        self._rejected = Counter(
            "gateway_messages_rejected",
            "Documents refused, by source and the first problem's stable code.",
            ("source", "code"),
            registry=r,
        )
        self._deliveries = Counter(
            "gateway_delivery_attempts",
            "Delivery attempts to peers by outcome.",
            ("outcome",),
            registry=r,
        )
        self._resigned = Counter(
            "gateway_messages_resigned",
            "Documents signed again before delivery: a generation that signed them was revoked.",
            registry=r,
        )
        self._resumed = Counter(
            "gateway_delivery_bytes_resumed",
            "Bytes of attachment parts a retried delivery did not send again: the peer held "
            "them from the attempt that broke off.",
            ("peer",),
            registry=r,
        )
        self._answers_late = Counter(
            "gateway_answers_late",
            "Responses and refusals made after the due date with no delay notice, by side.",
            ("agreement", "side"),
            registry=r,
        )
        self._hop_latency = Histogram(
            "gateway_hop_latency_seconds",
            "Seconds from sending a document to a peer to receiving its signed receipt.",
            ("peer",),
            buckets=HOP_LATENCY_BUCKETS,
            registry=r,
        )

        self._keys_expiring = Gauge(
            "gateway_keys_expiring",
            "Keys in use whose certificates end within 30 days, by role (rotate them).",
            ("role",),
            registry=r,
        )
        self._key_days_left = Gauge(
            "gateway_key_min_days_left",
            "Fewest days left of any key in use, by role (negative: expired).",
            ("role",),
            registry=r,
        )

        self._job_runs = Counter(
            "gateway_job_runs",
            "Scheduled job runs seen by this process, by job and outcome (ran, skipped, failed).",
            ("job", "outcome"),
            registry=r,
        )
        self._job_last_success = Gauge(
            "gateway_job_last_success_timestamp_seconds",
            "When the job last finished successfully (any process of the node); alert when "
            "the purge's is older than a day and a bit.",
            ("job",),
            registry=r,
        )
        self._job_last_duration = Gauge(
            "gateway_job_last_duration_seconds",
            "Duration of the job's last finished run (any process of the node).",
            ("job",),
            registry=r,
        )
        self._job_last_count = Gauge(
            "gateway_job_last_count",
            "What the job's last successful run handled (the purge: messages purged).",
            ("job",),
            registry=r,
        )
        self._job_last_failed = Gauge(
            "gateway_job_last_run_failed",
            "1 when the job's last finished run failed, else 0.",
            ("job",),
            registry=r,
        )
        self._job_failures = Gauge(
            "gateway_job_failed_slots",
            "Failed runs among the job's recent slots (the newest 200 kept).",
            ("job",),
            registry=r,
        )
        self._schedule: _KeyScheduleCollector | None = None
        self._directory_version = Gauge(
            "gateway_directory_version",
            "Version of the signed directory of bodies this node runs (compare across peers "
            "before activating a newly published key: publish first, switch after).",
            registry=r,
        )

    # --- called by the node ----------------------------------------------------------------

    def job_outcome(self, job: str, outcome: str) -> None:
        """One scheduled run ended in this process (``ran``, ``skipped``, ``failed``)."""
        job_label = job if JOB_PATTERN.fullmatch(job) else OTHER
        outcome_label = outcome if outcome in JOB_OUTCOMES else OTHER
        self._job_runs.labels(job_label, outcome_label).inc()

    def job_status(self, statuses: Sequence[JobStatusLike]) -> None:
        """Set the per-job gauges from the node-wide record (``gateway.app.slots.status``)."""
        for status in statuses:
            job = status.job if JOB_PATTERN.fullmatch(status.job) else OTHER
            success = status.last_success
            if success is not None and success.finished_at is not None:
                self._job_last_success.labels(job).set(success.finished_at.timestamp())
                if success.count is not None:
                    self._job_last_count.labels(job).set(success.count)
            last = status.last
            if last is not None and last.finished_at is not None:
                if last.duration_ms is not None:
                    self._job_last_duration.labels(job).set(last.duration_ms / 1000)
                self._job_last_failed.labels(job).set(1 if last.outcome == "failed" else 0)
            self._job_failures.labels(job).set(status.failures)

    def directory_in_force(self, version: Callable[[], int]) -> None:
        """Read the directory version in force at every scrape (it changes without restart)."""
        self._directory_version.set_function(version)

    def key_schedule(self, entries: Callable[[], Iterable[ScheduledKey]]) -> None:
        """Read the key generations' schedule at every scrape (``gateway keys activate`` and
        ``revoke`` change it without restart)."""
        if self._schedule is None:
            self._schedule = _KeyScheduleCollector(entries)
            self.registry.register(self._schedule)
        self._schedule.entries = entries  # a restarted runtime reads its own node

    def keys_expiring(self, days_left_by_role: dict[str, list[int]]) -> None:
        """Set the key-expiry gauges; roles are codes (seal, official, tls, encryption, kek)."""
        for role in ("seal", "official", "tls", "encryption", "kek"):
            days = days_left_by_role.get(role, [])
            self._keys_expiring.labels(role).set(len(days))
            if days:
                self._key_days_left.labels(role).set(min(days))

    def message_submitted(self, agreement: str, kind: str) -> None:
        """One document from the case system was accepted for sending."""
        self._submitted.labels(_agreement(agreement), _kind(kind)).inc()

    def message_received(self, agreement: str, kind: str) -> None:
        """One document from a peer was verified, validated and stored."""
        self._received.labels(_agreement(agreement), _kind(kind)).inc()

    def message_rejected(
        self, code: str, source: RejectionSource = RejectionSource.RECEIVED
    ) -> None:
        """One document was refused; ``code`` is the first problem's stable code."""
        self._rejected.labels(RejectionSource(source).value, _code(code)).inc()

    def message_resigned(self) -> None:
        """One waiting document was signed again by the generations in force (a revocation)."""
        self._resigned.inc()

    def answer_late(self, agreement: str, side: LateSide) -> None:
        """One answer accepted but flagged late (recorded in gateway.store.late_answers)."""
        self._answers_late.labels(_agreement(agreement), LateSide(side).value).inc()

    def delivery(self, outcome: DeliveryOutcome) -> None:
        """One delivery attempt to a peer ended with ``outcome``."""
        self._deliveries.labels(DeliveryOutcome(outcome).value).inc()

    def delivery_resumed(self, peer: str, held: int) -> None:
        """A retried delivery to ``peer`` went on from ``held`` bytes the peer kept."""
        if held > 0:
            self._resumed.labels(_body(peer)).inc(held)

    def hop_latency(self, seconds: float, peer: str | None = None) -> None:
        """Seconds from sending to the peer's receipt; ``peer`` is its body id (a code)."""
        if seconds < 0:  # a clock step backwards; a negative duration would skew the sum
            return
        self._hop_latency.labels(_body(peer)).observe(seconds)

    # --- called by the local API -----------------------------------------------------------

    def api_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One API request; ``route`` must be a route template or :data:`UNMATCHED_ROUTE`."""
        method = method if method in HTTP_METHODS else OTHER
        status_label = str(status) if 100 <= status <= 599 else OTHER
        self._api_requests.labels(method, route, status_label).inc()
        self._api_duration.labels(method, route).observe(max(0.0, seconds))

    # --- exposition ------------------------------------------------------------------------

    content_type = CONTENT_TYPE_LATEST
    """The media type of :meth:`exposition` (Prometheus text format)."""

    def exposition(self) -> bytes:
        """All metrics of this registry in the Prometheus text format."""
        return generate_latest(self.registry)

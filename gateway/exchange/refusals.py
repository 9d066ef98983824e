"""Refusals in the audit trail without flooding it: counted per peer, code and minute.

A peer sending broken documents at its rate limit would otherwise add one audit row per
document, millions a day. So, per ``(peer, kind, code, minute)``:

* the first refusal of the minute is audited as its own event (with the message id it claimed),
  as the first sign of trouble;
* the rest are counted in memory and written as one ``refusals.summary`` event when the minute
  is over (at the next refusal after it, at :meth:`RefusalAudit.flush` — the node runtime calls
  it every few seconds — and when the node closes), with ``count`` = the refusals it stands for.

So the events of a minute and the counts of its summaries add up to every refusal, and a minute
adds at most two events per peer and code. Security-relevant refusals (:data:`SECURITY_RELEVANT`:
forged or tampered signatures, a sender or seal the directory does not back, hostile markup, a
reused message id…) are each audited as an event of their own, never folded.

Summaries are events of the hash chain like any other, so the chain's signed checkpoints cover
them. Counts not yet written are lost if the process is killed (at most a minute's, and the
first refusal of each was written at once); each worker process counts its own refusals.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from gateway.store import Store, audit

log = logging.getLogger(__name__)

SUMMARY_KIND = "refusals.summary"
"""Audit kind of the per-minute summary; ``details.kind`` names the refusals it counts."""

RECEIVED = "message.rejected"
"""A document a peer sent, refused by the receive pipeline (details: ``code``)."""
AT_ENDPOINT = "peer.refused"
"""A request the peer endpoint refused before the pipeline saw it: 403 ``PEER_UNKNOWN`` (a
certificate of a directory CA naming no body), 413 ``MESSAGE_TOO_LARGE``."""

SECURITY_RELEVANT = frozenset(
    {
        "SENDER_MISMATCH",
        "SEAL_NOT_IN_DIRECTORY",
        "BODY_NOT_IN_DIRECTORY",
        "MESSAGE_ID_REUSED",
        "CONFIDENTIAL_NOT_ENCRYPTED",
        "SIGNATURE_OFFICIAL_MISSING",
        "XML_ENTITY_FORBIDDEN",
        "XML_DOCTYPE_FORBIDDEN",
        "XML_COMMENT",
        "XML_PROCESSING_INSTRUCTION",
    }
)
"""Refusal codes audited one event each: they say someone forges, tampers, impersonates or
attacks the parser, and an investigation needs every one with its message id. Every code
starting with ``SIGNATURE_`` is too (a signature that fails to verify), except the transient
``SIGNATURE_TRY_LATER``."""


def security_relevant(code: str) -> bool:
    """Whether a refusal with ``code`` is audited as an event of its own, never folded."""
    if code in SECURITY_RELEVANT:
        return True
    return code.startswith("SIGNATURE_") and code != "SIGNATURE_TRY_LATER"


@dataclass(frozen=True, slots=True)
class _Key:
    actor: str
    kind: str
    code: str
    minute: datetime


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


class RefusalAudit:
    """Audits refusals of one node's peers (thread-safe: receive runs on many threads)."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._folded: dict[_Key, int] = {}
        """Refusals counted but not yet written, per key; a key present had its first
        refusal of the minute written as its own event."""

    def record(
        self,
        actor: str,
        code: str,
        at: datetime,
        *,
        kind: str = RECEIVED,
        subjects: dict[str, str] | None = None,
    ) -> None:
        """Audit one refusal by ``actor`` (``peer:<body id>``, or ``peer-unknown:<address>``)."""
        key = _Key(actor, kind, code, minute_of(at))
        with self._lock:
            first = security_relevant(code) or key not in self._folded
            if not first:
                self._folded[key] += 1
            elif not security_relevant(code):
                self._folded[key] = 0
            closed = any(k.minute < key.minute for k in self._folded)
        if first:
            try:
                with self._store.transaction() as conn:
                    audit.append(
                        conn,
                        now=at,
                        actor=actor,
                        kind=kind,
                        subjects=subjects or {},
                        details={"code": code},
                    )
            except Exception:
                # Not written: the next refusal of the minute is the first again.
                with self._lock:
                    if self._folded.get(key) == 0:
                        del self._folded[key]
                raise
        if closed:
            self.flush(at)

    def flush(self, now: datetime | None = None, *, everything: bool = False) -> int:
        """Write the summaries of the minutes before ``now``'s (all of them with
        ``everything``, when the node closes); the number written."""
        now = now or self._clock()
        current = minute_of(now)
        with self._lock:
            due = {k: n for k, n in self._folded.items() if everything or k.minute < current}
            for key in due:
                del self._folded[key]
        summaries = [(k, n) for k, n in due.items() if n > 0]
        if not summaries:
            return 0
        try:
            with self._store.transaction() as conn:
                for key, count in summaries:
                    audit.append(
                        conn,
                        now=now,
                        actor=key.actor,
                        kind=SUMMARY_KIND,
                        details={
                            "kind": key.kind,
                            "code": key.code,
                            "minute": key.minute.isoformat(),
                            "count": count,
                        },
                    )
        except Exception:
            # Not lost: counted again and written at the next flush.
            with self._lock:
                for key, count in summaries:
                    self._folded[key] = self._folded.get(key, 0) + count
            raise
        return len(summaries)

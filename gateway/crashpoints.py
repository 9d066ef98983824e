"""Named crash points: where a test may kill the node with SIGKILL to prove crash safety.

``crash_point("submit.committed")`` does nothing unless the environment variable
``GATEWAY_CRASH_AT`` names that point when the process starts; then the process kills itself
with SIGKILL on the spot — no ``finally``, no ``atexit``, no flush, as a power cut or the OOM
killer would. The variable is read once, at import: when it is unset (production) a point
costs one string comparison.

Each point sits where a crash could lose, duplicate or half-apply something: inside a write
transaction before its commit, just after a commit before the answer leaves, between a peer's
answer and its recording. ``tests/integration/test_crash_points.py`` kills a node at each of the
exchange's points, restarts it and checks that every accepted document arrives exactly once, with
its receipt and report, and that the audit chain verifies; ``tests/app/purge`` and
``tests/crypto/rotation`` kill the purge, the KEK re-wrap and the key rotation at theirs.
``docs/operations.md`` lists the points (a test compares that list, this table and the calls
in ``gateway/``).
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "GATEWAY_CRASH_AT"

POINTS: dict[str, str] = {
    # submit (the local API → a signed document in the store and the outbox)
    "submit.signed": "signed, nothing written: the case system gets no 202 and nothing is kept",
    "submit.write": "inside the write transaction, before commit: nothing of it is kept",
    "submit.committed": "committed, no 202 yet: the document is delivered anyway, once",
    # claim and deliver (the outbox → a peer)
    "claim.committed": "rows claimed, nothing sent: the lease runs out and another worker sends",
    "deliver.posting": "the bytes are ready, not sent: the row goes out after the lease",
    "deliver.answered": "the peer stored it and answered, nothing recorded: the replay gets the "
    "same receipt, the peer keeps one copy",
    # record (the peer's Receipt or Rejection → our store)
    "record.write": "recording the receipt, before commit: nothing recorded, the row goes again",
    "record.committed": "the receipt recorded: the row is delivered and never sent again",
    # receive (a peer's document → our store and a signed receipt)
    "receive.verified": "signatures and schema checked, nothing stored: the sender retries",
    "receipt.signed": "our receipt signed, nothing stored: the sender retries, a new receipt",
    "receive.write": "storing the document, before commit: nothing kept, the sender retries",
    "receive.committed": "stored and receipted, the receipt not sent: the retry is a replay and "
    "gets the stored receipt",
    "receipt.answering": "the receipt leaves for the HTTP layer: the same as receive.committed, "
    "seen from the peer endpoint",
    # group commit (every write above that goes through it)
    "commit.batch": "a batch of units written, before its commit: every unit is undone",
    "commit.done": "a batch committed, its callers not told: each unit is kept once",
    # purge (gateway/store/purge.py) and KEK re-wrap (gateway/store/keys.py)
    "purge.batch": "a batch tombstoned and deleted, before commit: every message stays whole, "
    "the next run closes the killed one and purges them",
    "purge.committed": "a batch committed, the next not begun: its messages stay tombstoned "
    "and bound, the rest whole; the next run closes the killed one and purges the rest, none "
    "twice",
    "rewrap.batch": "a batch re-wrapped, before commit: the keys stay under the old KEK",
    "rewrap.committed": "a batch re-wrapped and committed: it stays done, the next run goes on",
    # key rotation (gateway keys rotate / activate, gateway/app/keys.py)
    "rotation.generated": "a new generation's files and manifest written, not audited: "
    "rotating again audits that generation once and makes no second one",
    "rotation.activated": "the switch written in the manifest, not audited: activating again "
    "(the same generation and time) writes its audit event once",
    # directory swap (gateway directory import, gateway/cli/node.py)
    "directory.written": "the new directory written beside the old, not swapped in: the old "
    "stays, importing again installs the new",
    "directory.swapped": "swapped in, not audited: importing the same file again writes its "
    "audit event, once",
}
"""Every crash point and what a crash there must leave behind."""

_ARMED = os.environ.get(ENV_VAR, "")
if _ARMED and _ARMED not in POINTS:  # a mistyped point would silently never fire
    raise ValueError(f"{ENV_VAR}={_ARMED!r} names no crash point; known: {', '.join(POINTS)}")


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``GATEWAY_CRASH_AT`` names this point."""
    if name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["ENV_VAR", "POINTS", "crash_point"]

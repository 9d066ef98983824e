"""A purge run closed while one of its transactions is still in flight (a second run, started
after the first lost its job lock — on PostgreSQL the lock lives as long as one connection —
closes every run still marked ``running`` as interrupted). Closing must wait for the batch:
a report signed over the tombstones committed so far, and then the batch's tombstones
committed under the closed run, would leave a signed report that never verifies again."""

from __future__ import annotations

import threading
import time
import uuid

from gateway.app.purge import _close_interrupted, verify_report
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import SigningKey
from gateway.store import Store
from gateway.store import purge as purge_store
from tests.app.purge.world import T0, add_conversation, after


def test_a_run_closed_while_its_batch_is_in_flight_signs_what_the_batch_purged(
    store: Store, ring: KekRing, seal: SigningKey
) -> None:
    with store.transaction() as conn:
        conv = add_conversation(conn, ring, T0, count=2)
    now = after(T0, days=800)
    run_id = str(uuid.uuid4())
    with store.transaction() as conn:
        purge_store.start_run(conn, run_id, "p", "job:purge", now)

    batch_written, commit_batch = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def batch() -> None:  # the first run's writer: its transaction stays open a moment
        try:
            with store.transaction() as conn:
                locked = purge_store.lock_batch(conn, list(conv.message_ids))
                purge_store.purge_batch(
                    conn, [(m, "p") for m in locked], run_id=run_id, actor="job:purge", now=now
                )
                batch_written.set()
                commit_batch.wait(10)
        except BaseException as exc:
            failures.append(exc)
            batch_written.set()

    def close() -> None:  # the second run's start
        try:
            _close_interrupted(store, now, seal)
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=batch)
    writer.start()
    assert batch_written.wait(10)
    closer = threading.Thread(target=close)
    closer.start()
    time.sleep(1.0)  # the closer reads and signs now, if nothing makes it wait
    commit_batch.set()
    writer.join(30)
    closer.join(30)
    assert failures == []

    check = verify_report(store, run_id)
    assert check.ok, check.reason
    assert check.report["tombstones"] == check.report["purged"] == 2

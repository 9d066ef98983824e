"""A run whose batches keep failing stops after MAX_BATCH_ERRORS of them: its report says so,
every message stays whole, and the reader thread that scans ahead of the batches is stopped
(none left behind). The failures are real: a trigger makes the database refuse to delete a
message, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from gateway.app.purge import MAX_BATCH_ERRORS, writer_count
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import SigningKey
from gateway.store import Store
from tests.app.purge.world import (
    T0,
    bulk_messages,
    purge_received_after_a_year,
    states_of,
)

SQLITE_REFUSAL = (
    "CREATE TRIGGER refuse_purge BEFORE DELETE ON messages "
    "BEGIN SELECT RAISE(ABORT, 'deleting messages is refused'); END",
)
SQLITE_LIFT = ("DROP TRIGGER refuse_purge",)
POSTGRES_REFUSAL = (
    "CREATE FUNCTION refuse_purge() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'deleting messages is refused'; END $$",
    "CREATE TRIGGER refuse_purge BEFORE DELETE ON messages "
    "FOR EACH ROW EXECUTE FUNCTION refuse_purge()",
)
POSTGRES_LIFT = ("DROP TRIGGER refuse_purge ON messages", "DROP FUNCTION refuse_purge()")
"""The PostgreSQL store is shared by the session's tests: the refusal goes with this test."""


def test_a_run_stops_after_too_many_failed_batches_and_its_reader_with_it(
    store: Store, ring: KekRing, seal: SigningKey
) -> None:
    ids = bulk_messages(store, ring, MAX_BATCH_ERRORS + 5, T0)
    postgres = store.engine.dialect.name == "postgresql"
    _run_all(store, POSTGRES_REFUSAL if postgres else SQLITE_REFUSAL)
    threads_before = set(threading.enumerate())
    try:
        report = purge_received_after_a_year(
            store,
            seal,
            batch_size=1,
        )
    finally:
        _run_all(store, POSTGRES_LIFT if postgres else SQLITE_LIFT)

    assert report.state == "failed" and report.purged == 0
    # Then it stopped; a transaction already in flight beside the last one still ends.
    in_flight = writer_count(store)
    assert MAX_BATCH_ERRORS <= sum(report.errors.values()) < MAX_BATCH_ERRORS + in_flight
    assert set(states_of(store, ring, ids).values()) == {"whole"}
    assert [t.name for t in set(threading.enumerate()) - threads_before] == []


def _run_all(store: Store, statements: tuple[str, ...]) -> None:
    with store.transaction() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))

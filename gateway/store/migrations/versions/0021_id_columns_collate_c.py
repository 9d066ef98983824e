"""Ids in byte order on PostgreSQL (COLLATE "C"): each index probe on a text id paid strcoll.

A database created with a C.UTF-8 (or any linguistic) collation compares text through the
C library: PostgreSQL 15 treats only "C" and "POSIX" as byte order, so each comparison of two
keys in an index on a text column copies both to NUL-terminated buffers and calls
``strcoll``. A purge transaction of 10,000 messages probes about fifteen indexes keyed by
random uuid-shaped text ids. Measured with ``EXPLAIN (ANALYZE, BUFFERS)`` on one such
transaction over a 1 M-message store, on the test server (C.UTF-8): the Bitmap Index Scan of
10,000 ids on ``uq_messages_message_id`` took 26–33 ms before and 22 ms after changing the
columns to ``COLLATE "C"``, the whole transaction 1.19–1.35 s before and 1.08 s after (about
15 % less server time).

The order of these ids does not change on such a database: C.UTF-8 orders by code point,
which is UTF-8 byte order, so keyset pages (``message_id > :after ORDER BY message_id``)
are the same. On a database created with a linguistic collation (``en_US``) the ids' order
becomes byte order instead, the same in ``ORDER BY`` and in comparisons (both use the
column's collation). For the ids that are paged in order that makes no difference either:
message and conversation ids are canonical lower-case uuids (the envelope schema's pattern),
whose hyphens stand at the same places in every id, and both orders put digits before
``a``–``f``; key ids are never ordered.
The one order that is signed is safe anyway: a batch's tombstones are sorted in Python before
they are digested (``gateway.store.purge.batch_tombstones``); the digest of a
``gateway-purge-report/1`` (before 0017) is read in the database's message-id order, which
for uuids is the same before and after.

Every id the gateway makes or receives (message, conversation, attachment, disclosure, purge
run, consent request ids) and every key id (KEKs, period keys) is converted, in the tables
that name them, so that a join or a comparison of two of them has one collation and can use
either side's index. Not converted: ``delivery_attempts.worker_id`` (a process label kept for
the record, never compared or indexed) and ``idempotency_keys.idempotency_key`` (a client's
key of any shape, looked up once per submission). A parameter or an expression
(``ANY(string_to_array(:joined, chr(31)))``) has the default collation, which gives way to
the column's, so no statement changes.

PostgreSQL rebuilds every index on a converted column (the table is not rewritten: the type
stays ``varchar(n)``, and indexes on other columns are kept) and holds an ACCESS EXCLUSIVE
lock on each table meanwhile: about 25 s in all on a 1 M-message store here. One ``ALTER
TABLE`` per table, so an index over two converted columns is rebuilt once. The three foreign
keys among these columns (``messages.conversation_id``, ``tombstones.purge_run_id``,
``purge_reports.run_id``) stay, same names and options: PostgreSQL re-creates them itself when
either side's type is altered, and accepts one between a "C" and a default-collation column
(both deterministic) in between, so they need not be dropped and the order of the tables does
not matter (PostgreSQL 15, tests/store/test_store_migrations.py).

SQLite: nothing to do, its default BINARY collation is byte order already.

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 36
"""``ID_LENGTH`` in gateway/store/tables.py (a uuid's text form)."""
KEY_ID = 64
"""``CODE_LENGTH``: the length of key-id columns."""

COLUMNS: dict[str, dict[str, int]] = {
    # Referenced tables first (any order works, see above).
    "conversations": {"conversation_id": ID},
    "purge_runs": {"run_id": ID},
    "messages": {"message_id": ID, "conversation_id": ID, "in_reply_to": ID},
    "conversation_machines": {"conversation_id": ID},
    "message_keys": {"message_id": ID, "kek_id": KEY_ID, "period_key_id": KEY_ID},
    "period_keys": {"key_id": KEY_ID, "kek_id": KEY_ID},
    "attachments": {"attachment_id": ID, "message_id": ID, "kek_id": KEY_ID},
    "attachment_segments": {"attachment_id": ID},
    "verification_reports": {"message_id": ID},
    "search_tags": {"conversation_id": ID},
    "secret_keys": {"kek_id": KEY_ID},
    "outbox": {"message_id": ID},
    "receipts": {"message_id": ID, "receipt_message_id": ID},
    "late_answers": {"message_id": ID, "conversation_id": ID},
    "resends": {"message_id": ID, "original_id": ID, "conversation_id": ID},
    "originals": {"message_id": ID, "conversation_id": ID},
    "legal_holds": {"conversation_id": ID},
    "tombstones": {"message_id": ID, "conversation_id": ID, "purge_run_id": ID},
    "disclosures": {
        "disclosure_id": ID,
        "message_id": ID,
        "conversation_id": ID,
        "consent_request_id": ID,
    },
    "purge_reports": {"run_id": ID},
}


def _collate(collation: str, tables: Sequence[str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite's BINARY collation is byte order already
    for table in tables:
        # Names from the constant above, not from input.
        changes = ", ".join(
            f'ALTER COLUMN {column} TYPE varchar({length}) COLLATE "{collation}"'
            for column, length in COLUMNS[table].items()
        )
        op.execute(f"ALTER TABLE {table} {changes}")


def upgrade() -> None:
    _collate("C", list(COLUMNS))


def downgrade() -> None:
    _collate("default", list(reversed(COLUMNS)))

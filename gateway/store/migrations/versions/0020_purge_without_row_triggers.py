"""Drop the foreign keys on the rows the purge deletes itself: their per-row triggers cost most.

PostgreSQL runs a foreign key's action or check as one query per deleted parent row and
referencing table, whatever the statement; ``ON DELETE CASCADE``, ``RESTRICT`` and ``NO
ACTION`` all do (``NO ACTION`` two). Purging 1 M messages ran about 8 M of them (half the
server's CPU at 100 k, measured by dropping them) although the purge had already deleted
every referencing row itself, set-based (``gateway.store.purge``: ``MESSAGE_ROWS``,
``CONVERSATION_ROWS``). These references are kept by the code that writes the rows (a
message's key, reports, attachments and outbox rows go in with it, in its transaction) and
deleted by the purge, which is the only code deleting messages, conversations, attachments
of a message and outbox rows; tests/store/test_store_purge_coverage.py fails when a table
holding a message's or conversation's rows is not purged.

Kept: ``messages.conversation_id`` (a message without its conversation would escape the
retention scan, which joins them; one check per purged conversation), the tombstones' and
reports' ``purge_run_id``, ``api_tokens.user_id``.

On SQLite each table is copied (batch mode); referencing tables before the tables they
reference, which SQLite cannot copy while a foreign key points at them.

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROPPED = (
    # (table, column, referenced table, referenced column), referencing tables first.
    ("attachment_segments", "attachment_id", "attachments", "attachment_id"),
    ("delivery_attempts", "outbox_id", "outbox", "id"),
    ("message_keys", "message_id", "messages", "message_id"),
    ("verification_reports", "message_id", "messages", "message_id"),
    ("attachments", "message_id", "messages", "message_id"),
    ("outbox", "message_id", "messages", "message_id"),
    ("conversation_machines", "conversation_id", "conversations", "conversation_id"),
    ("search_tags", "conversation_id", "conversations", "conversation_id"),
    ("late_answers", "conversation_id", "conversations", "conversation_id"),
    ("resends", "conversation_id", "conversations", "conversation_id"),
    ("originals", "conversation_id", "conversations", "conversation_id"),
)


def _name(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def upgrade() -> None:
    for table, column, referred, _ in DROPPED:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(_name(table, column, referred), type_="foreignkey")


def downgrade() -> None:
    for table, column, referred, referred_column in reversed(DROPPED):
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(
                _name(table, column, referred),
                referred,
                [column],
                [referred_column],
                ondelete="CASCADE",
            )

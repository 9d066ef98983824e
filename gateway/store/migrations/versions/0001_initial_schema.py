"""Initial schema: messages, keys, outbox, conversations, purge, audit, users, tokens.

Frozen: later changes go into new revisions, never here. Column types are written out
(``DateTime(timezone=True)`` is what ``UtcDateTime`` stores) so this file does not change
when the application's table module does.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 18:17:53.790893

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("subjects", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_events")),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "conversations",
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("agreement", sa.String(length=64), nullable=False),
        sa.Column("requesting_party", sa.String(length=64), nullable=False),
        sa.Column("requested_party", sa.String(length=64), nullable=False),
        sa.Column("opening_kind", sa.String(length=64), nullable=False),
        sa.Column("last_kind", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("confidential", sa.Boolean(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("proceeding_closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_conversations")),
    )
    op.create_index(
        "ix_conversations_agreement_page",
        "conversations",
        ["agreement", "opened_at", "conversation_id", "state"],
        unique=False,
    )
    op.create_index(
        "ix_conversations_confidential_page",
        "conversations",
        ["confidential", "opened_at", "conversation_id", "state"],
        unique=False,
    )
    op.create_index(
        "ix_conversations_deadline",
        "conversations",
        ["deadline", "opened_at", "conversation_id", "state"],
        unique=False,
    )
    op.create_index(
        "ix_conversations_kind_page",
        "conversations",
        ["opening_kind", "opened_at", "conversation_id", "state"],
        unique=False,
    )
    op.create_index(
        "ix_conversations_page", "conversations", ["opened_at", "conversation_id"], unique=False
    )
    op.create_index(
        "ix_conversations_requested_page",
        "conversations",
        ["requested_party", "opened_at", "conversation_id", "state"],
        unique=False,
    )
    op.create_index(
        "ix_conversations_requesting_page",
        "conversations",
        ["requesting_party", "opened_at", "conversation_id", "state"],
        unique=False,
    )
    op.create_index(
        "ix_conversations_state_page",
        "conversations",
        ["state", "opened_at", "conversation_id"],
        unique=False,
    )

    op.create_table(
        "legal_holds",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("placed_by", sa.String(length=64), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_by", sa.String(length=64), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_holds")),
    )
    op.create_index(
        "ix_legal_holds_conversation",
        "legal_holds",
        ["conversation_id", "released_at"],
        unique=False,
    )

    op.create_table(
        "purge_runs",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("purged", sa.Integer(), server_default="0", nullable=False),
        sa.Column("held", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_purge_runs")),
    )
    op.create_table(
        "receipts",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("receipt_message_id", sa.String(length=36), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("outcome IN ('accepted', 'rejected')", name=op.f("ck_receipts_outcome")),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_receipts")),
        sa.UniqueConstraint("receipt_message_id", name=op.f("uq_receipts_receipt_message_id")),
    )
    op.create_table(
        "secret_keys",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kek_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_secret_keys")),
    )
    op.create_table(
        "users",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("roles", sa.String(length=255), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "api_tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("scopes", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "debtor_tags",
        sa.Column("tag", sa.LargeBinary(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.conversation_id"],
            name=op.f("fk_debtor_tags_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tag", "conversation_id", name=op.f("pk_debtor_tags")),
    )
    op.create_index("ix_debtor_tags_conversation", "debtor_tags", ["conversation_id"], unique=False)

    op.create_table(
        "messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("in_reply_to", sa.String(length=36), nullable=True),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("agreement", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confidential", sa.Boolean(), nullable=False),
        sa.Column("document_sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("document_size", sa.Integer(), nullable=False),
        sa.Column("payload_nonce", sa.LargeBinary(length=12), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("direction IN ('in', 'out')", name=op.f("ck_messages_direction")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.conversation_id"],
            name=op.f("fk_messages_conversation_id_conversations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("message_id", name=op.f("uq_messages_message_id")),
    )
    op.create_index(
        "ix_messages_conversation", "messages", ["conversation_id", "created", "id"], unique=False
    )
    op.create_index("ix_messages_retention", "messages", ["stored_at", "id"], unique=False)

    op.create_table(
        "tombstones",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("agreement", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document_sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("purge_run_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["purge_run_id"],
            ["purge_runs.run_id"],
            name=op.f("fk_tombstones_purge_run_id_purge_runs"),
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_tombstones")),
    )
    op.create_index("ix_tombstones_conversation", "tombstones", ["conversation_id"], unique=False)
    op.create_index("ix_tombstones_run", "tombstones", ["purge_run_id"], unique=False)

    op.create_table(
        "attachments",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(length=12), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.message_id"],
            name=op.f("fk_attachments_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "ordinal", name=op.f("pk_attachments")),
    )
    op.create_table(
        "message_keys",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("kek_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped_dek", sa.LargeBinary(length=64), nullable=False),
        sa.Column("wrapped_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.message_id"],
            name=op.f("fk_message_keys_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_message_keys")),
    )
    op.create_index("ix_message_keys_kek", "message_keys", ["kek_id", "message_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'delivered', 'failed')", name=op.f("ck_outbox_state")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.message_id"],
            name=op.f("fk_outbox_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint(
            "message_id", "destination", name=op.f("uq_outbox_message_id_destination")
        ),
    )
    op.create_index("ix_outbox_due", "outbox", ["state", "next_attempt_at", "id"], unique=False)

    op.create_table(
        "delivery_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_delivery_attempts_outbox_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
        sa.UniqueConstraint(
            "outbox_id", "attempt", name=op.f("uq_delivery_attempts_outbox_id_attempt")
        ),
    )
    # The audit chain's head: seq 0 and the all-zero genesis hash. Appends lock this row.
    op.bulk_insert(
        sa.table("audit_head", sa.column("id"), sa.column("seq"), sa.column("hash")),
        [{"id": 1, "seq": 0, "hash": bytes(32)}],
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("delivery_attempts")
    op.drop_index("ix_outbox_due", table_name="outbox")

    op.drop_table("outbox")
    op.drop_index("ix_message_keys_kek", table_name="message_keys")

    op.drop_table("message_keys")
    op.drop_table("attachments")
    op.drop_index("ix_tombstones_run", table_name="tombstones")
    op.drop_index("ix_tombstones_conversation", table_name="tombstones")

    op.drop_table("tombstones")
    op.drop_index("ix_messages_retention", table_name="messages")
    op.drop_index("ix_messages_conversation", table_name="messages")

    op.drop_table("messages")
    op.drop_index("ix_debtor_tags_conversation", table_name="debtor_tags")

    op.drop_table("debtor_tags")
    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("secret_keys")
    op.drop_table("receipts")
    op.drop_table("purge_runs")
    op.drop_index("ix_legal_holds_conversation", table_name="legal_holds")

    op.drop_table("legal_holds")
    op.drop_index("ix_conversations_state_page", table_name="conversations")
    op.drop_index("ix_conversations_requesting_page", table_name="conversations")
    op.drop_index("ix_conversations_requested_page", table_name="conversations")
    op.drop_index("ix_conversations_page", table_name="conversations")
    op.drop_index("ix_conversations_kind_page", table_name="conversations")
    op.drop_index("ix_conversations_deadline", table_name="conversations")
    op.drop_index("ix_conversations_confidential_page", table_name="conversations")
    op.drop_index("ix_conversations_agreement_page", table_name="conversations")

    op.drop_table("conversations")
    op.drop_table("audit_head")
    op.drop_table("audit_events")

"""Index the two foreign keys without one: resends by conversation, API tokens by user.

Deleting a referenced row makes the database find the rows of every table that references it
(``ON DELETE CASCADE`` or a check), once per deleted row. ``resends.conversation_id`` had no
index, so each conversation a purge deleted read all of ``resends``: a purge of N conversations
over R resends cost N × R. ``api_tokens.user_id`` the same for deleting users (a small table).
Every other foreign key leads an index already (tests/store/test_store_schema_indexes.py).

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_resends_conversation", "resends", ["conversation_id"])
    op.create_index("ix_api_tokens_user", "api_tokens", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_api_tokens_user", table_name="api_tokens")
    op.drop_index("ix_resends_conversation", table_name="resends")

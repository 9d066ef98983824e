"""Resumable uploads: an upload may declare its whole length first and come in several parts.

``attachments.upload_length``: the length a resumable upload declared when it was created
(``POST /api/v1/attachments`` with ``Upload-Length``); NULL for an upload sent in one request
and for a part received from a peer. Its bytes so far are its stored segments, all full and
none final; the part that reaches the declared length seals the final one
(docs/attachments.md, "Resumable uploads").

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("attachments", sa.Column("upload_length", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.drop_column("upload_length")

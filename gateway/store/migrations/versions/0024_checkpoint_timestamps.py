"""A signed audit checkpoint may carry an RFC 3161 timestamp over its seal signature.

``audit_checkpoints.timestamp``: the TSA's token (DER) over the SHA-256 of the checkpoint's
signature, fetched after the checkpoint is stored when ``[tsa] url`` is set; NULL without a
TSA or when it did not answer. It proves the checkpoint existed at the TSA's time, which its
own statement (the seal holder's word) cannot once that seal is revoked for key compromise
(docs/key-rotation.md).

Revision ID: 0024
Revises: 0023
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | Sequence[str] | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.add_column(sa.Column("timestamp", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.drop_column("timestamp")

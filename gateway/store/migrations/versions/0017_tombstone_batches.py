"""Tombstones record the purge batch whose audit event binds them.

Each purge batch is bound into the audit chain by one ``purge.batch`` event (its count and a
hash over its tombstones); ``purge_batch`` finds a batch's rows again for ``audit verify``.
Rows written before have none (their chunked or per-message events list them by id). The
index on the run is widened to (run, batch): it serves both lookups.

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tombstones", sa.Column("purge_batch", sa.Integer(), nullable=True))
    op.drop_index("ix_tombstones_run", table_name="tombstones")
    op.create_index("ix_tombstones_run_batch", "tombstones", ["purge_run_id", "purge_batch"])


def downgrade() -> None:
    op.drop_index("ix_tombstones_run_batch", table_name="tombstones")
    op.create_index("ix_tombstones_run", "tombstones", ["purge_run_id"])
    with op.batch_alter_table("tombstones") as batch:
        batch.drop_column("purge_batch")

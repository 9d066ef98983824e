"""Tombstones and purge runs record the hash of the retention policy (set) they applied.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tombstones") as batch:
        batch.add_column(sa.Column("policy_sha256", sa.String(length=64), nullable=True))
    with op.batch_alter_table("purge_runs") as batch:
        batch.add_column(sa.Column("policy_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("purge_runs") as batch:
        batch.drop_column("policy_sha256")
    with op.batch_alter_table("tombstones") as batch:
        batch.drop_column("policy_sha256")

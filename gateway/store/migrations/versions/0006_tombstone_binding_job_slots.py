"""Tombstones bound to the retention policy that expired them; scheduled job slots run once.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tombstones") as batch:
        batch.add_column(sa.Column("policy_sha256", sa.String(length=64), nullable=True))
    with op.batch_alter_table("purge_runs") as batch:
        batch.add_column(sa.Column("policy_sha256", sa.String(length=64), nullable=True))
    op.create_table(
        "job_slots",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=64), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("job", "slot", name=op.f("pk_job_slots")),
    )


def downgrade() -> None:
    op.drop_table("job_slots")
    with op.batch_alter_table("purge_runs") as batch:
        batch.drop_column("policy_sha256")
    with op.batch_alter_table("tombstones") as batch:
        batch.drop_column("policy_sha256")

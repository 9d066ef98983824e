"""Verification reports recorded at receipt and at each re-verification.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "verification_reports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("indication", sa.String(length=64), nullable=False),
        sa.Column("sub_indication", sa.String(length=64), nullable=True),
        sa.Column("report_nonce", sa.LargeBinary(length=12), nullable=False),
        sa.Column("report", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "purpose IN ('receipt', 'reverify')", name=op.f("ck_verification_reports_purpose")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.message_id"],
            name=op.f("fk_verification_reports_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_reports")),
    )
    op.create_index(
        "ix_verification_reports_message",
        "verification_reports",
        ["message_id", "recorded_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_verification_reports_message", table_name="verification_reports")
    op.drop_table("verification_reports")

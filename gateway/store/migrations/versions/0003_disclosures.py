"""Disclosures of documents to others (CIS Art. 9.2–9.3; SC Art. 8.2): who, when, to whom.

The recipient and the purpose are sealed (AES-256-GCM under the store's disclosure key, wrapped
by the KEK); only a keyed HMAC of the recipient's name is in clear, for lookups.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "disclosures",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("disclosure_id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("agreement", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("article", sa.String(length=64), nullable=False),
        sa.Column("consent_request_id", sa.String(length=36), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("disclosed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document_sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("recipient_tag", sa.LargeBinary(length=32), nullable=False),
        sa.Column("sealed_nonce", sa.LargeBinary(length=12), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "category IN ('creditor', 'debtor', 'third-party')",
            name=op.f("ck_disclosures_category"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosures")),
        sa.UniqueConstraint("disclosure_id", name=op.f("uq_disclosures_disclosure_id")),
    )
    op.create_index(
        "ix_disclosures_message", "disclosures", ["message_id", "disclosed_at"], unique=False
    )
    op.create_index(
        "ix_disclosures_recipient", "disclosures", ["recipient_tag", "disclosed_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_disclosures_recipient", table_name="disclosures")
    op.drop_index("ix_disclosures_message", table_name="disclosures")
    op.drop_table("disclosures")

"""Resumable deliveries: a part of a peer's delivery that broke off is held for the retry.

``attachments.held_for``: the body id of the peer whose delivery brought a part that the node
holds for that delivery's retry (NULL for every other attachment); ``claimed_sha256`` is the
part's SHA-256 as the peer declared it (``Repr-Digest``) before its bytes came — what the retry
names the part by; ``held_since``: when its delivery broke off (NULL while the part streams
in, and again while a retry takes it on: only a part held since a break is offered to a retry
or trimmed). All three are cleared when the part is linked to its message
(docs/attachments.md, "Resumable deliveries").

Revision ID: 0023
Revises: 0022
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | Sequence[str] | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.add_column(sa.Column("held_for", sa.String(64), nullable=True))
        batch.add_column(sa.Column("claimed_sha256", sa.LargeBinary(32), nullable=True))
        batch.add_column(sa.Column("held_since", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_attachments_held", ["held_for", "claimed_sha256"])


def downgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.drop_index("ix_attachments_held")
        batch.drop_column("held_since")
        batch.drop_column("claimed_sha256")
        batch.drop_column("held_for")

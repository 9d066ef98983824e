"""Conversations say whether their request was urgent (SC Art. 5.2).

Lists and the reminder job read it; the conversation's machine already recorded it, and the
column is filled from there.

Revision ID: 0011
Revises: 0010
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAGE = 1000


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite takes one with a constant default): a batch would copy the
    # table, which the foreign keys pointing at conversations refuse.
    op.add_column(
        "conversations",
        sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    machines = sa.table(
        "conversation_machines", sa.column("conversation_id", sa.String), sa.column("machine")
    )
    conversations = sa.table(
        "conversations", sa.column("conversation_id", sa.String), sa.column("urgent", sa.Boolean)
    )
    bind = op.get_bind()
    after = ""
    while True:
        rows = bind.execute(
            sa.select(machines.c.conversation_id, machines.c.machine)
            .where(machines.c.conversation_id > after)
            .order_by(machines.c.conversation_id)
            .limit(PAGE)
        ).all()
        urgent = [r.conversation_id for r in rows if json.loads(r.machine).get("urgent") is True]
        if urgent:
            bind.execute(
                conversations.update()
                .where(conversations.c.conversation_id.in_(urgent))
                .values(urgent=True)
            )
        if len(rows) < PAGE:
            return
        after = rows[-1].conversation_id


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("urgent")

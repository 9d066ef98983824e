"""A purge run's signed report may carry an RFC 3161 timestamp over its seal signature.

``purge_reports.timestamp``: the TSA's token (DER) over the SHA-256 of the report's signature,
fetched after the run's last transaction when ``[tsa] url`` is set; NULL without a TSA or when
it did not answer. As for audit checkpoints (0024), it proves the report existed at the TSA's
time — which its own ``finished_at``, the seal holder's word, cannot once that seal is revoked
for key compromise — and any stack checks it (``openssl ts -verify``).

Revision ID: 0025
Revises: 0024
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | Sequence[str] | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("purge_reports") as batch:
        batch.add_column(sa.Column("timestamp", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("purge_reports") as batch:
        batch.drop_column("timestamp")

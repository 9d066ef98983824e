"""PostgreSQL keeps attachment segments out of line without trying to compress them.

A segment is AES-GCM ciphertext: it never compresses. With the default ``EXTENDED`` storage
PostgreSQL tries pglz on every 64 KiB value before moving it out of line; ``EXTERNAL`` moves
it out of line at once (docs/attachments.md, "Measured"). Rows already stored stay as they
are and read the same way. SQLite stores blobs as they come: nothing to do there.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _storage(kind: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE attachment_segments ALTER COLUMN ciphertext SET STORAGE {kind}")


def upgrade() -> None:
    _storage("EXTERNAL")


def downgrade() -> None:
    _storage("EXTENDED")

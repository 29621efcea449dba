"""keyed items: a memory a client names by namespace and key, found by a keyed hash

The names themselves are sealed in the payload; the row holds only their HMAC under the
user's lookup secret (keys/lookup.py), unique per user.

Revision ID: 9b3e7c1d5a60
Revises: c1d4e6f8a203
Create Date: 2026-12-01 21:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b3e7c1d5a60"
down_revision: str | None = "c1d4e6f8a203"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("memories") as batch:
        batch.add_column(sa.Column("lookup", sa.String(length=64), nullable=True))
    op.create_index("ux_memories_user_lookup", "memories", ["user_id", "lookup"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_memories_user_lookup", table_name="memories")
    with op.batch_alter_table("memories") as batch:
        batch.drop_column("lookup")

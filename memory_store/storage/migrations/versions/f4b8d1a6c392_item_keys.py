"""item keys: each memory version's own key, the issue of each user's data key, and the
erasures answered (for their status)

Revision ID: f4b8d1a6c392
Revises: d3a9c5e7b214
Create Date: 2026-12-01 18:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from memory_store.storage.engines import UTCDateTime

revision: str = "f4b8d1a6c392"
down_revision: str | None = "d3a9c5e7b214"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("issue", sa.Integer(), nullable=False, server_default="1"))
    op.create_table(
        "item_keys",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("memory_id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "memory_id", "item_id"),
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("kek_version", sa.Integer(), nullable=False),
        sa.Column("requested_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("erasures")
    op.drop_table("item_keys")
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.drop_column("issue")

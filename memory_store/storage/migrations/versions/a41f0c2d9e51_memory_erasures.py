"""memory erasures: forgotten users' rows still being deleted

Revision ID: a41f0c2d9e51
Revises: e9340cf4b3c3
Create Date: 2026-11-26 05:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from memory_store.storage.engines import UTCDateTime

revision: str = "a41f0c2d9e51"
down_revision: str | None = "e9340cf4b3c3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "memory_erasures",
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("key_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("requested_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "key_id"),
    )


def downgrade() -> None:
    op.drop_table("memory_erasures")

"""kek epochs: when each KEK version (epoch) was made, for the rotation schedule

Revision ID: d3a9c5e7b214
Revises: c27ebd2e641b
Create Date: 2026-12-01 17:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from memory_store.storage.engines import UTCDateTime

revision: str = "d3a9c5e7b214"
down_revision: str | None = "c27ebd2e641b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kek_epochs",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )


def downgrade() -> None:
    op.drop_table("kek_epochs")

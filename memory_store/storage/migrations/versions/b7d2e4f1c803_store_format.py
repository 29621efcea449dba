"""store format: which content format the memories are encrypted in

A store made before content format 2 (ciphertexts bound to their policy attributes) starts
at 1: the service's start (or `memory-store db upgrade`) re-encrypts it, which needs the keys,
so Alembic only records where it stands.

Revision ID: b7d2e4f1c803
Revises: a41f0c2d9e51
Create Date: 2026-12-01 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7d2e4f1c803"
down_revision: str | None = "a41f0c2d9e51"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    store_format = op.create_table(
        "store_format",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("content_format", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    connection = op.get_bind()
    held = connection.execute(sa.text("SELECT 1 FROM memories LIMIT 1")).first() or (
        connection.execute(sa.text("SELECT 1 FROM memory_versions LIMIT 1")).first()
    )
    op.bulk_insert(store_format, [{"id": 1, "content_format": 1 if held else 2}])


def downgrade() -> None:
    op.drop_table("store_format")

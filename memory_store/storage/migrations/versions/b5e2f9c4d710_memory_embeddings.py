"""memory embeddings: each memory version's recall vector, sealed under its item key

Revision ID: b5e2f9c4d710
Revises: 9b3e7c1d5a60
Create Date: 2026-12-01 21:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "b5e2f9c4d710"
down_revision: str | None = "9b3e7c1d5a60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "memory_embeddings",
        sa.Column("memory_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("memory_id", "version", "model"),
    )
    op.create_index(
        "ix_memory_embeddings_user", "memory_embeddings", ["user_id", "model"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_memory_embeddings_user", table_name="memory_embeddings")
    op.drop_table("memory_embeddings")

"""item key format: content format 3, each memory version under its own item key

A store holding memories stays at the format it is in (1 or 2): the service's start (or
`memory-store db upgrade`) re-encrypts it under item keys, which needs the keys, so Alembic
only records where it stands. An empty store starts at 3.

Revision ID: a8c3e5f7d901
Revises: b7d2e4f1c803
Create Date: 2026-12-01 18:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a8c3e5f7d901"
down_revision: str | None = "b7d2e4f1c803"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE store_format SET content_format = 3 WHERE id = 1 "
            "AND NOT EXISTS (SELECT 1 FROM memories) "
            "AND NOT EXISTS (SELECT 1 FROM memory_versions)"
        )
    )


def downgrade() -> None:
    # Format-3 ciphertexts need their item keys: an older release cannot read them anyway.
    pass

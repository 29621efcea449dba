"""audit merkle tree: the head keeps the tree's frontier; checkpoints are signed notes

The head row gains the right edge of the RFC 6962 Merkle tree over the records (audit.Frontier,
hex), computed here once from the records' chain hashes, so that the writer extends it with
each batch and a checkpoint's root costs O(log n). Checkpoints gain their signed note (C2SP
tlog-checkpoint) and their tree's frontier; the legacy v1 checkpoints already stored keep
neither and still verify.

A trail whose records 1..head are not all there (tampered with before this upgrade) gets no
frontier: its chain goes on, but no checkpoint is signed over it, and `memory-store audit
verify` says where it breaks.

Revision ID: 5d1e8b3f9a27
Revises: cef8a1e12b7b
Create Date: 2026-12-01 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audit.merkle import Frontier

revision: str = "5d1e8b3f9a27"
down_revision: str | None = "cef8a1e12b7b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 10_000


def upgrade() -> None:
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("frontier", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("frontier", sa.Text(), nullable=True))
    connection = op.get_bind()
    head = connection.execute(sa.text("SELECT seq FROM audit_head WHERE id = 1")).first()
    if head is None or not head[0]:
        return
    frontier = _frontier(connection, int(head[0]))
    if frontier is not None:
        connection.execute(
            sa.text("UPDATE audit_head SET frontier = :frontier WHERE id = 1"),
            {"frontier": frontier.encode()},
        )


def _frontier(connection: sa.Connection, head: int) -> Frontier | None:
    """The tree over records 1..head, or None if one of them is missing or malformed."""
    frontier = Frontier()
    statement = sa.text(
        "SELECT seq, hash FROM audit_records WHERE seq > :after AND seq <= :head "
        "ORDER BY seq LIMIT :batch"
    )
    while frontier.size < head:
        rows = connection.execute(
            statement, {"after": frontier.size, "head": head, "batch": _BATCH}
        ).all()
        if not rows:
            return None
        for seq, chain_hash in rows:
            try:
                data = bytes.fromhex(chain_hash)
            except (TypeError, ValueError):
                return None
            if seq != frontier.size + 1 or len(data) != 32:
                return None
            frontier.append(data)
    return frontier


def downgrade() -> None:
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_column("frontier")
        batch_op.drop_column("note")
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.drop_column("frontier")

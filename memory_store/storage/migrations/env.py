"""Alembic environment: the connection and the branch come from memory_store.storage.migrate."""

from __future__ import annotations

from alembic import context

from memory_store.storage.migrate import target_metadata

connection = context.config.attributes["connection"]
branch = context.config.attributes["branch"]

context.configure(
    connection=connection,
    target_metadata=target_metadata(branch),
    version_table=f"alembic_version_{branch}",
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

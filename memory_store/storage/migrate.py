"""Who owns the schema: Alembic. `upgrade()` brings each of the three databases (memories, key
store, audit trail) to the head of its migration branch; `memory-store db upgrade` runs it, and
so does the server's start unless MEMORY_STORE_MIGRATE_ON_START=false. Other commands only
create a brand-new store (`create_new`): they never migrate a database a server is using.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect, text
from sqlmodel import SQLModel

from memory_store.storage import tables
from memory_store.storage.tables import keystore_metadata

MIGRATIONS = Path(__file__).parent / "migrations"
BRANCHES = ("memory", "keystore", "audit")
AUDIT_TABLES = (
    tables.AuditRow.__table__,  # type: ignore[attr-defined]
    tables.AuditHead.__table__,  # type: ignore[attr-defined]
    tables.AuditCheckpointRow.__table__,  # type: ignore[attr-defined]
)


def target_metadata(branch: str) -> MetaData:
    """The tables one database holds."""
    if branch == "keystore":
        return keystore_metadata
    metadata = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        if (table in AUDIT_TABLES) == (branch == "audit"):
            table.to_metadata(metadata)
    return metadata


def _config(engine_connection: object, branch: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = engine_connection
    config.attributes["branch"] = branch
    return config


@functools.cache
def head(branch: str) -> str:
    script = ScriptDirectory.from_config(_config(None, branch))
    revision = script.get_revision(f"{branch}@head")
    assert revision is not None
    return str(revision.revision)


def current(engine: Engine, branch: str) -> str | None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": f"alembic_version_{branch}"}
        )
        return context.get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """One migrator at a time per database, so that processes starting together do not
    both create the same tables: a PostgreSQL advisory lock, or a lock file beside SQLite."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(7274633)"))
            yield conn
        return
    database = engine.url.database
    lock_path = Path(f"{database}.migrate-lock") if database and database != ":memory:" else None
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600) if lock_path else None
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        with engine.begin() as conn:
            yield conn
    finally:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def upgrade(engine: Engine, branch: str, revision: str = "head") -> None:
    """Bring one database to `revision` of its branch (default: the head). A database made
    before migrations existed (tables, no version) is adopted at the first revision."""
    with _migration_lock(engine) as conn:
        config = _config(conn, branch)
        context = MigrationContext.configure(
            conn, opts={"version_table": f"alembic_version_{branch}"}
        )
        known = set(inspect(conn).get_table_names())
        if context.get_current_revision() is None and known & set(target_metadata(branch).tables):
            command.stamp(config, first(branch))
        command.upgrade(config, f"{branch}@{revision}")


def upgrade_all(engines: dict[str, Engine]) -> None:
    for branch in BRANCHES:
        if current(engines[branch], branch) != head(branch):  # the usual start: nothing to do
            upgrade(engines[branch], branch)


def create_new(engines: dict[str, Engine]) -> None:
    """Create the schema of each database that has none at all (a brand-new store); leave
    every other database as it is, current or not."""
    for branch in BRANCHES:
        engine = engines[branch]
        if current(engine, branch) is None and not _has_tables(engine, branch):
            upgrade(engine, branch)


def has_schema(engine: Engine, branch: str) -> bool:
    """Whether the database holds this branch's schema, at any revision."""
    return current(engine, branch) is not None or _has_tables(engine, branch)


def _has_tables(engine: Engine, branch: str) -> bool:
    with engine.connect() as conn:
        return bool(set(inspect(conn).get_table_names()) & set(target_metadata(branch).tables))


def check_current(engines: dict[str, Engine]) -> None:
    """Raise SchemaOutOfDate unless every database is at its branch's head."""
    stale = [branch for branch in BRANCHES if current(engines[branch], branch) != head(branch)]
    if stale:
        raise SchemaOutOfDate(
            f"the {', '.join(stale)} database(s) are not at the current schema: "
            "run `memory-store db upgrade`"
        )


class SchemaOutOfDate(Exception):
    """The databases need `memory-store db upgrade` before the service can start."""


@functools.cache
def first(branch: str) -> str:
    script = ScriptDirectory.from_config(_config(None, branch))
    revisions = list(script.walk_revisions(f"{branch}@base", f"{branch}@head"))
    return str(revisions[-1].revision)

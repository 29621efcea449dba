"""Whether a store is there, and what a database error that no retry cures says: for the
`memory-store` command, which must neither create a store by looking for one nor end in a
driver's traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from memory_store.storage import migrate

# A database that stayed locked past the busy timeout, or could not be reached: raised by the
# raw driver (RawDB) or through SQLAlchemy (Alembic, the engines).
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    sqlite3.OperationalError,
    psycopg.OperationalError,
)


def store_exists(database_url: str) -> bool:
    """Whether the memory database is there with a schema (any revision, or tables made before
    migrations existed). A SQLite file that is missing is not created by looking; an empty
    database is no store."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and not (
        url.database and Path(str(url.database)).is_file()
    ):
        return False
    engine = create_engine(url, hide_parameters=True, poolclass=NullPool)
    try:
        return migrate.has_schema(engine, "memory")
    finally:
        engine.dispose()


def describe(error: Exception) -> str:
    """One line for the operator. A driver's message can quote a statement's values: only
    whether the database was busy, or the error's kind, is said."""
    cause = getattr(error, "orig", None) or error
    if "locked" in str(cause).lower():
        return "the database stayed busy past the busy timeout; try again"
    return f"cannot use the database ({type(cause).__name__})"

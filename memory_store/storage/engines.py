"""Engines. SQLite runs in WAL mode with synchronous=FULL and secure_delete."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.pool import QueuePool
from sqlalchemy.types import TypeDecorator
from sqlmodel import create_engine

from memory_store.config import SERVER_POOL_SIZE, SQLITE_POOL_SIZE

# How long a SQLite connection waits for another's lock before it reports "database is locked".
BUSY_TIMEOUT_SECONDS = 30


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC datetimes; always hands back timezone-aware UTC (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_pool_size: ContextVar[int | None] = ContextVar("memory_store_pool_size", default=None)


@contextlib.contextmanager
def default_pool_size(size: int) -> Iterator[None]:
    """Engines made inside this block (without an explicit pool_size) keep `size` connections:
    `with default_pool_size(settings.resolved_db_pool_size()): open_runtime(settings)`."""
    token = _pool_size.set(size)
    try:
        yield
    finally:
        _pool_size.reset(token)


def engine_pool_size(engine: Engine) -> int | None:
    """How many connections `engine` keeps open; None for a pool without a fixed size."""
    pool = engine.pool
    return pool.size() if isinstance(pool, QueuePool) else None


# SQLAlchemy's default overflow: connections opened beyond the pool only when more are
# checked out at once (the audit writer thread, the sweeper, a nested checkout), closed again
# on return.
MAX_OVERFLOW = 10


def make_engine(
    url: str,
    *,
    synchronous: str = "FULL",
    immediate: bool = False,
    pool_size: int | None = None,
) -> Engine:
    """An engine for `url`; for SQLite, the parent folder is created (mode 0700) if missing.
    `immediate` makes every SQLite transaction BEGIN IMMEDIATE: it takes the write lock at
    the start, so a read-then-write transaction (the audit chain's) never deadlocks.

    `pool_size` connections stay open (default: SQLITE_POOL_SIZE, or SERVER_POOL_SIZE on
    PostgreSQL). The server caps its request threads at the same number (app.py), so under
    load every request finds an open connection instead of opening one (for SQLite, five
    PRAGMAs each) and closing it again."""
    parsed = make_url(url)
    pool_size = pool_size or _pool_size.get()
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url,
            hide_parameters=True,  # a failed statement's error would quote its row values
            pool_pre_ping=True,
            pool_size=pool_size or SERVER_POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
        )
    if parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created private before SQLite opens it; its -wal and -shm files inherit the mode.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        _use_wal(path)
    engine = create_engine(
        url,
        hide_parameters=True,  # a failed statement's error would quote its row values
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_SECONDS},
        pool_size=pool_size or SQLITE_POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
    )
    if immediate:

        @event.listens_for(engine, "connect")
        def _manual_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # pysqlite: we emit BEGIN ourselves

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # No journal_mode here: WAL is a property of the file, set once by _use_wal.
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Freed pages are overwritten with zeros, so deleted ciphertexts do not linger.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    return engine


def _use_wal(path: Path) -> None:
    """Put the database file in WAL mode, once (the file keeps it, for every connection).

    Switching the mode needs the write lock, and SQLite answers "database is locked" at once,
    without its busy handler, when another process holds it: so this waits for the lock
    within the busy timeout, as any other statement would, rather than fail a command
    started while a server writes."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL").fetchone()
                return
            except sqlite3.OperationalError as exc:
                locked = "locked" in str(exc) or "busy" in str(exc)
                if not locked or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
    finally:
        conn.close()


def truncate_wal(engine: Engine) -> None:
    """Move the WAL into the database and empty it, so deleted pages do not linger there.
    SQLite only; elsewhere the database's own vacuuming applies."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))

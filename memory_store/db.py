"""Engines and sessions. SQLite runs in WAL mode with synchronous=FULL and secure_delete."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, create_engine


def session(engine: Engine) -> Session:
    """A session whose objects stay readable after commit (they are handed to callers)."""
    return Session(engine, expire_on_commit=False)


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


def make_engine(url: str, *, synchronous: str = "FULL", immediate: bool = False) -> Engine:
    """An engine for `url`; for SQLite, the parent folder is created (mode 0700) if missing.
    `immediate` makes every SQLite transaction BEGIN IMMEDIATE: it takes the write lock at
    the start, so a read-then-write transaction (the audit chain's) never deadlocks."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created private before SQLite opens it; its -wal and -shm files inherit the mode.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8
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
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Freed pages are overwritten with zeros, so deleted ciphertexts do not linger.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    return engine

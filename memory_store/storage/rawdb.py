"""Plain DB-API statements: how every module of storage/ talks to its database.

The ORM builds, caches and materialises objects at about 50x the cost of the SQL itself on
the request paths (benchmarks/HISTORY.md: 488 us against 10 us for one row). Here pooled
connections run fixed SQL strings and hand back tuples. The tables are declared once, in
tables.py, for Alembic; every read and write is SQL through this class (or, for the two
group-committing writers, on their own connection: group_commit.py).

SQL is written with `?` placeholders; PostgreSQL's driver gets `%s`. Times are stored as
SQLAlchemy stores them: naive UTC text on SQLite, timestamptz on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine

Params = Sequence[Any]


class _Held:
    """One thread's connection. Held only by that thread's local storage (and weakly by the
    registry), so when the thread ends, e.g. a worker thread the pool retires, its
    connection is closed with it instead of lingering until shutdown."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class _ThreadConnections:
    """SQLite: one connection per thread, kept open, instead of a pool checkout per statement
    (~25 us each, several per request). Taken from the engine's pool once and detached, so
    it has the engine's PRAGMAs; closed when its thread ends, or with the engine
    (`close_thread_connections`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._lock = threading.Lock()
        self._held: weakref.WeakSet[_Held] = weakref.WeakSet()

    def get(self) -> Any:
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or held.conn is None:
            proxied = self._engine.raw_connection()
            proxied.detach()
            held = self._local.held = _Held(proxied.dbapi_connection)
            with self._lock:
                self._held.add(held)
        return held.conn

    def close(self) -> None:
        with self._lock:
            held = list(self._held)
        for one in held:
            one.close()
        self._local = threading.local()


_per_engine: weakref.WeakKeyDictionary[Engine, _ThreadConnections] = weakref.WeakKeyDictionary()
_per_engine_lock = threading.Lock()


def close_thread_connections(engine: Engine) -> None:
    """Close the connections RawDB keeps per thread for `engine` (before disposing of it)."""
    with _per_engine_lock:
        connections = _per_engine.pop(engine, None)
    if connections is not None:
        connections.close()


class RawDB:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        # The driver's own IntegrityError (sqlite3's or psycopg's): a unique key was taken.
        self.integrity_error: type[Exception] = engine.dialect.loaded_dbapi.IntegrityError
        self._threads: _ThreadConnections | None = None
        if self.sqlite:
            with _per_engine_lock:
                self._threads = _per_engine.get(engine)
                if self._threads is None:
                    self._threads = _per_engine[engine] = _ThreadConnections(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def sql(self, statement: str) -> str:
        return statement if self.sqlite else _format_style(statement)

    def time(self, value: datetime) -> Any:
        """A UTC datetime as this database compares it."""
        if self.sqlite:
            return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    @staticmethod
    def read_time(value: Any) -> datetime:
        if isinstance(value, str):  # SQLite: naive UTC text ("+00:00" parses 5x faster
            return datetime.fromisoformat(value + "+00:00")  # than .replace(tzinfo=UTC))
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A DB-API connection: this thread's own on SQLite, a pooled one elsewhere. Whatever
        transaction the caller left open is rolled back when it is done with it."""
        if self._threads is not None:
            conn = self._threads.get()
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.rollback()
            return
        pooled = self._engine.raw_connection()
        try:
            yield pooled
        finally:
            pooled.close()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in one write transaction (SQLite: BEGIN IMMEDIATE, the write lock up
        front), committed when the block ends, rolled back if it raises. Statements go
        through `sql()` for the driver's parameter style."""
        with self.connection() as conn:
            cursor = conn.cursor()
            try:
                if self.sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                cursor.close()

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        """A connection for one statement that only reads. On PostgreSQL it runs in
        autocommit, its own transaction: one round trip, where BEGIN, the statement and the
        pool's ROLLBACK on return were three (a read went from ~550 to ~200 us on loopback,
        the pool's ping included). The same isolation: a single statement sees one snapshot
        either way."""
        with self.connection() as conn:
            if self.sqlite:
                yield conn
                return
            dbapi = conn.dbapi_connection
            dbapi.autocommit = True  # idle after the pool's checkout: allowed, no round trip
            try:
                yield conn
            finally:
                try:
                    dbapi.autocommit = False  # as every other user of the pool expects
                except Exception:  # broken meanwhile: it must not go back in autocommit
                    conn.invalidate()

    def one(self, statement: str, params: Params) -> tuple[Any, ...] | None:
        with self._reading() as conn:
            cursor = conn.cursor()
            cursor.execute(self.sql(statement), params)
            row = cursor.fetchone()
            cursor.close()
            return tuple(row) if row is not None else None

    def execute(self, statement: str, params: Params) -> int:
        """One statement in its own write transaction; how many rows it changed."""
        with self.transaction() as cursor:
            cursor.execute(self.sql(statement), params)
            return int(cursor.rowcount)

    def all(self, statement: str, params: Params) -> list[tuple[Any, ...]]:
        with self._reading() as conn:
            cursor = conn.cursor()
            cursor.execute(self.sql(statement), params)
            rows = cursor.fetchall()
            cursor.close()
            return [tuple(row) for row in rows]


@lru_cache(maxsize=256)
def _format_style(statement: str) -> str:
    return statement.replace("%", "%%").replace("?", "%s")

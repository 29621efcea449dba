"""Plain DB-API statements for the paths every request takes.

The ORM builds, caches and materialises objects at about 50x the cost of the SQL itself on
these paths (benchmarks/RESULTS.md: 488 us against 10 us for one row). Here the same pooled
connections run fixed SQL strings and hand back tuples. The schema stays the ORM's and
Alembic's; only the hottest reads and writes come through here.

SQL is written with `?` placeholders; PostgreSQL's driver gets `%s`. Times are stored as
SQLAlchemy stores them: naive UTC text on SQLite, timestamptz on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine

Params = Sequence[Any]


class RawDB:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.sqlite = engine.dialect.name == "sqlite"

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
        """A pooled DB-API connection; rolled back on the way back to the pool."""
        conn = self._engine.raw_connection()
        try:
            yield conn
        finally:
            conn.close()

    def one(self, statement: str, params: Params) -> tuple[Any, ...] | None:
        with self.connection() as conn:
            cursor = conn.cursor()
            cursor.execute(self.sql(statement), params)
            row = cursor.fetchone()
            cursor.close()
            return tuple(row) if row is not None else None

    def all(self, statement: str, params: Params) -> list[tuple[Any, ...]]:
        with self.connection() as conn:
            cursor = conn.cursor()
            cursor.execute(self.sql(statement), params)
            rows = cursor.fetchall()
            cursor.close()
            return [tuple(row) for row in rows]


@lru_cache(maxsize=256)
def _format_style(statement: str) -> str:
    return statement.replace("%", "%%").replace("?", "%s")

"""The storage floor: plain sqlite3, no ORM, no policy, no audit, no encryption.

Same durability as the service (WAL, synchronous=FULL), one row per committed transaction,
and the memories table's shape and index, so that the service's figures can be read as a
multiple of what the disk and SQLite alone allow on this machine, in the same run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

_SCHEMA = (
    "CREATE TABLE memories (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, "
    "category TEXT NOT NULL, ciphertext BLOB NOT NULL, created_at TEXT NOT NULL)",
    "CREATE INDEX ix_memories_user_created ON memories (user_id, created_at, id)",
)
Row = tuple[str, str, str, bytes, str]  # id, user_id, category, ciphertext, created_at


class SqliteFloor:
    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA:
            self._conn.execute(statement)

    def load(self, rows: Iterable[Row]) -> None:
        """Bulk set-up, in one transaction (not timed)."""
        self._conn.execute("BEGIN")
        self._conn.executemany("INSERT INTO memories VALUES (?, ?, ?, ?, ?)", rows)
        self._conn.execute("COMMIT")

    def insert(self, row: Row) -> None:
        """One row, one committed (fsynced) transaction."""
        self._conn.execute("BEGIN")
        self._conn.execute("INSERT INTO memories VALUES (?, ?, ?, ?, ?)", row)
        self._conn.execute("COMMIT")

    def get(self, user_id: str, memory_id: str) -> tuple[object, ...] | None:
        row: tuple[object, ...] | None = self._conn.execute(
            "SELECT * FROM memories WHERE user_id = ? AND id = ?", (user_id, memory_id)
        ).fetchone()
        return row

    def page(self, user_id: str, limit: int = 20) -> list[tuple[object, ...]]:
        """The newest `limit` rows of one user, by the index."""
        return self._conn.execute(
            "SELECT * FROM memories WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
            (user_id, limit),
        ).fetchall()

    def close(self) -> None:
        self._conn.close()

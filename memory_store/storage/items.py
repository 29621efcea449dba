"""The SQL of keyed items: memories found by their user and lookup hash (keys/lookup.py).
They are rows of `memories` like any other (read, edited, forgotten and swept as such); this
adds finding them, listing a user's, and an insert that never makes a second of one name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from memory_store.pending import Pending
from memory_store.storage.group_commit import GroupCommitter
from memory_store.storage.memories import (
    _INSERT,
    _MARKS,
    _MEMORY_NOT_ERASED,
    _MEMORY_TIMES,
    SELECT_MEMORIES,
    MemoryRow,
    memory_row,
    queue_job,
)
from memory_store.storage.rawdb import RawDB

# The insert, only while the user has room and no item of this lookup hash.
_INSERT_NEW_ITEM = (
    _INSERT + f"SELECT {_MARKS} WHERE ? > (SELECT count(*) FROM memories WHERE user_id = ?) "  # noqa: S608
    "AND NOT EXISTS (SELECT 1 FROM memories WHERE user_id = ? AND lookup = ?)"
)


class ItemRepository:
    def __init__(self, raw: RawDB, writer: GroupCommitter) -> None:
        self._raw = raw
        self._writer = writer

    def find(self, user_id: str, lookup: str) -> MemoryRow | None:
        """The item of `user_id` with this lookup hash, expired or not, or None."""
        values = self._raw.one(
            SELECT_MEMORIES + "WHERE user_id = ? AND lookup = ?" + _MEMORY_NOT_ERASED,
            (user_id, lookup),
        )
        return memory_row(self._raw, values) if values is not None else None

    def live(self, user_id: str, *, now: datetime) -> list[MemoryRow]:
        """Every live keyed item of the user, last changed first."""
        rows = self._raw.all(
            SELECT_MEMORIES
            + "WHERE user_id = ? AND lookup IS NOT NULL AND expires_at > ?"
            + _MEMORY_NOT_ERASED
            + " ORDER BY updated_at DESC, id DESC",
            (user_id, self._raw.time(now)),
        )
        return [memory_row(self._raw, values) for values in rows]

    def begin_insert(self, row: MemoryRow, *, max_per_user: int) -> Pending[bool]:
        """Store a new item, queued for the next group commit; the outcome is False (nothing
        stored) when the user is at `max_per_user` or already has an item of this name."""
        raw = self._raw
        values: list[Any] = [getattr(row, name) for name in row.__slots__]
        for index in _MEMORY_TIMES:
            values[index] = raw.time(values[index])
        params = (*values, max_per_user, row.user_id, row.user_id, row.lookup)
        sql = raw.sql(_INSERT_NEW_ITEM)

        def job(cursor: Any) -> bool:
            if not raw.sqlite:  # the count and the name checked under the user's lock
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (row.user_id,)
                )
            cursor.execute(sql, params)
            stored: bool = cursor.rowcount == 1
            return stored

        return queue_job(self._writer, job)

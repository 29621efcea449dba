"""The SQL of memories and their earlier versions. Every query is scoped to one user id, and
rows of a forgotten user still being deleted (storage/eraser.py) are invisible to every read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

from memory_store.errors import StorageUnavailable
from memory_store.pending import Pending
from memory_store.storage.group_commit import GroupCommitter, Job, WriteFailed
from memory_store.storage.rawdb import RawDB

T = TypeVar("T")


@dataclass(frozen=True)
class Position:
    """Where a page ended: the (created_at, id) of its last row, newest first."""

    created_at: datetime
    memory_id: str


@dataclass(frozen=True, slots=True)
class MemoryRow:
    """One row of `memories` (tables.Memory), its columns in order."""

    id: str
    user_id: str
    category: str
    key_id: str
    ciphertext: bytes
    version: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    # A keyed item's lookup hash (keys/lookup.py): its name, unreadable; None for the others.
    lookup: str | None = None


@dataclass(frozen=True, slots=True)
class MemoryHead:
    """What ranking needs of a live memory before choosing it: no ciphertext, one time."""

    id: str
    version: int
    category: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class MemoryVersionRow:
    """One row of `memory_versions` (tables.MemoryVersion): an earlier version of a memory,
    kept when it is edited and deleted with it."""

    memory_id: str
    version: int
    user_id: str
    category: str
    key_id: str
    ciphertext: bytes
    expires_at: datetime
    valid_from: datetime  # when this version was written
    valid_until: datetime  # when the next one replaced it


MEMORY_COLUMNS = tuple(field.name for field in fields(MemoryRow))
VERSION_COLUMNS = tuple(field.name for field in fields(MemoryVersionRow))
_MEMORY_TIMES = (6, 7, 8)  # created_at, updated_at, expires_at
_VERSION_TIMES = (6, 7, 8)  # expires_at, valid_from, valid_until

# Fixed SQL; only placeholders are ever added to these strings.
SELECT_MEMORIES = f"SELECT {', '.join(MEMORY_COLUMNS)} FROM memories "  # noqa: S608 (fixed names)
SELECT_VERSIONS = f"SELECT {', '.join(VERSION_COLUMNS)} FROM memory_versions "  # noqa: S608
_NOT_ERASED = (
    " AND NOT EXISTS (SELECT 1 FROM memory_erasures e "
    "WHERE e.user_id = {table}.user_id AND e.key_id = {table}.key_id)"
)
_MEMORY_NOT_ERASED = _NOT_ERASED.format(table="memories")
_VERSION_NOT_ERASED = _NOT_ERASED.format(table="memory_versions")
_IDS_AT_ONCE = 500  # ids in one IN (...): well under every driver's limit on parameters
_INSERT = f"INSERT INTO memories ({', '.join(MEMORY_COLUMNS)}) "
_MARKS = ", ".join("?" * len(MEMORY_COLUMNS))
# The insert, only while the user (the last parameter) has fewer memories than the one before.
_INSERT_IF_ROOM = (
    _INSERT + f"SELECT {_MARKS} WHERE ? > (SELECT count(*) FROM memories WHERE user_id = ?)"  # noqa: S608
)
_UPDATE = (
    "UPDATE memories SET category = ?, ciphertext = ?, version = ?, updated_at = ?, "  # noqa: S608
    "expires_at = ? WHERE user_id = ? AND id = ? AND version = ?" + _MEMORY_NOT_ERASED
)
_INSERT_VERSION = (
    f"INSERT INTO memory_versions ({', '.join(VERSION_COLUMNS)}) "  # noqa: S608 (fixed names)
    f"VALUES ({', '.join('?' * len(VERSION_COLUMNS))})"
)


def memory_row(raw: RawDB, values: Sequence[Any]) -> MemoryRow:
    """A row of `SELECT_MEMORIES`."""
    read_time = raw.read_time
    return MemoryRow(
        values[0],
        values[1],
        values[2],
        values[3],
        bytes(values[4]),
        values[5],
        read_time(values[6]),
        read_time(values[7]),
        read_time(values[8]),
        values[9],
    )


def version_row(raw: RawDB, values: Sequence[Any]) -> MemoryVersionRow:
    """A row of `SELECT_VERSIONS`."""
    read_time = raw.read_time
    return MemoryVersionRow(
        values[0],
        values[1],
        values[2],
        values[3],
        values[4],
        bytes(values[5]),
        read_time(values[6]),
        read_time(values[7]),
        read_time(values[8]),
    )


def queue_job(writer: GroupCommitter, job: Job[T]) -> Pending[T]:
    """`job` queued for the writer's next group commit; its outcome once committed
    (StorageUnavailable when the commit fails)."""
    try:
        done = writer.enqueue(job)
    except WriteFailed as failed:
        raise StorageUnavailable() from failed

    def outcome() -> T:
        try:
            result: T = writer.wait(done)
        except WriteFailed as failed:
            raise StorageUnavailable() from failed
        return result

    return Pending(done, outcome)


class MemoryRepository:
    def __init__(self, raw: RawDB, writer: GroupCommitter) -> None:
        self._raw = raw
        self._writer = writer  # inserts are group-committed

    def _row(self, values: Sequence[Any]) -> MemoryRow:
        return memory_row(self._raw, values)

    def _version(self, values: Sequence[Any]) -> MemoryVersionRow:
        return version_row(self._raw, values)

    def _params(self, row: MemoryRow | MemoryVersionRow, times: tuple[int, ...]) -> list[Any]:
        """The row's values in column order, times as this database compares them."""
        values = [getattr(row, name) for name in row.__slots__]
        for index in times:
            values[index] = self._raw.time(values[index])
        return values

    def insert(self, memory: MemoryRow, *, max_per_user: int | None = None) -> bool:
        """Store one memory. With `max_per_user`, only while the user has fewer memories than
        that, decided atomically with the insert (False, nothing stored, when they have not)."""
        return self.begin_insert(memory, max_per_user=max_per_user).result()

    def begin_insert(self, memory: MemoryRow, *, max_per_user: int | None = None) -> Pending[bool]:
        """`insert`, queued for the next group commit; the outcome is whether it was stored."""
        return queue_job(self._writer, self.insert_job(memory, max_per_user=max_per_user))

    def insert_job(self, memory: MemoryRow, *, max_per_user: int | None = None) -> Job[bool]:
        """The insert's statements, for a group commit to run on its cursor: whether the row
        was stored (with `max_per_user`, only while the user has fewer memories)."""
        raw = self._raw
        values = self._params(memory, _MEMORY_TIMES)
        statement = _INSERT + f"VALUES ({_MARKS})"
        params: tuple[Any, ...] = tuple(values)
        if max_per_user is not None:
            statement = _INSERT_IF_ROOM
            params = (*values, max_per_user, memory.user_id)
        sql = raw.sql(statement)

        def job(cursor: Any) -> bool:
            # The count and the insert in one write transaction (SQLite's write lock, or a
            # per-user advisory lock): concurrent writes for one user cannot both pass.
            if not raw.sqlite:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (memory.user_id,)
                )
            cursor.execute(sql, params)
            stored: bool = cursor.rowcount == 1
            return stored

        return job

    def count(self, user_id: str) -> int:
        """How many memories the user has (expired ones not yet swept included)."""
        row = self._raw.one("SELECT count(*) FROM memories WHERE user_id = ?", (user_id,))
        return int(row[0]) if row else 0

    def get(self, user_id: str, memory_id: str) -> MemoryRow | None:
        """One memory of `user_id`, expired or not (the policy decides), or None."""
        values = self._raw.one(
            SELECT_MEMORIES + "WHERE user_id = ? AND id = ?" + _MEMORY_NOT_ERASED,
            (user_id, memory_id),
        )
        return self._row(values) if values is not None else None

    def page(
        self,
        user_id: str,
        *,
        now: datetime,
        limit: int,
        categories: Sequence[str],
        after: Position | None = None,
    ) -> list[MemoryRow]:
        """Up to `limit` live memories of `user_id` in `categories`, newest first, after
        `after`. Expired rows are left out here so that pages stay full; the policy decides
        on each row again before it is disclosed."""
        if not categories:
            return []
        raw = self._raw
        marks = ", ".join("?" * len(categories))
        statement = (
            SELECT_MEMORIES
            + f"WHERE user_id = ? AND expires_at > ? AND category IN ({marks})"
            + _MEMORY_NOT_ERASED
        )
        params: list[Any] = [user_id, raw.time(now), *categories]
        if after is not None:
            statement += " AND (created_at < ? OR (created_at = ? AND id < ?))"
            at = raw.time(after.created_at)
            params += [at, at, after.memory_id]
        statement += " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(limit)
        return [self._row(values) for values in raw.all(statement, params)]

    def update(self, current: MemoryRow, replacement: MemoryRow, earlier: MemoryVersionRow) -> bool:
        """Replace `current` with `replacement` (the same memory, one version on) if it is
        still at `current.version`, and keep `earlier`, in one transaction. False, nothing
        changed, when it is gone or has moved on."""
        raw = self._raw
        new = self._params(replacement, _MEMORY_TIMES)
        try:
            with raw.transaction() as cursor:
                cursor.execute(
                    raw.sql(_UPDATE),
                    (*new[2:3], *new[4:6], *new[7:9], current.user_id, current.id, current.version),
                )
                if cursor.rowcount != 1:
                    raise _Moved
                cursor.execute(raw.sql(_INSERT_VERSION), self._params(earlier, _VERSION_TIMES))
        except _Moved:
            return False
        return True

    def versions(self, user_id: str, memory_id: str) -> list[MemoryVersionRow]:
        """Earlier versions of one memory, newest first."""
        rows = self._raw.all(
            SELECT_VERSIONS
            + "WHERE user_id = ? AND memory_id = ?"
            + _VERSION_NOT_ERASED
            + " ORDER BY version DESC",
            (user_id, memory_id),
        )
        return [self._version(values) for values in rows]

    def all_versions(self, user_id: str) -> list[MemoryVersionRow]:
        """Every earlier version of every memory of the user, by memory, newest first."""
        rows = self._raw.all(
            SELECT_VERSIONS
            + "WHERE user_id = ?"
            + _VERSION_NOT_ERASED
            + " ORDER BY memory_id, version DESC",
            (user_id,),
        )
        return [self._version(values) for values in rows]

    def live(self, user_id: str, *, now: datetime) -> list[MemoryRow]:
        """Every live memory of the user, newest first (for an export or a ranking)."""
        rows = self._raw.all(
            SELECT_MEMORIES
            + "WHERE user_id = ? AND expires_at > ?"
            + _MEMORY_NOT_ERASED
            + " ORDER BY created_at DESC, id DESC",
            (user_id, self._raw.time(now)),
        )
        return [self._row(values) for values in rows]

    def heads(self, user_id: str, *, now: datetime) -> list[MemoryHead]:
        """`live`, without the ciphertexts: what a ranking reads of every memory."""
        read_time = self._raw.read_time
        rows = self._raw.all(
            "SELECT id, version, category, expires_at FROM memories "  # noqa: S608 (fixed)
            "WHERE user_id = ? AND expires_at > ?"
            + _MEMORY_NOT_ERASED
            + " ORDER BY created_at DESC, id DESC",
            (user_id, self._raw.time(now)),
        )
        return [MemoryHead(row[0], row[1], row[2], read_time(row[3])) for row in rows]

    def some(self, user_id: str, memory_ids: Sequence[str]) -> list[MemoryRow]:
        """The memories of `user_id` among `memory_ids` (those still there), in no order."""
        found: list[MemoryRow] = []
        for start in range(0, len(memory_ids), _IDS_AT_ONCE):
            chunk = memory_ids[start : start + _IDS_AT_ONCE]
            marks = ", ".join("?" * len(chunk))
            statement = (
                SELECT_MEMORIES + f"WHERE user_id = ? AND id IN ({marks})" + _MEMORY_NOT_ERASED
            )
            found += [self._row(values) for values in self._raw.all(statement, [user_id, *chunk])]
        return found

    def delete(self, user_id: str, memory_ids: Sequence[str]) -> int:
        """Delete memories of `user_id` and their history, for good. Returns how many."""
        if not memory_ids:
            return 0
        with self._raw.transaction() as cursor:
            return delete_memories(self._raw, cursor, user_id, memory_ids)

    def ids_in_category(self, user_id: str, category: str) -> list[str]:
        rows = self._raw.all(
            "SELECT id FROM memories WHERE user_id = ? AND category = ?" + _MEMORY_NOT_ERASED,  # noqa: S608
            (user_id, category),
        )
        return [row[0] for row in rows]

    def expired(self, *, now: datetime, limit: int) -> list[tuple[str, str]]:
        """Up to `limit` memories whose expires_at has passed, as (user id, memory id)."""
        rows = self._raw.all(
            "SELECT user_id, id FROM memories WHERE expires_at <= ? LIMIT ?",
            (self._raw.time(now), limit),
        )
        return [(str(user_id), str(memory_id)) for user_id, memory_id in rows]

    def delete_expired(self, memory_ids: Sequence[str], *, now: datetime) -> int:
        """Delete, for good, those of `memory_ids` that are expired, with their history.
        Returns how many memories."""
        if not memory_ids:
            return 0
        raw = self._raw
        at = raw.time(now)
        marks = ", ".join("?" * len(memory_ids))
        with raw.transaction() as cursor:
            for table in ("memory_versions", "memory_embeddings"):  # history, recall vectors
                cursor.execute(
                    raw.sql(f"DELETE FROM {table} WHERE memory_id IN ({marks})"),  # noqa: S608 (fixed names, placeholders)
                    memory_ids,
                )
            cursor.execute(
                raw.sql(f"DELETE FROM memories WHERE id IN ({marks}) AND expires_at <= ?"),  # noqa: S608 (placeholders)
                (*memory_ids, at),
            )
            return int(cursor.rowcount)


def delete_memories(raw: RawDB, cursor: Any, user_id: str, memory_ids: Sequence[str]) -> int:
    """In the caller's transaction: delete memories of `user_id` and their earlier versions.
    Returns how many memories."""
    marks = ", ".join("?" * len(memory_ids))
    for table in ("memory_versions", "memory_embeddings"):  # history, recall vectors
        cursor.execute(
            raw.sql(f"DELETE FROM {table} WHERE user_id = ? AND memory_id IN ({marks})"),  # noqa: S608 (fixed names, placeholders)
            (user_id, *memory_ids),
        )
    cursor.execute(
        raw.sql(f"DELETE FROM memories WHERE user_id = ? AND id IN ({marks})"),  # noqa: S608 (placeholders)
        (user_id, *memory_ids),
    )
    return int(cursor.rowcount)


class _Moved(Exception):
    """Inside `update`: the row is gone or at another version; roll back."""

"""The key store's SQL: each user's data key, wrapped by a KEK, one row per user (table
`data_keys`, in a database of its own). What the rows mean is keys/keyring.py's business."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from memory_store.storage.engines import truncate_wal
from memory_store.storage.rawdb import RawDB


@dataclass(frozen=True, slots=True)
class StoredKey:
    user_id: str
    key_id: str
    kek_version: int
    wrapped: bytes


@dataclass(frozen=True, slots=True)
class Rewrap:
    """Replace `old` wrapping of (user, key id) with `new_version`/`new_blob`, if unchanged."""

    user_id: str
    key_id: str
    old_version: int
    new_version: int
    new_blob: bytes


_COLUMNS = "user_id, key_id, kek_version, wrapped"
_REWRAP = (
    "UPDATE data_keys SET kek_version = ?, wrapped = ? "
    "WHERE user_id = ? AND key_id = ? AND kek_version = ?"
)


def _stored(row: Sequence[object]) -> StoredKey:
    user_id, key_id, version, wrapped = row
    return StoredKey(str(user_id), str(key_id), int(version), bytes(wrapped))  # type: ignore[call-overload]


class KeyStore:
    def __init__(self, raw: RawDB) -> None:
        self._raw = raw

    def get(self, user_id: str) -> StoredKey | None:
        row = self._raw.one(
            f"SELECT {_COLUMNS} FROM data_keys WHERE user_id = ?",  # noqa: S608 (fixed)
            (user_id,),
        )
        return _stored(row) if row is not None else None

    def insert(self, key: StoredKey, created_at: datetime) -> bool:
        """Store a new key; False (nothing stored) when the user has one already."""
        with self._raw.transaction() as cursor:
            cursor.execute(
                self._raw.sql(
                    f"INSERT INTO data_keys ({_COLUMNS}, created_at) "  # noqa: S608 (fixed)
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                (
                    key.user_id,
                    key.key_id,
                    key.kek_version,
                    key.wrapped,
                    self._raw.time(created_at),
                ),
            )
            return bool(cursor.rowcount == 1)

    def rewrap(self, changes: Sequence[Rewrap]) -> int:
        """Apply `changes` in one transaction; a row changed meanwhile (say, destroyed by a
        forget) is skipped, not resurrected. Returns how many were rewrapped."""
        if not changes:
            return 0
        done = 0
        with self._raw.transaction() as cursor:
            statement = self._raw.sql(_REWRAP)
            for change in changes:
                cursor.execute(
                    statement,
                    (
                        change.new_version,
                        change.new_blob,
                        change.user_id,
                        change.key_id,
                        change.old_version,
                    ),
                )
                done += cursor.rowcount
        return done

    def delete(self, user_id: str, *, key_id: str | None = None, truncate: bool = False) -> bool:
        """Delete the user's key (only if it is `key_id`, when given). `truncate`: also empty
        SQLite's WAL, so the deleted key does not linger there. True if there was one."""
        statement = "DELETE FROM data_keys WHERE user_id = ?"
        params: tuple[str, ...] = (user_id,)
        if key_id is not None:
            statement += " AND key_id = ?"
            params = (user_id, key_id)
        with self._raw.transaction() as cursor:
            cursor.execute(self._raw.sql(statement), params)
            deleted = bool(cursor.rowcount)
        if truncate:
            truncate_wal(self._raw.engine)
        return deleted

    def counts_by_version(self) -> dict[int, int]:
        """How many keys each KEK version wraps."""
        rows = self._raw.all("SELECT kek_version, count(*) FROM data_keys GROUP BY kek_version", ())
        return {int(version): int(count) for version, count in rows}

    def sample(self, kek_version: int) -> StoredKey | None:
        """Any one key wrapped by `kek_version`."""
        row = self._raw.one(
            f"SELECT {_COLUMNS} FROM data_keys WHERE kek_version = ? LIMIT 1",  # noqa: S608
            (kek_version,),
        )
        return _stored(row) if row is not None else None

    def epoch_started(self, kek_version: int) -> datetime | None:
        """When KEK version `kek_version` was made, if that was recorded."""
        row = self._raw.one("SELECT created_at FROM kek_epochs WHERE version = ?", (kek_version,))
        return self._raw.read_time(row[0]) if row is not None else None

    def record_epoch(self, kek_version: int, at: datetime) -> None:
        """Record when KEK version `kek_version` was made (the first record stands)."""
        self._raw.execute(
            "INSERT INTO kek_epochs (version, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (kek_version, self._raw.time(at)),
        )

    def vacuum(self) -> None:
        """PostgreSQL: reclaim the dead tuples deleted keys leave in the table, so that they
        do not linger in its pages until autovacuum comes by (SQLite zeroes freed pages)."""
        if self._raw.sqlite:
            return
        with self._raw.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM data_keys")

    def page_not_under(self, kek_version: int, *, after: str, limit: int) -> list[StoredKey]:
        """Keys not wrapped by `kek_version`, by user id after `after`."""
        rows = self._raw.all(
            f"SELECT {_COLUMNS} FROM data_keys "  # noqa: S608 (fixed)
            "WHERE kek_version != ? AND user_id > ? ORDER BY user_id LIMIT ?",
            (kek_version, after, limit),
        )
        return [_stored(row) for row in rows]

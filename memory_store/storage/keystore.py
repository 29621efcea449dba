"""The key store's SQL, in a database of its own: each user's data key, wrapped by a KEK, one
row per user (`data_keys`), and each memory version's item key, wrapped by its user's data key
(`item_keys`). What the rows mean is keys/keyring.py's business."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from memory_store.errors import StorageUnavailable
from memory_store.pending import Pending
from memory_store.storage.engines import truncate_wal
from memory_store.storage.group_commit import GroupCommitter, WriteFailed
from memory_store.storage.rawdb import RawDB


@dataclass(frozen=True, slots=True)
class StoredKey:
    user_id: str
    key_id: str
    kek_version: int
    wrapped: bytes
    issue: int = 1


class StoredItemKey(NamedTuple):
    """One memory version's item key, as stored: wrapped by its user's data key. (A tuple: a
    re-issue makes one per item key the user holds, 10,000 at the quota.)"""

    memory_id: str
    item_id: str
    version: int
    wrapped: bytes


@dataclass(frozen=True, slots=True)
class StoredErasure:
    """A forget answered: no user, no memory, only when, how many and the epoch of the day."""

    id: str
    kind: str
    items: int
    kek_version: int
    requested_at: datetime


class StaleIssue(Exception):
    """The user's data key is no longer the one the caller holds: re-issued or destroyed
    meanwhile. Nothing was changed; read the key again."""


@dataclass(frozen=True, slots=True)
class Rewrap:
    """Replace `old` wrapping of (user, key id) with `new_version`/`new_blob`, if unchanged."""

    user_id: str
    key_id: str
    issue: int
    old_version: int
    new_version: int
    new_blob: bytes


_COLUMNS = "user_id, key_id, kek_version, wrapped, issue"
_REWRAP = (
    "UPDATE data_keys SET kek_version = ?, wrapped = ? "
    "WHERE user_id = ? AND key_id = ? AND issue = ? AND kek_version = ?"
)
_ITEMS = (
    "SELECT memory_id, item_id, version, wrapped FROM item_keys WHERE user_id = ? AND key_id = ?"
)
_CHUNK = 500  # ids per IN (...) list


def _stored(row: Sequence[Any]) -> StoredKey:
    user_id, key_id, version, wrapped, issue = row
    return StoredKey(str(user_id), str(key_id), int(version), bytes(wrapped), int(issue))


def _item(row: Sequence[Any]) -> StoredItemKey:
    return StoredItemKey(row[0], row[1], row[2], bytes(row[3]))


def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[start : start + _CHUNK] for start in range(0, len(ids), _CHUNK)]


class KeyStore:
    def __init__(self, raw: RawDB, writer: GroupCommitter | None = None) -> None:
        self._raw = raw
        # Item keys of new memories are group-committed, like the memories themselves: one
        # fsync for every write waiting, not one each.
        self._writer = writer

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
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                (
                    key.user_id,
                    key.key_id,
                    key.kek_version,
                    key.wrapped,
                    key.issue,
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
                        change.issue,
                        change.old_version,
                    ),
                )
                done += cursor.rowcount
        return done

    def delete(self, user_id: str, *, key_id: str | None = None, truncate: bool = False) -> bool:
        """Delete the user's key and its item keys (only if it is `key_id`, when given).
        `truncate`: also empty SQLite's WAL, so the deleted keys do not linger there. True if
        there was one."""
        where = "WHERE user_id = ?"
        params: tuple[str, ...] = (user_id,)
        if key_id is not None:
            where += " AND key_id = ?"
            params = (user_id, key_id)
        with self._raw.transaction() as cursor:
            cursor.execute(self._raw.sql("DELETE FROM data_keys " + where), params)  # noqa: S608
            deleted = bool(cursor.rowcount)
            cursor.execute(self._raw.sql("DELETE FROM item_keys " + where), params)  # noqa: S608
        if truncate:
            truncate_wal(self._raw.engine)
        return deleted

    # -- item keys ------------------------------------------------------------------------------

    def items(
        self, user_id: str, key_id: str, memory_ids: Sequence[str] | None
    ) -> list[StoredItemKey]:
        """The item keys of every version of `memory_ids` (None: of every memory) of the
        user's data key `key_id`."""
        if memory_ids is None:
            return [_item(row) for row in self._raw.all(_ITEMS, (user_id, key_id))]
        found = []
        for chunk in _chunks(memory_ids):
            marks = ", ".join("?" * len(chunk))
            rows = self._raw.all(
                _ITEMS + f" AND memory_id IN ({marks})",
                (user_id, key_id, *chunk),
            )
            found += [_item(row) for row in rows]
        return found

    def insert_items(
        self,
        user_id: str,
        key_id: str,
        issue: int,
        items: Sequence[StoredItemKey],
    ) -> Pending[None]:
        """Start storing item keys wrapped under issue `issue` of the user's key `key_id`, in
        one transaction. Its outcome raises StaleIssue (nothing stored) when the user's key
        was re-issued or destroyed meanwhile."""
        raw = self._raw
        insert = raw.sql(
            "INSERT INTO item_keys (user_id, memory_id, item_id, version, key_id, wrapped) "
            "VALUES (?, ?, ?, ?, ?, ?)"
        )
        rows = [(user_id, i.memory_id, i.item_id, i.version, key_id, i.wrapped) for i in items]

        def job(cursor: Any) -> None:
            self._hold(cursor, user_id, key_id, issue, share=True)
            cursor.executemany(insert, rows)

        writer = self._writer
        if writer is None:
            with raw.transaction() as cursor:
                job(cursor)
            return Pending.done(None)
        try:
            done = writer.enqueue(job)
        except WriteFailed as failed:
            raise StorageUnavailable() from failed

        def outcome() -> None:
            try:
                writer.wait(done)
            except WriteFailed as failed:
                raise StorageUnavailable() from failed

        return Pending(done, outcome)

    def delete_item(self, user_id: str, memory_id: str, item_id: str) -> None:
        """Drop one item key whose memory version was never stored (a refused write)."""
        self._raw.execute(
            "DELETE FROM item_keys WHERE user_id = ? AND memory_id = ? AND item_id = ?",
            (user_id, memory_id, item_id),
        )

    def reissue(
        self,
        old: StoredKey,
        new: StoredKey,
        forget: Sequence[str],
        rewrap: Callable[[list[StoredItemKey]], list[StoredItemKey]],
    ) -> int:
        """In one transaction: delete the item keys of every version of the memories
        `forget`, rewrap the user's other item keys (`rewrap` turns them from `old` to
        `new`), and replace the data key `old` by `new` (the next issue). Returns how many
        item keys were deleted; StaleIssue, nothing changed, when `old` is no longer the
        user's key."""
        raw = self._raw
        with raw.transaction() as cursor:
            self._hold(cursor, old.user_id, old.key_id, old.issue, share=False)
            deleted = 0
            for chunk in _chunks(forget):
                marks = ", ".join("?" * len(chunk))
                cursor.execute(
                    raw.sql(
                        "DELETE FROM item_keys WHERE user_id = ? AND key_id = ? "  # noqa: S608
                        f"AND memory_id IN ({marks})"
                    ),
                    (old.user_id, old.key_id, *chunk),
                )
                deleted += int(cursor.rowcount)
            cursor.execute(raw.sql(_ITEMS), (old.user_id, old.key_id))
            rewrapped = rewrap([_item(row) for row in cursor.fetchall()])
            cursor.executemany(
                raw.sql(
                    "UPDATE item_keys SET wrapped = ? "
                    "WHERE user_id = ? AND memory_id = ? AND item_id = ?"
                ),
                [(i.wrapped, old.user_id, i.memory_id, i.item_id) for i in rewrapped],
            )
            cursor.execute(
                raw.sql(
                    "UPDATE data_keys SET kek_version = ?, wrapped = ?, issue = ? "
                    "WHERE user_id = ? AND key_id = ?"
                ),
                (new.kek_version, new.wrapped, new.issue, old.user_id, old.key_id),
            )
        truncate_wal(raw.engine)  # the deleted keys and the old wrapping: out of the WAL too
        return deleted

    def _hold(self, cursor: Any, user_id: str, key_id: str, issue: int, *, share: bool) -> None:
        """Inside a write transaction: raise StaleIssue unless issue `issue` of `key_id` is
        still the user's key,
        and keep it so until the commit (SQLite: BEGIN IMMEDIATE holds the write lock
        already; PostgreSQL: a row lock, shared by inserts, exclusive for a re-issue)."""
        lock = "" if self._raw.sqlite else (" FOR SHARE" if share else " FOR UPDATE")
        cursor.execute(
            self._raw.sql("SELECT key_id, issue FROM data_keys WHERE user_id = ?" + lock),  # noqa: S608
            (user_id,),
        )
        row = cursor.fetchone()
        if row is None or (row[0], int(row[1])) != (key_id, issue):
            raise StaleIssue

    # -- erasures -------------------------------------------------------------------------------

    def record_erasure(self, erasure: StoredErasure) -> None:
        self._raw.execute(
            "INSERT INTO erasures (id, kind, items, kek_version, requested_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                erasure.id,
                erasure.kind,
                erasure.items,
                erasure.kek_version,
                self._raw.time(erasure.requested_at),
            ),
        )

    def erasure(self, erasure_id: str) -> StoredErasure | None:
        row = self._raw.one(
            "SELECT id, kind, items, kek_version, requested_at FROM erasures WHERE id = ?",
            (erasure_id,),
        )
        if row is None:
            return None
        return StoredErasure(
            str(row[0]), str(row[1]), int(row[2]), int(row[3]), self._raw.read_time(row[4])
        )

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
            conn.exec_driver_sql("VACUUM data_keys, item_keys")

    def page_not_under(self, kek_version: int, *, after: str, limit: int) -> list[StoredKey]:
        """Keys not wrapped by `kek_version`, by user id after `after`."""
        rows = self._raw.all(
            f"SELECT {_COLUMNS} FROM data_keys "  # noqa: S608 (fixed)
            "WHERE kek_version != ? AND user_id > ? ORDER BY user_id LIMIT ?",
            (kek_version, after, limit),
        )
        return [_stored(row) for row in rows]

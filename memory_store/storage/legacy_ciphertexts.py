"""The rows still encrypted in a content format older than item keys, and the store's format
mark: what the re-encryption (services/reencryption.py) reads and replaces."""

from __future__ import annotations

from collections.abc import Sequence

from memory_store.storage.memories import (
    SELECT_MEMORIES,
    SELECT_VERSIONS,
    MemoryRow,
    MemoryVersionRow,
    memory_row,
    version_row,
)
from memory_store.storage.rawdb import RawDB


class LegacyCiphertexts:
    """The store's content format, and the rows still encrypted in an older one: what the
    re-encryption (services/reencryption.py) reads and replaces."""

    def __init__(self, raw: RawDB) -> None:
        self._raw = raw

    def content_format(self) -> int:
        row = self._raw.one("SELECT content_format FROM store_format WHERE id = 1", ())
        return int(row[0]) if row is not None else 1

    def set_content_format(self, content_format: int) -> None:
        self._raw.execute(
            "UPDATE store_format SET content_format = ? WHERE id = 1", (content_format,)
        )

    def memories(self, first_byte: int, *, after: str, limit: int) -> list[MemoryRow]:
        """Memories whose ciphertext starts with `first_byte` (its format), by id after
        `after`."""
        rows = self._raw.all(
            SELECT_MEMORIES + "WHERE id > ? AND substr(ciphertext, 1, 1) = ? ORDER BY id LIMIT ?",
            (after, bytes([first_byte]), limit),
        )
        return [memory_row(self._raw, values) for values in rows]

    def versions(
        self, first_byte: int, *, after: tuple[str, int], limit: int
    ) -> list[MemoryVersionRow]:
        """Earlier versions whose ciphertext starts with `first_byte`, by (memory id,
        version) after `after`."""
        rows = self._raw.all(
            SELECT_VERSIONS + "WHERE (memory_id > ? OR (memory_id = ? AND version > ?)) "
            "AND substr(ciphertext, 1, 1) = ? ORDER BY memory_id, version LIMIT ?",
            (after[0], after[0], after[1], bytes([first_byte]), limit),
        )
        return [version_row(self._raw, values) for values in rows]

    def replace(
        self,
        memories: Sequence[tuple[MemoryRow, bytes]],
        versions: Sequence[tuple[MemoryVersionRow, bytes]],
    ) -> int:
        """Give each row its new ciphertext, in one transaction, unless the row changed
        meanwhile (then it is left for the next pass). Returns how many were replaced."""
        raw = self._raw
        done = 0
        with raw.transaction() as cursor:
            for row, ciphertext in memories:
                cursor.execute(
                    raw.sql("UPDATE memories SET ciphertext = ? WHERE id = ? AND ciphertext = ?"),
                    (ciphertext, row.id, row.ciphertext),
                )
                done += cursor.rowcount
            for version, ciphertext in versions:
                cursor.execute(
                    raw.sql(
                        "UPDATE memory_versions SET ciphertext = ? "
                        "WHERE memory_id = ? AND version = ? AND ciphertext = ?"
                    ),
                    (ciphertext, version.memory_id, version.version, version.ciphertext),
                )
                done += cursor.rowcount
        return done

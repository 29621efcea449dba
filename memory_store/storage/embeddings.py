"""The SQL of recall vectors (`memory_embeddings`): sealed bytes only, keyed by memory
version and model. Rows go with their memory (storage/memories.py `delete_memories` and the
retention purge); an older version's row goes once the newer one's is stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memory_store.storage.memories import MEMORY_COLUMNS, MemoryRow, memory_row
from memory_store.storage.rawdb import RawDB

_COLUMNS = ", ".join(f"m.{name}" for name in MEMORY_COLUMNS)
# Live memories whose current version has no vector of `model` (the indexer's work).
_UNINDEXED = (
    "FROM memories m WHERE NOT EXISTS (SELECT 1 FROM memory_embeddings e "
    "WHERE e.memory_id = m.id AND e.version = m.version AND e.model = ?) "
    "AND NOT EXISTS (SELECT 1 FROM memory_erasures x "
    "WHERE x.user_id = m.user_id AND x.key_id = m.key_id)"
)


@dataclass(frozen=True, slots=True)
class StoredEmbedding:
    memory_id: str
    version: int
    ciphertext: bytes


class EmbeddingRepository:
    def __init__(self, raw: RawDB) -> None:
        self._raw = raw

    def unindexed(self, model: str, *, after: str, limit: int) -> list[MemoryRow]:
        """Up to `limit` memories, by id after `after`, whose current version has no vector
        of `model` yet."""
        rows = self._raw.all(
            f"SELECT {_COLUMNS} " + _UNINDEXED + " AND m.id > ? ORDER BY m.id LIMIT ?",
            (model, after, limit),
        )
        return [memory_row(self._raw, values) for values in rows]

    def count_unindexed(self, model: str) -> int:
        row = self._raw.one("SELECT count(*) " + _UNINDEXED, (model,))
        return int(row[0]) if row else 0

    def store(self, user_id: str, model: str, sealed: Sequence[tuple[str, int, bytes]]) -> None:
        """Store (memory id, version, ciphertext) vectors of one user, and drop the vectors of
        those memories' earlier versions, in one transaction (a row there already stays)."""
        raw = self._raw
        with raw.transaction() as cursor:
            for memory_id, version, ciphertext in sealed:
                cursor.execute(
                    raw.sql(
                        "INSERT INTO memory_embeddings "
                        "(memory_id, version, model, user_id, ciphertext) SELECT ?, ?, ?, ?, ? "
                        # Only while that version is there: not for a memory forgotten or
                        # changed while its vector was made.
                        "WHERE EXISTS (SELECT 1 FROM memories "
                        "WHERE user_id = ? AND id = ? AND version = ?) ON CONFLICT DO NOTHING"
                    ),
                    (memory_id, version, model, user_id, ciphertext, user_id, memory_id, version),
                )
                cursor.execute(
                    raw.sql(
                        "DELETE FROM memory_embeddings "
                        "WHERE user_id = ? AND memory_id = ? AND version < ?"
                    ),
                    (user_id, memory_id, version),
                )

    def of(self, user_id: str, model: str, memory_ids: Sequence[str]) -> list[StoredEmbedding]:
        """The stored vectors of `model` for those of the user's memories."""
        found: list[StoredEmbedding] = []
        for start in range(0, len(memory_ids), 500):  # bounded IN lists
            chunk = memory_ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self._raw.all(
                "SELECT memory_id, version, ciphertext FROM memory_embeddings "  # noqa: S608 (placeholders)
                f"WHERE user_id = ? AND model = ? AND memory_id IN ({marks})",
                (user_id, model, *chunk),
            )
            found += [StoredEmbedding(m, int(v), bytes(c)) for m, v, c in rows]
        return found

    def drop_other_models(self, model: str) -> int:
        """Delete the vectors made by any other model (the embedder was changed)."""
        return self._raw.execute("DELETE FROM memory_embeddings WHERE model <> ?", (model,))

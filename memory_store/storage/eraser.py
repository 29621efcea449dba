"""Deleting a forgotten user's rows, without making the user wait for all of them.

Forgetting is crypto-shredding first (services/rights.py): once the data key is destroyed nothing of
theirs can be decrypted. The rows themselves go in two steps:

1. `begin` (in the forget request, one transaction): the keys the user's memories are under
   are marked in `memory_erasures`, so every read skips those rows from that instant; they
   are counted for the receipt; and everything else keyed to the user (consents and their
   history, settings, tokens) is deleted.
2. `finish` deletes the marked rows in batches of `BATCH`, each its own short transaction (so
   writers are never locked out for long), then makes sure the key is gone, removes the mark
   and truncates SQLite's WAL. The request does this itself when the user has at most
   `INLINE_ROWS` rows; more are left to the eraser thread, which also resumes any erasure a
   crash interrupted (the marks are in the database).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from memory_store.logging import get_logger
from memory_store.storage.engines import truncate_wal
from memory_store.storage.memories import delete_memories
from memory_store.storage.rawdb import RawDB

_log = get_logger("memory_store.erasure")

# The user's rows outside `memories` and `memory_versions`, deleted inside the request.
_OTHER_TABLES = {
    "consent_choices": "consents",
    "consent_history": "consent_events",
    "settings": "user_settings",
    "tokens": "api_tokens",
}


# Which keys the user's rows are under, and how many rows each.
_KEYS_OF_USER = {
    table: f"SELECT key_id, count(*) FROM {table} WHERE user_id = ? GROUP BY key_id"  # noqa: S608
    for table in ("memories", "memory_versions")
}


@dataclass(frozen=True)
class ErasureCounts:
    memories: int
    memory_versions: int
    consent_choices: int
    consent_history: int
    settings: int
    tokens: int


class DestroyKey(Protocol):
    """Destroys the data key `key_id` of `user_id` if it is still there (DataKeyring.destroy)."""

    def __call__(self, user_id: str, *, key_id: str | None = None) -> bool: ...


class Eraser:
    BATCH = 500
    INLINE_ROWS = 500
    POLL_SECONDS = 30.0  # also picks up erasures another process began and did not finish

    def __init__(self, raw: RawDB, destroy_key: DestroyKey) -> None:
        self._raw = raw
        self._destroy_key = destroy_key
        self._pass_lock = threading.Lock()  # one erasing pass at a time in this process
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- in the forget request ----------------------------------------------------------------

    def begin(self, user_id: str, now: datetime) -> ErasureCounts:
        """Mark the user's memories for deletion, count them, and delete their other rows,
        in one transaction. Returns what there was."""
        raw = self._raw
        with raw.transaction() as cursor:
            keys: dict[str, int] = {}
            counts: dict[str, int] = {"memories": 0, "memory_versions": 0}
            for name, statement in _KEYS_OF_USER.items():
                cursor.execute(raw.sql(statement), (user_id,))
                for key_id, count in cursor.fetchall():
                    keys[key_id] = keys.get(key_id, 0) + int(count)
                    counts[name] += int(count)
            for key_id in keys:
                cursor.execute(
                    raw.sql(
                        "INSERT INTO memory_erasures (user_id, key_id, requested_at) "
                        "VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
                    ),
                    (user_id, key_id, raw.time(now)),
                )
            for name, table in _OTHER_TABLES.items():
                cursor.execute(
                    raw.sql(f"DELETE FROM {table} WHERE user_id = ?"),  # noqa: S608 (fixed names)
                    (user_id,),
                )
                counts[name] = int(cursor.rowcount)
        return ErasureCounts(**counts)

    def finish_user(self, user_id: str) -> bool:
        """Delete the user's marked rows now; True when none are left."""
        done = True
        for key_id in self._marked_keys(user_id):
            done = self._finish(user_id, key_id) and done
        return done

    # -- the batches ----------------------------------------------------------------------------

    def _marked_keys(self, user_id: str) -> list[str]:
        rows = self._raw.all("SELECT key_id FROM memory_erasures WHERE user_id = ?", (user_id,))
        return [row[0] for row in rows]

    def _finish(self, user_id: str, key_id: str) -> bool:
        while True:
            if self._stop.is_set():  # shutting down: the mark stays, the next start resumes
                return False
            batch = self._delete_batch(user_id, key_id)
            if batch == 0:
                # Nothing left under that key: make sure the key itself is gone (a crash may
                # have come between the mark and its destruction), then drop the mark.
                self._destroy_key(user_id, key_id=key_id)
                self._execute(
                    "DELETE FROM memory_erasures WHERE user_id = ? AND key_id = ?",
                    (user_id, key_id),
                )
                truncate_wal(self._raw.engine)
                _log.info("erasure_finished")
                return True

    def _delete_batch(self, user_id: str, key_id: str) -> int:
        raw = self._raw
        ids = [
            row[0]
            for row in raw.all(
                "SELECT id FROM memories WHERE user_id = ? AND key_id = ? LIMIT ?",
                (user_id, key_id, self.BATCH),
            )
        ]
        if not ids:
            # Earlier versions whose memory is already gone (there should be none).
            self._execute(
                "DELETE FROM memory_versions WHERE user_id = ? AND key_id = ?", (user_id, key_id)
            )
            # Recall vectors left of memories already gone (one stored in a race).
            self._execute(
                "DELETE FROM memory_embeddings WHERE user_id = ? AND NOT EXISTS "
                "(SELECT 1 FROM memories m WHERE m.id = memory_embeddings.memory_id)",
                (user_id,),
            )
            return 0
        with raw.transaction() as cursor:
            delete_memories(raw, cursor, user_id, ids)
        return len(ids)

    def _execute(self, statement: str, params: tuple[Any, ...]) -> None:
        with self._raw.transaction() as cursor:
            cursor.execute(self._raw.sql(statement), params)

    # -- the background thread ------------------------------------------------------------------

    def drain(self) -> int:
        """Finish every marked erasure now, in this thread. Returns how many were finished."""
        finished = 0
        with self._pass_lock:
            for user_id, key_id in self._raw.all("SELECT user_id, key_id FROM memory_erasures", ()):
                finished += self._finish(user_id, key_id)
        return finished

    def pending(self) -> int:
        row = self._raw.one("SELECT count(*) FROM memory_erasures", ())
        return int(row[0]) if row else 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        """Run the eraser in a daemon thread until `close`; it starts with any erasure a
        previous run left unfinished."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="memory-store-eraser", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain()
            except Exception as exc:  # a locked or unreachable database: try again later
                # The type only: a driver's message can quote row values (a user id).
                _log.error("erasure_failed", error_type=type(exc).__name__)
            self._wake.wait(self.POLL_SECONDS)
            self._wake.clear()

    def close(self) -> None:
        """Stop the thread after its current batch; unfinished erasures resume next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

"""The peer: LangGraph's SqliteStore (langgraph-checkpoint-sqlite), a long-term memory store
for agents with no encryption, no policy and no audit trail, on a file database with the
service's durability (WAL, synchronous=FULL). Installed by the `bench` extra; when it is
missing, the comparison is skipped and the table says so.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

try:
    from langgraph.store.base import PutOp
    from langgraph.store.sqlite import SqliteStore
except ImportError:  # the bench extra is not installed
    SqliteStore = None  # type: ignore[misc,assignment,unused-ignore]

NAMESPACE = "memories"


def available() -> bool:
    return SqliteStore is not None


class LangGraphPeer:
    """put / get / search of one user's memories, namespaced ("memories", user id)."""

    def __init__(self, path: Path) -> None:
        if SqliteStore is None:
            raise RuntimeError("langgraph-checkpoint-sqlite is not installed (the bench extra)")
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self.store = SqliteStore(self._conn)
        self.store.setup()

    def load(self, user_id: str, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Bulk set-up in one transaction (not timed)."""
        self.store.batch([PutOp((NAMESPACE, user_id), key, value) for key, value in items])

    def put(self, user_id: str, key: str, value: dict[str, Any]) -> None:
        self.store.put((NAMESPACE, user_id), key, value)

    def get(self, user_id: str, key: str) -> object:
        return self.store.get((NAMESPACE, user_id), key)

    def list(self, user_id: str, limit: int = 20) -> list[Any]:
        """The user's most recently updated items. Without an embedding index, SqliteStore
        has no keyword search: a `query` would be ignored, so none is passed."""
        found: list[Any] = self.store.search((NAMESPACE, user_id), limit=limit)
        return found

    def close(self) -> None:
        self._conn.close()

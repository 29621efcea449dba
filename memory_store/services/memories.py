"""Memories, as the assistant and the user use them: reads (memory_reads) and changes
(memory_writes), over what both share (memory_access)."""

from __future__ import annotations

from typing import Any

from memory_store.recall.index import RecallIndex
from memory_store.services.memory_reads import ListQuery, MemoryReads
from memory_store.services.memory_writes import MemoryWrites, new_memory_id
from memory_store.services.recall import Recall

__all__ = ["ListQuery", "MemoryService", "new_memory_id"]


class MemoryService(MemoryReads, MemoryWrites):
    """Every use case on memories. This is the only service that decrypts them, and it does
    so in one place (MemoryAccess._disclose, and the search and ranking that decrypt to
    match), after the policy has allowed the read."""

    def __init__(self, *args: Any, recall: Recall | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Without one: ranking by words only, with a small index of terms.
        self._recall = recall or Recall(None, None, RecallIndex(64))

    @property
    def recall(self) -> Recall:
        return self._recall

    def _shred(self, user_id: str, memory_ids: list[str]) -> int:
        """Forget memories (MemoryWrites._shred), and drop the user's recall index: it holds
        what was derived from them."""
        try:
            return super()._shred(user_id, memory_ids)
        finally:
            self._recall.index.evict(user_id)

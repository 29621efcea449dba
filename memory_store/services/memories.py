"""Memories, as the assistant and the user use them: reads (memory_reads) and changes
(memory_writes), over what both share (memory_access)."""

from __future__ import annotations

from memory_store.services.memory_reads import ListQuery, MemoryReads
from memory_store.services.memory_writes import MemoryWrites, new_memory_id

__all__ = ["ListQuery", "MemoryService", "new_memory_id"]


class MemoryService(MemoryReads, MemoryWrites):
    """Every use case on memories. This is the only service that decrypts them, and it does
    so in one place (MemoryAccess._disclose, and the search and ranking that decrypt to
    match), after the policy has allowed the read."""

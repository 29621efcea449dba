"""Bringing a store to the current content format: every ciphertext made before format 2
(bound only to user, memory id and key) is decrypted and sealed again bound to its row's
policy attributes (keys/payload.py). Run by the service's start and `memory-store db upgrade`
when the store says it is behind; online-safe (a row changed meanwhile is left for the next
pass), and resumable (what is done stays done)."""

from __future__ import annotations

from dataclasses import dataclass

from memory_store.errors import DecryptionError
from memory_store.keys.envelope import CONTENT_FORMAT, LEGACY_FORMAT, UserKey
from memory_store.keys.keyring import DataKeyring
from memory_store.keys.payload import open_legacy_payload, seal_payload
from memory_store.logging import get_logger
from memory_store.services.memory_access import earlier_binding, memory_binding
from memory_store.storage.memories import LegacyCiphertexts, MemoryRow, MemoryVersionRow

_log = get_logger("memory_store.reencryption")
BATCH = 500


@dataclass(frozen=True)
class ReencryptionReport:
    reencrypted: int
    # Rows left as they were: their key is gone (a forgotten user's rows, still being
    # deleted) or their ciphertext does not open (altered): unreadable before, and after.
    left: int


class Reencryption:
    def __init__(self, store: LegacyCiphertexts, keyring: DataKeyring) -> None:
        self._store = store
        self._keyring = keyring

    def needed(self) -> bool:
        return self._store.content_format() < CONTENT_FORMAT

    def run(self) -> ReencryptionReport:
        done = left = 0
        keys: dict[str, UserKey | None] = {}
        after = ""
        while rows := self._store.memories(LEGACY_FORMAT, after=after, limit=BATCH):
            after = rows[-1].id
            sealed = [(row, new) for row in rows if (new := self._reseal(row, keys)) is not None]
            left += len(rows) - len(sealed)
            done += self._store.replace(sealed, [])
        position = ("", 0)
        while versions := self._store.versions(LEGACY_FORMAT, after=position, limit=BATCH):
            position = (versions[-1].memory_id, versions[-1].version)
            resealed = [
                (row, new) for row in versions if (new := self._reseal(row, keys)) is not None
            ]
            left += len(versions) - len(resealed)
            done += self._store.replace([], resealed)
        self._store.set_content_format(CONTENT_FORMAT)
        _log.info("store_reencrypted", rows=done, left=left)
        return ReencryptionReport(done, left)

    def _reseal(
        self, row: MemoryRow | MemoryVersionRow, keys: dict[str, UserKey | None]
    ) -> bytes | None:
        if row.user_id not in keys:
            try:
                keys[row.user_id] = self._keyring.key_for_read(row.user_id)
            except DecryptionError:
                keys[row.user_id] = None
        key = keys[row.user_id]
        binding = memory_binding(row) if isinstance(row, MemoryRow) else earlier_binding(row)
        try:
            content, source = open_legacy_payload(key, binding, row.ciphertext)
        except DecryptionError:
            return None
        assert key is not None  # it opened
        return seal_payload(key, binding, content, source)

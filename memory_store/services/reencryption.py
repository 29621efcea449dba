"""Bringing a store to the current content format (3): every ciphertext made before it, under
the user's own key (format 2, bound to the row's policy attributes; or format 1, bound only to
user, memory id and key), is decrypted and sealed again under a new item key of its own
(keys/envelope.py), bound to its row's policy attributes (keys/payload.py). Run by the
service's start and `memory-store db upgrade` when the store says it is behind; resumable
(what is done stays done; an item key made for a row whose replacement did not happen opens
nothing and goes with its user)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from memory_store.errors import DecryptionError
from memory_store.keys.envelope import (
    CONTENT_FORMAT,
    LEGACY_FORMAT,
    PREVIOUS_FORMAT,
    ItemKey,
    UserKey,
    new_item_key,
)
from memory_store.keys.keyring import DataKeyring
from memory_store.keys.payload import open_older_payload, seal_payload
from memory_store.logging import get_logger
from memory_store.services.memory_access import earlier_binding, memory_binding
from memory_store.storage.legacy_ciphertexts import LegacyCiphertexts
from memory_store.storage.memories import MemoryRow, MemoryVersionRow

_log = get_logger("memory_store.reencryption")
BATCH = 500
Row = TypeVar("Row", MemoryRow, MemoryVersionRow)


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
        for fmt in (LEGACY_FORMAT, PREVIOUS_FORMAT):
            after = ""
            while rows := self._store.memories(fmt, after=after, limit=BATCH):
                after = rows[-1].id
                sealed = self._reseal(rows, keys)
                left += len(rows) - len(sealed)
                done += self._store.replace(sealed, [])
            position = ("", 0)
            while versions := self._store.versions(fmt, after=position, limit=BATCH):
                position = (versions[-1].memory_id, versions[-1].version)
                resealed = self._reseal(versions, keys)
                left += len(versions) - len(resealed)
                done += self._store.replace([], resealed)
        self._store.set_content_format(CONTENT_FORMAT)
        _log.info("store_reencrypted", rows=done, left=left)
        return ReencryptionReport(done, left)

    def _reseal(self, rows: list[Row], keys: dict[str, UserKey | None]) -> list[tuple[Row, bytes]]:
        """Each row that opens, with its new ciphertext; their item keys committed first."""
        sealed: list[tuple[Row, bytes]] = []
        items: dict[str, tuple[UserKey, list[ItemKey]]] = {}
        for row in rows:
            if row.user_id not in keys:
                try:
                    keys[row.user_id] = self._keyring.key_for_read(row.user_id)
                except DecryptionError:
                    keys[row.user_id] = None
            key = keys[row.user_id]
            if isinstance(row, MemoryRow):
                binding, memory_id = memory_binding(row), row.id
            else:
                binding, memory_id = earlier_binding(row), row.memory_id
            try:
                content, source = open_older_payload(key, binding, row.ciphertext)
            except DecryptionError:
                continue
            assert key is not None  # it opened
            item = new_item_key(key, memory_id, row.version)
            items.setdefault(row.user_id, (key, []))[1].append(item)
            sealed.append((row, seal_payload(item, binding, content, source)))
        for key, made in items.values():
            self._keyring.store_item_keys(key, made)
        return sealed

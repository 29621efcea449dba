"""Erasures, as their requester can follow them: each forget gets an id, and its status says
when it is final, that is when no copy of what was forgotten (a backup, a WAL, a dead tuple)
can be opened any more: once every KEK epoch up to the one of the day is destroyed.

The record names no user and no memory (a forgotten user's receipt must not link back to
them), so the status is public to whoever holds the id: an unguessable 128-bit capability,
like the receipt it is printed on. It discloses no personal data, so no policy decision is
needed to read it.
"""

from __future__ import annotations

import secrets
from typing import Literal

from memory_store.clock import utc_now
from memory_store.errors import NotFound
from memory_store.schemas import Erasure
from memory_store.services.keys import KeyService
from memory_store.storage.keystore import KeyStore, StoredErasure

Kind = Literal["memory", "category", "everything"]


class ErasureLog:
    def __init__(self, keystore: KeyStore, keys: KeyService) -> None:
        self._keystore = keystore
        self._keys = keys

    def record(self, kind: Kind, items: int) -> Erasure:
        """Record a forget just done, under the epoch of the moment; its status."""
        stored = StoredErasure(
            id="er_" + secrets.token_urlsafe(16),
            kind=kind,
            items=items,
            kek_version=self._keys.current_epoch(),
            requested_at=utc_now(),
        )
        self._keystore.record_erasure(stored)
        return self._status(stored)

    def status(self, erasure_id: str) -> Erasure:
        stored = self._keystore.erasure(erasure_id) if len(erasure_id) <= 32 else None
        if stored is None:
            raise NotFound("No such erasure")
        return self._status(stored)

    def _status(self, stored: StoredErasure) -> Erasure:
        final = self._keys.retired_through(stored.kek_version)
        return Erasure(
            id=stored.id,
            kind=stored.kind,
            items=stored.items,
            requested_at=stored.requested_at,
            final=final,
            final_at=self._keys.final_at(stored.kek_version),
        )

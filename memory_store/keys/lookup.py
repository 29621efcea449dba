"""Finding a keyed item without storing its name: the namespace path and key a client chose
(which can be personal: "health/diagnosis") are sealed inside the item's payload, and the
row holds only a keyed hash of them, under a secret of the user's own.

That secret is kept as one more item key of the user (a reserved memory id, version 0), so it
lives where their other keys live: wrapped under their data key, rewrapped when it is
re-issued, destroyed when they are forgotten. Once it is gone, nothing links a stored hash to
any name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from memory_store.keys.envelope import KEY_BYTES, ItemKey, UserKey
from memory_store.keys.keyring import DataKeyring

LOOKUP_MEMORY_ID = "lookup"  # no memory's id: those start "mem_"
_LOOKUP_ITEM_ID = "0" * 16  # fixed, so that two first writes cannot store two secrets
_INFO = b"memory-store/item-lookup/1"


def lookup_hash(secret: bytes, namespace: Sequence[str], key: str) -> str:
    """The hash a keyed item is found by: HMAC-SHA-256 of its canonical name."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
    name = json.dumps([list(namespace), key], ensure_ascii=False, separators=(",", ":"))
    return hmac.new(derived, name.encode(), hashlib.sha256).hexdigest()


class ItemLookup:
    """Each user's lookup secret, through the keyring."""

    def __init__(self, keyring: DataKeyring) -> None:
        self._keyring = keyring

    def secret(self, user: UserKey | None) -> bytes | None:
        """The user's lookup secret, or None when they have none (no keyed item yet)."""
        if user is None:
            return None
        for item in self._keyring.item_keys(user, [LOOKUP_MEMORY_ID]).every():
            return item.secret
        return None

    def secret_for_write(self, user: UserKey) -> bytes:
        """The user's lookup secret, made on their first keyed write."""
        found = self.secret(user)
        if found is not None:
            return found
        item = ItemKey(
            user.user_id,
            user.key_id,
            LOOKUP_MEMORY_ID,
            0,
            _LOOKUP_ITEM_ID,
            secrets.token_bytes(KEY_BYTES),
        )
        try:
            self._keyring.store_item_keys(user, [item])
        except Exception:
            # Another first write stored its secret at the same moment (the same row):
            # theirs is the one. Anything else is raised again.
            raced = self.secret(self._keyring.key_for_read(user.user_id))
            if raced is None:
                raise
            return raced
        return item.secret

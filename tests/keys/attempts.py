"""What an attacker holding a copy would try: open a ciphertext with every secret the service
still has, as the item key named in its header (or, for the user's own key, as itself)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from memory_store.errors import DecryptionError
from memory_store.keys.envelope import ItemKey, item_id_of
from memory_store.keys.payload import Binding, open_payload


def assert_opens_with_none(secrets: Iterable[bytes], binding: Binding, blob: bytes) -> int:
    """Every secret fails to open `blob` as the item key it names. Returns how many were
    tried."""
    item_id = item_id_of(blob)
    assert item_id is not None, "not a format-3 ciphertext"
    tried = 0
    for secret in secrets:
        attempt = ItemKey(
            binding.user_id, binding.key_id, binding.memory_id, binding.version, item_id, secret
        )
        with pytest.raises(DecryptionError):
            open_payload(attempt, binding, blob)
        tried += 1
    return tried

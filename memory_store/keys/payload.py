"""What a memory's ciphertext holds: its content and source, as JSON, sealed under the user's
key and bound to the memory (or to one earlier version of it). The one codec for both."""

from __future__ import annotations

import json

from memory_store.errors import DecryptionError
from memory_store.keys.envelope import UserKey, open_sealed, seal


def version_binding(memory_id: str, version: int) -> str:
    """What an earlier version's ciphertext is bound to in place of the memory id alone."""
    return f"{memory_id}#v{version}"


def seal_payload(key: UserKey, binding: str, content: str, source: str | None) -> bytes:
    """Encrypt (content, source) for `binding`: a memory id, or a version_binding()."""
    return seal(key, json.dumps({"content": content, "source": source}).encode(), binding)


def open_payload(
    key: UserKey | None, key_id: str, binding: str, ciphertext: bytes
) -> tuple[str, str | None]:
    """(content, source) of a ciphertext stored under `key_id` for `binding`. Any failure,
    a missing or other key included, raises the one opaque DecryptionError."""
    if key is None or key_id != key.key_id:
        raise DecryptionError
    try:
        payload = json.loads(open_sealed(key, ciphertext, binding).decode())
        content, source = payload["content"], payload.get("source")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DecryptionError from None
    if not isinstance(content, str) or not (source is None or isinstance(source, str)):
        raise DecryptionError
    return content, source

"""What a memory's ciphertext holds, and what it is bound to.

The plaintext is the content and source, as JSON, sealed under the version's own item key
(keys/envelope.py). The associated data is the memory's
encryption context (`Binding`): a canonical encoding, like a KMS encryption context, of every
attribute the policy decides on: whose it is, which memory, which version, its category and
its expiry, whether it is the current version or an earlier one, and which key. A row whose
category or expiry was changed in the database, a ciphertext moved to another row, or an
earlier version passed off as the current one, fails to open.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from memory_store.errors import DecryptionError
from memory_store.keys.envelope import (
    LEGACY_FORMAT,
    PREVIOUS_FORMAT,
    ItemKey,
    UserKey,
    open_legacy,
    open_previous,
    open_sealed,
    seal,
)

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
_TEMPLATE = '{"category":%s,"expires":"%s","key":%s,"kind":%s,"memory":%s,"user":%s,"version":%d}'
_string = json.encoder.encode_basestring_ascii


@dataclass(frozen=True, slots=True)
class Binding:
    """The encryption context of one memory (`kind` "memory") or of one earlier version of
    it ("version")."""

    kind: Literal["memory", "version"]
    user_id: str
    memory_id: str
    version: int
    category: str
    expires_at: datetime
    key_id: str

    def encode(self) -> bytes:
        """The canonical JSON of the context (sorted keys, no spaces, ASCII), as
        `canonical_json` would write it, built by hand: it is made for every row a list
        opens, at half the cost of the encoder (tests/keys/test_payload.py holds the two
        equal)."""
        expires = self.expires_at
        if expires.tzinfo is not UTC:
            expires = expires.astimezone(UTC)
        return (
            _TEMPLATE
            % (
                _string(self.category),
                expires.isoformat(timespec="microseconds"),
                _string(self.key_id),
                _string(self.kind),
                _string(self.memory_id),
                _string(self.user_id),
                self.version,
            )
        ).encode("ascii")

    def canonical_json(self) -> bytes:
        """The same context through the JSON encoder: what `encode` must equal."""
        return _CANONICAL.encode(
            {
                "kind": self.kind,
                "user": self.user_id,
                "memory": self.memory_id,
                "version": self.version,
                "category": self.category,
                "expires": self.expires_at.astimezone(UTC).isoformat(timespec="microseconds"),
                "key": self.key_id,
            }
        ).encode("ascii")

    def legacy(self) -> str:
        """What a format-1 ciphertext of this memory or version was bound to."""
        return self.memory_id if self.kind == "memory" else f"{self.memory_id}#v{self.version}"


def _matches(key: ItemKey, binding: Binding) -> bool:
    return (key.user_id, key.key_id, key.memory_id, key.version) == (
        binding.user_id,
        binding.key_id,
        binding.memory_id,
        binding.version,
    )


def seal_payload(
    key: ItemKey,
    binding: Binding,
    content: str,
    source: str | None,
    item: Mapping[str, Any] | None = None,
) -> bytes:
    """Encrypt (content, source) under the version's item key, bound to `binding`; with
    `item`, a keyed item's name and value too (services/items.py)."""
    if not _matches(key, binding):
        raise ValueError("the binding names another key")
    document: dict[str, Any] = {"content": content, "source": source}
    if item is not None:
        document["item"] = item
    return seal(key, json.dumps(document).encode(), binding.encode())


def open_payload(
    key: ItemKey | None, binding: Binding, ciphertext: bytes
) -> tuple[str, str | None]:
    """(content, source) of a ciphertext stored with `binding`'s attributes. Any failure, a
    missing or other key included, raises the one opaque DecryptionError."""
    if key is None or not _matches(key, binding):
        raise DecryptionError
    return _decode(open_sealed(key, ciphertext, binding.encode()))


def open_item_payload(
    key: ItemKey | None, binding: Binding, ciphertext: bytes
) -> tuple[str, str | None, dict[str, Any] | None]:
    """(content, source, keyed item or None) of a ciphertext, as `open_payload`."""
    if key is None or not _matches(key, binding):
        raise DecryptionError
    plaintext = open_sealed(key, ciphertext, binding.encode())
    content, source = _decode(plaintext)
    item = json.loads(plaintext.decode()).get("item")
    if item is not None and not isinstance(item, dict):
        raise DecryptionError
    return content, source, item


_EMBEDDING = b"memory-store/embedding/1"


def _embedding_context(binding: Binding, model: str) -> bytes:
    # A label of its own, so an embedding never opens as a content, nor a content as one;
    # and the model's name, so a vector is never read as another model's.
    return b"\x00".join((_EMBEDDING, model.encode(), binding.encode()))


def seal_embedding(key: ItemKey, binding: Binding, model: str, vector: bytes) -> bytes:
    """Encrypt a memory version's vector (its float32 bytes) under the version's own item
    key, bound to the version's attributes and to the model that made it: erased and
    shredded with the content it was made from."""
    if not _matches(key, binding):
        raise ValueError("the binding names another key")
    return seal(key, vector, _embedding_context(binding, model))


def open_embedding(key: ItemKey | None, binding: Binding, model: str, ciphertext: bytes) -> bytes:
    """The vector bytes sealed by `seal_embedding`; the one opaque DecryptionError otherwise."""
    if key is None or not _matches(key, binding):
        raise DecryptionError
    return open_sealed(key, ciphertext, _embedding_context(binding, model))


def open_older_payload(
    key: UserKey | None, binding: Binding, ciphertext: bytes
) -> tuple[str, str | None]:
    """(content, source) of a ciphertext made before item keys, under the user's own key
    (format 2, or format 1): only to re-encrypt it."""
    if key is None or binding.key_id != key.key_id or not ciphertext:
        raise DecryptionError
    if ciphertext[0] == PREVIOUS_FORMAT:
        return _decode(open_previous(key, ciphertext, binding.encode()))
    if ciphertext[0] == LEGACY_FORMAT:
        return _decode(open_legacy(key, ciphertext, binding.legacy()))
    raise DecryptionError


def _decode(plaintext: bytes) -> tuple[str, str | None]:
    try:
        payload = json.loads(plaintext.decode())
        content, source = payload["content"], payload.get("source")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DecryptionError from None
    if not isinstance(content, str) or not (source is None or isinstance(source, str)):
        raise DecryptionError
    return content, source

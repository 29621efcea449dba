"""Envelope encryption, three levels: a KEK epoch wraps each user's data key (DEK), and the
DEK wraps one item key per memory version.

- The KEKs live with a KeyProvider (keys/provider.py: a local key file by default, or an HSM
  over PKCS#11); each version of the KEK is an epoch.
- Each user's DEK is random, 256 bits, and is stored only wrapped (see keys/keyring.py). It is
  re-issued (a new secret, the same key id) whenever one of their memories is forgotten.
- Each memory version has its own random 256-bit item key, stored wrapped under the DEK in
  the key store, never beside the ciphertext; forgetting the version deletes it.
- Contents are AES-256-GCM under the item key with a fresh 96-bit nonce and associated data
  (format 3): a canonical encryption context (keys/payload.py) binding every attribute the
  policy decides on, so a ciphertext moved to another row, user or version, or a row whose
  category or expiry was changed in the database, fails to open. Format 2 (the same context,
  under the DEK itself) and format 1 (user, memory id and key id only) are read only to
  re-encrypt a store made before format 3.
- Every failure to open raises the same DecryptionError, which says nothing about why.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from memory_store.errors import DecryptionError

KEY_BYTES = 32
NONCE_BYTES = 12
LEGACY_FORMAT = 1  # first byte of a ciphertext made before the encryption context
PREVIOUS_FORMAT = 2  # the encryption context, under the user's key (before item keys)
CONTENT_FORMAT = 3  # first byte of every content ciphertext made now: under an item key
_ITEM_WRAP = b"memory-store/item-key/1"
ITEM_ID_BYTES = 8
_HEADER = 1 + ITEM_ID_BYTES  # format 3: the format byte, then the item key's id


@dataclass(frozen=True)
class WrappedKey:
    """A DEK as stored: encrypted under KEK `kek_version`."""

    kek_version: int
    blob: bytes = field(repr=False)


@dataclass(frozen=True)
class UserKey:
    """An unwrapped data key. Its bytes never appear in repr() or logs."""

    user_id: str
    key_id: str
    secret: bytes = field(repr=False)
    issue: int = 1  # which secret of this key id: one more at each re-issue

    # Derived once per unwrapped key, not per memory or per audit record: the keyring hands
    # out the same UserKey while its unwrap is cached.
    @cached_property
    def aead(self) -> AESGCM:
        return AESGCM(self.secret)

    @cached_property
    def request_tags(self) -> bytes:
        """What a client's request id is hashed under in records about this user, so that
        it is unlinkable once the key is destroyed (trail/recorder.py)."""
        return HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"memory-store/request-tag/1"
        ).derive(self.secret)

    @cached_property
    def pseudonym(self) -> str:
        """See `pseudonym()`."""
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"memory-store/audit-pseudonym/1"
        ).derive(self.secret)
        return "ps_" + hmac.new(derived, self.user_id.encode(), hashlib.sha256).hexdigest()[:32]


class SealingKey(Protocol):
    """What seals contents: an item key (format 3) or, in older stores, a user's key."""

    @property
    def user_id(self) -> str: ...

    @property
    def key_id(self) -> str: ...

    @property
    def aead(self) -> AESGCM: ...


@dataclass(frozen=True)
class ItemKey:
    """One memory version's unwrapped item key. `key_id` names the user's data key it is
    wrapped under. Its bytes never appear in repr() or logs."""

    user_id: str
    key_id: str
    memory_id: str
    version: int
    item_id: str  # random, 16 hex digits: named in the header of what it seals
    secret: bytes = field(repr=False)

    @cached_property
    def aead(self) -> AESGCM:
        return AESGCM(self.secret)


def new_item_key(user: UserKey, memory_id: str, version: int) -> ItemKey:
    return ItemKey(
        user.user_id,
        user.key_id,
        memory_id,
        version,
        secrets.token_hex(ITEM_ID_BYTES),
        secrets.token_bytes(KEY_BYTES),
    )


def _item_aad_prefix(user: UserKey) -> bytes:
    """What every item key of `user` is bound to, before its memory and version."""
    return b"\x00".join((_ITEM_WRAP, user.user_id.encode(), user.key_id.encode(), b""))


def _item_aad(user: UserKey, memory_id: str, version: int) -> bytes:
    return _item_aad_after(_item_aad_prefix(user), memory_id, version)


def _item_aad_after(prefix: bytes, memory_id: str, version: int) -> bytes:
    return b"%s%s\x00%d" % (prefix, memory_id.encode(), version)


def wrap_item(user: UserKey, item: ItemKey) -> bytes:
    """The item key encrypted under the user's key, bound to its user, memory and version."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    aad = _item_aad(user, item.memory_id, item.version)
    return nonce + user.aead.encrypt(nonce, item.secret, aad)


def unwrap_item(
    user: UserKey, memory_id: str, version: int, item_id: str, wrapped: bytes
) -> ItemKey:
    """The item key `item_id` of (memory, version) from its wrapped bytes; DecryptionError if
    they do not open under this user's key for that memory and version."""
    try:
        secret = user.aead.decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _item_aad(user, memory_id, version)
        )
    except (InvalidTag, ValueError):
        raise DecryptionError from None
    return ItemKey(user.user_id, user.key_id, memory_id, version, item_id, secret)


def rewrap_items(
    old: UserKey, new: UserKey, items: Sequence[tuple[str, int, bytes]]
) -> list[bytes | None]:
    """Item keys (memory id, version, wrapped bytes) wrapped under `old` (a secret of the
    user's key), each wrapped under `new` (its next issue: the same user and key id, so the
    same binding), or None where one does not open. A re-issue runs this over every item key
    the user holds (10,000 at the quota), so what is the same for all is done once: the
    binding's prefix, the two ciphers, and one read of the random source for every nonce."""
    prefix = _item_aad_prefix(old)
    decrypt, encrypt = old.aead.decrypt, new.aead.encrypt
    nonces = secrets.token_bytes(NONCE_BYTES * len(items))
    rewrapped: list[bytes | None] = []
    for n, (memory_id, version, wrapped) in enumerate(items):
        aad = _item_aad_after(prefix, memory_id, version)
        try:
            secret = decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError):
            rewrapped.append(None)
            continue
        nonce = nonces[n * NONCE_BYTES : (n + 1) * NONCE_BYTES]
        rewrapped.append(nonce + encrypt(nonce, secret, aad))
    return rewrapped


def item_id_of(blob: bytes) -> str | None:
    """The id of the item key a format-3 ciphertext is sealed under (None: another format)."""
    if len(blob) < _HEADER or blob[0] != CONTENT_FORMAT:
        return None
    return blob[1:_HEADER].hex()


def content_aad(user_id: str, memory_id: str, key_id: str) -> bytes:
    """Associated data of a format-1 ciphertext: format, user, memory and key id."""
    return b"\x00".join(
        (
            b"memory-store/content/%d" % LEGACY_FORMAT,
            user_id.encode(),
            memory_id.encode(),
            key_id.encode(),
        )
    )


def seal(key: ItemKey, plaintext: bytes, context: bytes) -> bytes:
    """Encrypt `plaintext` (format 3) under the item key, bound to `context` (the canonical
    encryption context of one memory or version: keys/payload.py). The header names the
    item key: [3][item id, 8 bytes][nonce][ciphertext and tag]."""
    header = bytes([CONTENT_FORMAT]) + bytes.fromhex(key.item_id)
    nonce = secrets.token_bytes(NONCE_BYTES)
    aad = _aad(key, CONTENT_FORMAT, header + context)
    return header + nonce + key.aead.encrypt(nonce, plaintext, aad)


def open_sealed(key: ItemKey, blob: bytes, context: bytes) -> bytes:
    """Decrypt a format-3 ciphertext bound to `context`; any mismatch raises the one opaque
    DecryptionError."""
    if len(blob) < _HEADER + NONCE_BYTES + 16 or item_id_of(blob) != key.item_id:
        raise DecryptionError from None
    nonce, body = blob[_HEADER : _HEADER + NONCE_BYTES], blob[_HEADER + NONCE_BYTES :]
    try:
        return key.aead.decrypt(nonce, body, _aad(key, CONTENT_FORMAT, blob[:_HEADER] + context))
    except (InvalidTag, ValueError):
        raise DecryptionError from None


def open_previous(key: UserKey, blob: bytes, context: bytes) -> bytes:
    """Decrypt a format-2 ciphertext (under the user's key): only to re-encrypt it."""
    return _open(key, blob, PREVIOUS_FORMAT, _aad(key, PREVIOUS_FORMAT, context))


def seal_previous(key: UserKey, plaintext: bytes, context: bytes) -> bytes:
    """A format-2 ciphertext, as stores made before item keys hold them (for tests of the
    re-encryption)."""
    return _seal(key, PREVIOUS_FORMAT, plaintext, context)


def _seal(key: SealingKey, fmt: int, plaintext: bytes, context: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return bytes([fmt]) + nonce + key.aead.encrypt(nonce, plaintext, _aad(key, fmt, context))


def _aad(key: SealingKey, fmt: int, context: bytes) -> bytes:
    # The key's user and id are bound here too, whatever the context says: a ciphertext made
    # under one user's key never opens as another's.
    prefix = b"memory-store/content/%d" % fmt
    return b"\x00".join((prefix, key.user_id.encode(), key.key_id.encode(), context))


def open_legacy(key: UserKey, blob: bytes, binding: str) -> bytes:
    """Decrypt a format-1 ciphertext bound to `binding` (a memory id, or "<id>#v<n>" for an
    earlier version): only to re-encrypt it in format 2."""
    return _open(key, blob, LEGACY_FORMAT, content_aad(key.user_id, binding, key.key_id))


def seal_legacy(key: UserKey, plaintext: bytes, binding: str) -> bytes:
    """A format-1 ciphertext, as stores made before format 2 hold them (for tests of the
    re-encryption)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    aad = content_aad(key.user_id, binding, key.key_id)
    return bytes([LEGACY_FORMAT]) + nonce + key.aead.encrypt(nonce, plaintext, aad)


def _open(key: SealingKey, blob: bytes, fmt: int, aad: bytes) -> bytes:
    if len(blob) < 1 + NONCE_BYTES + 16 or blob[0] != fmt:
        raise DecryptionError
    nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return key.aead.decrypt(nonce, body, aad)
    except (InvalidTag, ValueError):
        raise DecryptionError from None


def pseudonym(key: UserKey) -> str:
    """The user's pseudonym in the audit trail: a keyed hash of their id, under a key derived
    from their data key. Destroying the data key makes it impossible to link again."""
    return key.pseudonym


def new_data_key() -> tuple[str, bytes]:
    """A fresh (key id, 256-bit DEK) pair. The id is random so it reveals nothing."""
    return secrets.token_hex(8), secrets.token_bytes(KEY_BYTES)

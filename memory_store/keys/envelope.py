"""Envelope encryption: a versioned key-encryption key (KEK) wraps one data key (DEK) per user.

- The KEK lives with a KeyProvider (keys/provider.py: a local key file by default; a KMS or
  HSM plugs in there).
- Each user's DEK is random, 256 bits, and is stored only wrapped (see keys/keyring.py).
- Contents are AES-256-GCM under the DEK with a fresh 96-bit nonce and associated data: in
  format 2, a canonical encryption context (keys/payload.py) binding every attribute the
  policy decides on, so a ciphertext moved to another row, user or version, or a row whose
  category or expiry was changed in the database, fails to open. Format 1 (user, memory id
  and key id only) is read only to re-encrypt a store made before format 2.
- Every failure to open raises the same DecryptionError, which says nothing about why.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from memory_store.errors import DecryptionError

KEY_BYTES = 32
NONCE_BYTES = 12
LEGACY_FORMAT = 1  # first byte of a ciphertext made before the encryption context
CONTENT_FORMAT = 2  # first byte of every content ciphertext made now
CONTEXT_PREFIX = b"memory-store/content/2"


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

    # Derived once per unwrapped key, not per memory or per audit record: the keyring hands
    # out the same UserKey while its unwrap is cached.
    @cached_property
    def aead(self) -> AESGCM:
        return AESGCM(self.secret)

    @cached_property
    def pseudonym(self) -> str:
        """See `pseudonym()`."""
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"memory-store/audit-pseudonym/1"
        ).derive(self.secret)
        return "ps_" + hmac.new(derived, self.user_id.encode(), hashlib.sha256).hexdigest()[:32]


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


def seal(key: UserKey, plaintext: bytes, context: bytes) -> bytes:
    """Encrypt `plaintext` (format 2) under the key, bound to `context` (the canonical
    encryption context of one memory or version: keys/payload.py)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return bytes([CONTENT_FORMAT]) + nonce + key.aead.encrypt(nonce, plaintext, _aad(key, context))


def open_sealed(key: UserKey, blob: bytes, context: bytes) -> bytes:
    """Decrypt a format-2 ciphertext bound to `context`; any mismatch raises the one opaque
    DecryptionError."""
    return _open(key, blob, CONTENT_FORMAT, _aad(key, context))


def _aad(key: UserKey, context: bytes) -> bytes:
    # The key's user and id are bound here too, whatever the context says: a ciphertext made
    # under one user's key never opens as another's.
    return b"\x00".join((CONTEXT_PREFIX, key.user_id.encode(), key.key_id.encode(), context))


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


def _open(key: UserKey, blob: bytes, fmt: int, aad: bytes) -> bytes:
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

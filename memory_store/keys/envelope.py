"""Envelope encryption: a versioned key-encryption key (KEK) wraps one data key (DEK) per user.

- The KEK lives with a KeyProvider (keys/provider.py: a local key file by default; a KMS or
  HSM plugs in there).
- Each user's DEK is random, 256 bits, and is stored only wrapped (see keys/keyring.py).
- Contents are AES-256-GCM under the DEK with a fresh 96-bit nonce and associated data that
  binds the format version, the user id, the memory id and the DEK's id, so a ciphertext
  moved to another row or user fails to open.
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
CONTENT_FORMAT = 1  # first byte of every content ciphertext


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
    """Associated data of a memory's ciphertext: format, user, memory and key id."""
    return b"\x00".join(
        (
            b"memory-store/content/%d" % CONTENT_FORMAT,
            user_id.encode(),
            memory_id.encode(),
            key_id.encode(),
        )
    )


def seal(key: UserKey, plaintext: bytes, memory_id: str) -> bytes:
    """Encrypt `plaintext` for one memory of the key's user."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    aad = content_aad(key.user_id, memory_id, key.key_id)
    return bytes([CONTENT_FORMAT]) + nonce + key.aead.encrypt(nonce, plaintext, aad)


def open_sealed(key: UserKey, blob: bytes, memory_id: str) -> bytes:
    """Decrypt a memory's ciphertext; any mismatch raises the one opaque DecryptionError."""
    if len(blob) < 1 + NONCE_BYTES + 16 or blob[0] != CONTENT_FORMAT:
        raise DecryptionError
    nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return key.aead.decrypt(nonce, body, content_aad(key.user_id, memory_id, key.key_id))
    except (InvalidTag, ValueError):
        raise DecryptionError from None


def pseudonym(key: UserKey) -> str:
    """The user's pseudonym in the audit trail: a keyed hash of their id, under a key derived
    from their data key. Destroying the data key makes it impossible to link again."""
    return key.pseudonym


def new_data_key() -> tuple[str, bytes]:
    """A fresh (key id, 256-bit DEK) pair. The id is random so it reveals nothing."""
    return secrets.token_hex(8), secrets.token_bytes(KEY_BYTES)

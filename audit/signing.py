"""Ed25519 signing keys, and the legacy checkpoint format.

The service signs tlog-checkpoint notes over the Merkle tree (audit/note.py). Checkpoints cut
before that (format v1, `Checkpoint`) are (seq, hash, at) signed over
"memory-store/audit/checkpoint/v1" || 0x00 || canonical(seq, hash, at): they still verify, and
one kept outside proves the chain held that record at that place.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from audit.note import (
    TreeCheckpoint,
    checkpoint_body,
    key_id,
    log_origin,
    note_key_id,
    signature_line,
)
from audit.records import canonical

CHECKPOINT_DOMAIN = b"memory-store/audit/checkpoint/v1\x00"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str
    key_id: str  # which public key signed it: the first 16 hex of SHA-256 of its raw bytes
    signature: str  # base64

    def message(self) -> bytes:
        return CHECKPOINT_DOMAIN + canonical({"seq": self.seq, "hash": self.hash, "at": self.at})

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "hash": self.hash,
            "at": self.at,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Checkpoint:
        try:
            seq = document["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise TypeError("seq")
            fields = [document[name] for name in ("hash", "at", "key_id", "signature")]
            if not all(isinstance(value, str) for value in fields):
                raise TypeError("field")
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed checkpoint: {exc!r}") from None
        return cls(seq, *fields)

    def verify(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(base64.b64decode(self.signature, validate=True), self.message())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Parse a PEM public key; raises ValueError unless it is an Ed25519 key."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


class SigningKey:
    """The service's Ed25519 signing key, in a PEM file of mode 0600, created on first run."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)
        self.origin = log_origin(self.public_key)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"

    @classmethod
    def load_or_create(cls, path: Path, *, create: bool) -> SigningKey:
        if not path.exists():
            if not create:
                raise FileNotFoundError(f"audit signing key {path} does not exist")
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            # Write the whole key to a private temp file, then link it into place: the link
            # fails if another process got there first, and nobody ever sees a partial file.
            temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
            fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(pem)
                    handle.flush()
                    os.fsync(handle.fileno())
                with contextlib.suppress(FileExistsError):  # another process won: use theirs
                    os.link(temp, path)
            finally:
                temp.unlink(missing_ok=True)
        if path.stat().st_mode & 0o077:
            raise PermissionError(
                f"audit signing key {path} is accessible to group or others; chmod 600 it"
            )
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return cls(key)

    def derive_secret(self, info: bytes) -> bytes:
        """A 256-bit secret for another job of the trail's keeper, named by `info`: derived
        (HKDF-SHA256) from the private key, so it reveals nothing of it and lives as long."""
        raw = self._private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(raw)

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign_tree(self, size: int, root: bytes) -> TreeCheckpoint:
        """A tlog-checkpoint note for the tree of `size` records with this `root`. Ed25519 is
        deterministic: the same tree always gives the same note, in any process."""
        body = checkpoint_body(self.origin, size, root)
        signature = self._private_key.sign(body.encode())
        line = signature_line(self.origin, note_key_id(self.origin, self.public_key), signature)
        return TreeCheckpoint.parse(body + "\n" + line)

    def sign(self, *, seq: int, hash: str, at: str) -> Checkpoint:
        """A legacy (v1) checkpoint: kept so that tests and tools can make old trails."""
        unsigned = Checkpoint(seq=seq, hash=hash, at=at, key_id=self.key_id, signature="")
        signature = self._private_key.sign(unsigned.message())
        return Checkpoint(
            seq=seq,
            hash=hash,
            at=at,
            key_id=self.key_id,
            signature=base64.b64encode(signature).decode(),
        )

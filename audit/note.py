"""Checkpoints in the C2SP tlog-checkpoint format: a signed note (c2sp.org/signed-note).

    memory-store.local/audit/<key id>      the origin: which log
    1000                                   the tree size: records 1..1000
    <base64 of the RFC 6962 root>          (audit/merkle.py)

    — memory-store.local/audit/<key id> <base64(4-byte key ID || Ed25519 signature)>

The signature covers the three lines above the blank line, each with its newline. The key
name is the origin; the key ID is SHA-256(name || 0x0A || 0x01 || public key)[:4]. A verifier
ignores signature lines of keys it does not know (a witness may cosign), needs one valid line
from the log's key, and rejects a note where a line in that key's name and ID does not verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.merkle import HASH_SIZE

ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space
FORMAT = "c2sp-tlog-checkpoint"
MAX_NOTE_BYTES = 64 * 1024  # room for a hundred cosignatures; anything larger is not ours
MAX_SIGNATURES = 100
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")
_SIGNATURE = re.compile(r"\u2014 ([^\s+]+) ([A-Za-z0-9+/]+={0,2})")


def key_id(public_key: Ed25519PublicKey) -> str:
    """Which public key: the first 16 hex of SHA-256 of its raw bytes (the export's header
    and the legacy checkpoints name it so)."""
    return hashlib.sha256(_raw(public_key)).hexdigest()[:16]


def log_origin(public_key: Ed25519PublicKey) -> str:
    """The log's name, fixed by its key, so a verifier given the key knows which log to expect."""
    return f"memory-store.local/audit/{key_id(public_key)}"


def note_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + _raw(public_key)).digest()[:4]


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def signature_line(name: str, key_id: bytes, signature: bytes) -> str:
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(key_id + signature).decode()}\n"


@dataclass(frozen=True)
class SignatureLine:
    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class TreeCheckpoint:
    """A parsed tlog-checkpoint note: what the log signed, and the note as published."""

    origin: str
    size: int
    root: bytes
    note: str
    signatures: tuple[SignatureLine, ...]

    @property
    def seq(self) -> int:
        """The last record the checkpoint covers (records are numbered from 1)."""
        return self.size

    @property
    def body(self) -> str:
        return self.note[: self.note.rindex("\n\n") + 1]

    def signed_by(self, name: str, public_key: Ed25519PublicKey) -> bool:
        """True if a line of key (name, public_key) signs the body and no line of it fails."""
        key_id = note_key_id(name, public_key)
        body = self.body.encode()
        signed = False
        for line in self.signatures:
            if line.name != name or line.key_id != key_id:
                continue  # someone else's (a witness's cosignature): not ours to judge
            try:
                public_key.verify(line.signature, body)
            except InvalidSignature:
                return False
            signed = True
        return signed

    def verify(self, public_key: Ed25519PublicKey) -> bool:
        """Is this a checkpoint of the log this key signs, signed by it?"""
        origin = log_origin(public_key)
        return self.origin == origin and self.signed_by(origin, public_key)

    @classmethod
    def parse(cls, note: str) -> TreeCheckpoint:
        """Parse a signed note; raises ValueError unless it is a well-formed tlog-checkpoint
        (the signatures are checked by `verify`, not here)."""
        if len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
            raise ValueError("not a checkpoint: too large")
        if any((ord(c) < 0x20 and c != "\n") or c == "\x7f" for c in note):
            raise ValueError("not a checkpoint: control characters")
        split = note.rfind("\n\n")
        if split < 0 or not note.endswith("\n"):
            raise ValueError("not a checkpoint: no signature block after a blank line")
        lines = note[: split + 1].split("\n")[:-1]
        if len(lines) < 3 or not lines[0].strip():
            raise ValueError("not a checkpoint: it needs an origin, a tree size and a root")
        if not _SIZE.fullmatch(lines[1]):
            raise ValueError("not a checkpoint: the tree size is not a decimal number")
        root = _base64(lines[2])
        if len(root) != HASH_SIZE:
            raise ValueError("not a checkpoint: the root hash is not 32 bytes")
        signatures = []
        for line in note[split + 2 :].split("\n")[:-1]:
            found = _SIGNATURE.fullmatch(line)
            if found is None:
                raise ValueError("not a checkpoint: a malformed signature line")
            raw = _base64(found.group(2))
            if len(raw) < 5:
                raise ValueError("not a checkpoint: a signature line too short")
            signatures.append(SignatureLine(found.group(1), raw[:4], raw[4:]))
        if not signatures or len(signatures) > MAX_SIGNATURES:
            raise ValueError("not a checkpoint: no signature, or too many")
        return cls(lines[0], int(lines[1]), root, note, tuple(signatures))


def _base64(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not a checkpoint: bad base64") from None
    if base64.b64encode(raw).decode() != text:  # one spelling per value
        raise ValueError("not a checkpoint: non-canonical base64")
    return raw


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

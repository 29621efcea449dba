"""Opaque keyset cursors: a small JSON document, base64url-encoded, signed with a secret of
this service (HMAC-SHA-256, truncated to 128 bits). Clients pass them back unchanged; any
cursor this service did not issue, altered or made up, is refused with 422 before anything
of it is read."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from memory_store.errors import InvalidCursor

_TAG_BYTES = 16
# The largest number a cursor may carry: what both databases' 64-bit integers hold.
_MAX_INT = 2**63 - 1
_MAX_CHARS = 512  # far above any cursor issued; longer is refused before it is decoded


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Cursors:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()[:_TAG_BYTES]

    def encode(self, position: dict[str, Any]) -> str:
        body = json.dumps(position, separators=(",", ":")).encode()
        return f"{_b64(body)}.{_b64(self._tag(body))}"

    def decode(self, cursor: str) -> dict[str, Any]:
        """The position of a cursor this service issued, or InvalidCursor."""
        body_text, dot, tag_text = cursor.rpartition(".")
        if not dot or len(cursor) > _MAX_CHARS:
            raise InvalidCursor()
        try:
            body, tag = _unb64(body_text), _unb64(tag_text)
        except (binascii.Error, ValueError):
            raise InvalidCursor() from None
        if not hmac.compare_digest(tag, self._tag(body)):
            raise InvalidCursor()
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidCursor() from None
        if not isinstance(document, dict):
            raise InvalidCursor()
        return document

    def decode_int(self, cursor: str, field: str) -> int:
        """The whole number `field` of a cursor this service issued (a sequence or a
        version), or InvalidCursor: anything else, or out of range, would reach the
        database."""
        value = self.decode(cursor).get(field)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_INT:
            raise InvalidCursor()
        return value

"""Opaque keyset cursors: a small JSON document, base64url-encoded. Clients pass them back
unchanged; anything this service did not issue is refused with 422."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from memory_store.errors import InvalidCursor


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor() from None
    if not isinstance(document, dict):
        raise InvalidCursor()
    return document

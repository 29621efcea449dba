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


# The largest number a cursor may carry: what both databases' 64-bit integers hold.
_MAX_INT = 2**63 - 1


def decode_int_cursor(cursor: str, field: str) -> int:
    """The whole number `field` of a cursor this service issued (a sequence or a version),
    or InvalidCursor: anything else, or out of range, would reach the database."""
    value = decode_cursor(cursor).get(field)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_INT:
        raise InvalidCursor()
    return value

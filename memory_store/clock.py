"""The one clock. Every timestamp in the service comes from utc_now(), so freezegun freezes it."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC, to the microsecond."""
    return datetime.now(UTC)

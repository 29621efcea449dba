"""How the trail writes a time: RFC 3339, UTC, microseconds, "Z"."""

from __future__ import annotations

from datetime import datetime


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

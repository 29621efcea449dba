"""The `memory-store` command's argument types: each turns a word of the command line into a
value, or explains, in one line, what it expected."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta
from urllib.parse import urlsplit

from memory_store.domain import MAX_WORKERS, USER_ID_PATTERN, USER_ID_RULE


def user_id_argument(value: str) -> str:
    if not re.fullmatch(USER_ID_PATTERN, value):
        raise argparse.ArgumentTypeError(f"user ids are {USER_ID_RULE}")
    return value


DURATION = re.compile(r"(\d{1,6})([smhd])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_argument(value: str) -> timedelta:
    """A lifetime such as 90d, 12h, 30m or 3600s."""
    match = DURATION.fullmatch(value.strip())
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive number and a unit, like 90d, 12h, 30m or 3600s; got {value!r}"
        )
    return timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])


def url_argument(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError("expected the server's http(s) address")
    return value


def workers_argument(value: str) -> int:
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if not 1 <= workers <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of processes from 1 to {MAX_WORKERS}, got {value!r}"
        )
    return workers

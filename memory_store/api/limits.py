"""Abuse limits: a token bucket per API token (and per client address for requests without a
valid token). Each process keeps its own buckets; the workers of one `serve --workers N` split
the budget (app.py: each allows 1/N), and several servers each keep theirs (set each one's rate
to its share). A limiter shared across machines belongs in the load balancer."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from datetime import datetime

from memory_store.clock import utc_now
from memory_store.errors import RateLimited


class RateLimiter:
    _MAX_KEYS = 100_000  # forget the least recently seen callers beyond this

    def __init__(self, *, per_minute: int, burst_seconds: float) -> None:
        self._rate = per_minute / 60.0  # tokens per second
        self._burst = max(1.0, self._rate * burst_seconds)
        self._buckets: OrderedDict[str, tuple[float, datetime]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def check(self, key: str) -> None:
        """Take one token from `key`'s bucket, or raise RateLimited with a Retry-After."""
        if not self.enabled:
            return
        now = utc_now()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self._burst, now))
            elapsed = max((now - last).total_seconds(), 0.0)
            tokens = min(self._burst, tokens + elapsed * self._rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                retry_after = max(1, math.ceil((1.0 - tokens) / self._rate))
                raise RateLimited(
                    f"Too many requests; retry in {retry_after} s", retry_after=retry_after
                )
            self._buckets[key] = (tokens - 1.0, now)
            while len(self._buckets) > self._MAX_KEYS:
                self._buckets.popitem(last=False)


class Limits:
    """One limiter for assistant tokens, one for everyone else (people's tokens, and client
    addresses that present no valid token)."""

    def __init__(self, *, assistant: RateLimiter, others: RateLimiter) -> None:
        self._assistant = assistant
        self._others = others

    def check_token(self, token_id: str, *, is_assistant: bool) -> None:
        (self._assistant if is_assistant else self._others).check("token:" + token_id)

    def check_address(self, address: str) -> None:
        self._others.check("addr:" + address)

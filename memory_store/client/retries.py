"""When the client tries a request again: on 429 (rate limited) and 503 (the service's keys,
database or audit trail briefly unavailable), after the Retry-After the server sent, and when
the connection could not be made at all. A bounded number of times, with a bounded wait:
tenacity does the counting and the sleeping, sync and async alike.

Each of these answers means that nothing was done (the server refuses before it writes, and a
503 says "nothing was stored"), so even a write is safe to send again. A connection that broke
after the request went out is not retried: a write might have happened."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
)

RETRY_STATUSES = frozenset({429, 503})
# The connection was never made: the request did not reach the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts`: tries in all (1: never retry). Without Retry-After, the waits double from
    `backoff` seconds; no wait is longer than `max_wait` (a longer Retry-After gives up)."""

    attempts: int = 3
    backoff: float = 0.5
    max_wait: float = 30.0

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        answered = outcome is not None and not outcome.failed
        response: httpx.Response | None = outcome.result() if answered else None  # type: ignore[union-attr]
        asked = _retry_after(response) if response is not None else None
        if asked is not None:
            return min(asked, self.max_wait)
        return min(self.backoff * 2.0 ** (state.attempt_number - 1), self.max_wait)

    def _arguments(self) -> dict[str, object]:
        return {
            "stop": stop_after_attempt(max(1, self.attempts)),
            "wait": self._wait,
            "retry": retry_if_exception_type(_NOT_SENT) | retry_if_result(self._again),
            "retry_error_callback": _last_answer,
            "reraise": True,
        }

    def _again(self, response: httpx.Response) -> bool:
        if response.status_code not in RETRY_STATUSES:
            return False
        asked = _retry_after(response)
        return asked is None or asked <= self.max_wait

    def retrying(self) -> Retrying:
        return Retrying(**self._arguments())  # type: ignore[arg-type]

    def async_retrying(self) -> AsyncRetrying:
        return AsyncRetrying(**self._arguments())  # type: ignore[arg-type]


NO_RETRIES = RetryPolicy(attempts=1)


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (this service sends whole seconds; an HTTP date is ignored)."""
    value = response.headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _last_answer(state: RetryCallState) -> httpx.Response:
    """Out of attempts: the last answer (its problem becomes the exception), or its error."""
    assert state.outcome is not None
    result: httpx.Response = state.outcome.result()
    return result

"""A typed Python client for memory-store, sync (`MemoryStoreClient`) and async
(`AsyncMemoryStoreClient`), on httpx.

Problem responses become exceptions that carry the problem details: `ConsentRequired`,
`MemoryPaused`, `NotFound`, ... all subclasses of `MemoryStoreError`, with `.problem_type`,
`.status`, `.detail`, `.request_id` and `.extensions`.

    with MemoryStoreClient("http://127.0.0.1:8000", token=ASSISTANT) as store:
        context = store.context("alice", purpose="personalization", q="flight seat")
        store.remember("alice", "prefers window seats", category="preferences")
"""

from __future__ import annotations

from memory_store.client.aio import AsyncMemoryStoreClient
from memory_store.client.errors import (
    ConsentRequired,
    Forbidden,
    InvalidRequest,
    MemoryPaused,
    MemoryStoreError,
    Model,
    NotFound,
    QuotaExceeded,
    RateLimited,
    SecretRefused,
    Unauthenticated,
    VersionMismatch,
    raise_for_problem,
)
from memory_store.client.sync import MemoryStoreClient

__all__ = [
    "AsyncMemoryStoreClient",
    "ConsentRequired",
    "Forbidden",
    "InvalidRequest",
    "MemoryPaused",
    "MemoryStoreClient",
    "MemoryStoreError",
    "Model",
    "NotFound",
    "QuotaExceeded",
    "RateLimited",
    "SecretRefused",
    "Unauthenticated",
    "VersionMismatch",
    "raise_for_problem",
]

"""A typed Python client for memory-store, sync (`MemoryStoreClient`) and async
(`AsyncMemoryStoreClient`) with the same methods, on httpx. It imports none of the server.

Problem responses become exceptions that carry the problem details, one class per problem
type (`ConsentRequired`, `MemoryPaused`, `UnknownCategory`, ...), all subclasses of
`MemoryStoreError`, with `.problem_type`, `.status`, `.detail`, `.request_id` and `.extensions`.
429 and 503 answers, and connections that could not be made, are retried after the server's
Retry-After (`retry=RetryPolicy(...)` to change how).

    with MemoryStoreClient("http://127.0.0.1:8000", token=ASSISTANT) as store:
        context = store.context("alice", purpose="personalization", q="flight seat")
        store.remember("alice", "prefers window seats", category="preferences")
"""

from __future__ import annotations

from memory_store.client.aio import AsyncMemoryStoreClient
from memory_store.client.errors import (
    AuditUnavailable,
    BodyTooLarge,
    ConsentRequired,
    Forbidden,
    InvalidCursor,
    InvalidRequest,
    KeysUnavailable,
    MalformedBody,
    McpNotServing,
    MemoryPaused,
    MemoryStoreError,
    MemoryUnreadable,
    Model,
    NotFound,
    QuotaExceeded,
    RateLimited,
    SecretRefused,
    StorageUnavailable,
    Unauthenticated,
    Unavailable,
    UnknownCategory,
    UnknownPurpose,
    VersionMismatch,
    raise_for_problem,
)
from memory_store.client.retries import NO_RETRIES, RetryPolicy
from memory_store.client.sync import MemoryStoreClient

__all__ = [
    "NO_RETRIES",
    "AsyncMemoryStoreClient",
    "AuditUnavailable",
    "BodyTooLarge",
    "ConsentRequired",
    "Forbidden",
    "InvalidCursor",
    "InvalidRequest",
    "KeysUnavailable",
    "MalformedBody",
    "McpNotServing",
    "MemoryPaused",
    "MemoryStoreClient",
    "MemoryStoreError",
    "MemoryUnreadable",
    "Model",
    "NotFound",
    "QuotaExceeded",
    "RateLimited",
    "RetryPolicy",
    "SecretRefused",
    "StorageUnavailable",
    "Unauthenticated",
    "Unavailable",
    "UnknownCategory",
    "UnknownPurpose",
    "VersionMismatch",
    "raise_for_problem",
]

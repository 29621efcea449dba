"""The exceptions a problem response becomes, and the parsing of successful ones."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import BaseModel

Model = TypeVar("Model", bound=BaseModel)


class MemoryStoreError(Exception):
    """A refusal from the service (RFC 9457 problem details), or a response it should not give."""

    problem_slug: ClassVar[str | None] = None

    def __init__(self, status: int, document: dict[str, Any]) -> None:
        self.status = status
        self.problem_type = str(document.get("type", "about:blank"))
        self.title = str(document.get("title", ""))
        self.detail = str(document.get("detail", self.title))
        self.request_id = document.get("request_id")
        self.extensions = {
            k: v
            for k, v in document.items()
            if k not in {"type", "title", "status", "detail", "request_id"}
        }
        super().__init__(f"{status} {self.problem_type}: {self.detail}")


class Unauthenticated(MemoryStoreError):
    problem_slug = "unauthenticated"


class Forbidden(MemoryStoreError):
    problem_slug = "forbidden"


class ConsentRequired(MemoryStoreError):
    problem_slug = "consent-required"


class MemoryPaused(MemoryStoreError):
    problem_slug = "memory-paused"


class NotFound(MemoryStoreError):
    problem_slug = "not-found"


class VersionMismatch(MemoryStoreError):
    problem_slug = "version-mismatch"


class QuotaExceeded(MemoryStoreError):
    problem_slug = "quota-exceeded"


class RateLimited(MemoryStoreError):
    problem_slug = "rate-limited"

    @property
    def retry_after(self) -> int | None:
        value = self.extensions.get("retry_after")
        return int(value) if isinstance(value, int) else None


class InvalidRequest(MemoryStoreError):
    problem_slug = "invalid-request"


class SecretRefused(MemoryStoreError):
    problem_slug = "secret-refused"


class UnknownPurpose(InvalidRequest):
    """The purpose is not in the catalogue; `known` (in .extensions) lists those that are."""

    problem_slug = "unknown-purpose"


class UnknownCategory(InvalidRequest):
    """The category is not in the catalogue; `known` (in .extensions) lists those that are."""

    problem_slug = "unknown-category"


class InvalidCursor(InvalidRequest):
    problem_slug = "invalid-cursor"


class MalformedBody(MemoryStoreError):
    problem_slug = "malformed-body"


class BodyTooLarge(MemoryStoreError):
    problem_slug = "body-too-large"


class MemoryUnreadable(MemoryStoreError):
    problem_slug = "memory-unreadable"


class Unavailable(MemoryStoreError):
    """The service could not do it now (503): nothing was done; try again later. The client
    has already retried as its RetryPolicy allows."""


class KeysUnavailable(Unavailable):
    problem_slug = "keys-unavailable"


class StorageUnavailable(Unavailable):
    problem_slug = "storage-unavailable"


class AuditUnavailable(Unavailable):
    problem_slug = "audit-unavailable"


class McpNotServing(Unavailable):
    problem_slug = "mcp-not-serving"


def _every(cls: type[MemoryStoreError]) -> list[type[MemoryStoreError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _every(child))]


# One exception class per problem type the service answers with.
_BY_SLUG: dict[str, type[MemoryStoreError]] = {
    cls.problem_slug: cls for cls in _every(MemoryStoreError) if cls.problem_slug
}


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the MemoryStoreError subclass a failed response stands for."""
    if response.is_success:
        return
    try:
        document = response.json()
    except ValueError:
        document = {"type": "about:blank", "title": response.reason_phrase}
    if not isinstance(document, dict):
        document = {"type": "about:blank", "title": response.reason_phrase}
    slug = str(document.get("type", "")).removeprefix("/problems/")
    raise _BY_SLUG.get(slug, MemoryStoreError)(response.status_code, document)


def _parse(model: type[Model], response: httpx.Response) -> Model:
    raise_for_problem(response)
    return model.model_validate_json(response.content)

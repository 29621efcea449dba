"""One error base class, rendered as RFC 9457 problem+json by the app's handlers.

Every refusal the service makes is a subclass of Problem with a stable `type`. A problem's
detail is written by us, never built from request contents, so it cannot carry a memory.
"""

from __future__ import annotations

from typing import Any, ClassVar


class Problem(Exception):
    """A refusal with an HTTP status and a stable problem type."""

    status: ClassVar[int] = 400
    type_slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extensions = extensions
        self.headers: dict[str, str] = {}
        self.audited = False  # set once its refusal is on the audit trail

    @property
    def type_uri(self) -> str:
        return f"/problems/{self.type_slug}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, type={self.type_uri!r})"


class InvalidRequest(Problem):
    status = 422
    type_slug = "invalid-request"
    title = "The request is not valid"


class MalformedBody(Problem):
    status = 400
    type_slug = "malformed-body"
    title = "The request body is not valid JSON"


class BodyTooLarge(Problem):
    status = 413
    type_slug = "body-too-large"
    title = "The request body is too large"


class UnknownPurpose(Problem):
    status = 422
    type_slug = "unknown-purpose"
    title = "The purpose is not in the catalogue"


class UnknownCategory(Problem):
    status = 422
    type_slug = "unknown-category"
    title = "The category is not in the catalogue"


class InvalidCursor(Problem):
    status = 422
    type_slug = "invalid-cursor"
    title = "The cursor is not one this service issued"


class Unauthenticated(Problem):
    status = 401
    type_slug = "unauthenticated"
    title = "A valid bearer token is required"


class Forbidden(Problem):
    status = 403
    type_slug = "forbidden"
    title = "The policy does not allow this"


class ConsentRequired(Problem):
    status = 403
    type_slug = "consent-required"
    title = "The user has not consented to this purpose for this category"


class MemoryPaused(Problem):
    status = 403
    type_slug = "memory-paused"
    title = "The user has paused memory"


class PreconditionFailed(Problem):
    status = 412
    type_slug = "version-mismatch"
    title = "The memory has changed since you read it"


class RateLimited(Problem):
    status = 429
    type_slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.headers = {"Retry-After": str(retry_after)}


class QuotaExceeded(Problem):
    status = 409
    type_slug = "quota-exceeded"
    title = "The user's memory quota is full"


class SecretRefused(Problem):
    status = 422
    type_slug = "secret-refused"
    title = "The content looks like a secret, which memory-store does not keep"


class NotFound(Problem):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class MemoryUnreadable(Problem):
    """A stored ciphertext failed to decrypt: tampered, moved, or its key was destroyed."""

    status = 410
    type_slug = "memory-unreadable"
    title = "A stored memory can no longer be read"


class KeysUnavailable(Problem):
    status = 503
    type_slug = "keys-unavailable"
    title = "The key-encryption key is not available"


class StorageUnavailable(Problem):
    """The database could not commit a write (locked beyond its timeout, unreachable)."""

    status = 503
    type_slug = "storage-unavailable"
    title = "The database could not store this"

    def __init__(self, detail: str | None = None, **extensions: object) -> None:
        super().__init__(detail or "Nothing was stored; try again", **extensions)


class AuditUnavailable(Problem):
    status = 503
    type_slug = "audit-unavailable"
    title = "The audit trail cannot record this request"

    def __init__(self, detail: str | None = None, **extensions: object) -> None:
        super().__init__(
            detail or "Nothing was read or changed, because it could not be audited; try again",
            **extensions,
        )


class DecryptionError(Exception):
    """The one opaque decryption failure. It says nothing about why, on purpose."""

    def __init__(self) -> None:
        super().__init__("decryption failed")


class KeyProviderError(Exception):
    """The key-encryption key cannot be loaded or used; the service refuses to start."""

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

from collections.abc import Iterator
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import httpx
from pydantic import BaseModel

from memory_store.schemas import (
    AccessLogPage,
    ConsentChangeResult,
    ConsentOverview,
    ContextResult,
    ErasureReceipt,
    MemoryPage,
    MemoryPublic,
    MemoryVersionPublic,
    SettingsPublic,
    UserExport,
    WhoAmI,
)

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


_BY_SLUG: dict[str, type[MemoryStoreError]] = {
    cls.problem_slug: cls
    for cls in (
        Unauthenticated,
        Forbidden,
        ConsentRequired,
        MemoryPaused,
        NotFound,
        VersionMismatch,
        QuotaExceeded,
        RateLimited,
        InvalidRequest,
        SecretRefused,
    )
    if cls.problem_slug
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


def _drop_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class _Requests:
    """What each call sends, shared by the sync and async clients."""

    @staticmethod
    def remember(
        user_id: str,
        content: str,
        category: str,
        purpose: str,
        expires_at: datetime | None,
        source: str | None,
    ) -> tuple[str, str, dict[str, Any]]:
        body = _drop_none(
            {
                "content": content,
                "category": category,
                "expires_at": expires_at.isoformat() if expires_at else None,
                "source": source,
            }
        )
        return (
            "POST",
            f"/v1/users/{user_id}/memories",
            {"params": {"purpose": purpose}, "json": body},
        )

    @staticmethod
    def recall(
        user_id: str,
        purpose: str,
        q: str | None,
        category: str | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[str, str, dict[str, Any]]:
        params = _drop_none(
            {"purpose": purpose, "q": q, "category": category, "limit": limit, "cursor": cursor}
        )
        return "GET", f"/v1/users/{user_id}/memories", {"params": params}

    @staticmethod
    def context(
        user_id: str, purpose: str, q: str | None, limit: int, max_chars: int
    ) -> tuple[str, str, dict[str, Any]]:
        params = _drop_none({"purpose": purpose, "q": q, "limit": limit, "max_chars": max_chars})
        return "GET", f"/v1/users/{user_id}/context", {"params": params}


class MemoryStoreClient:
    """The synchronous client. Use it as a context manager, or call close()."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._http.request(method, path, **kwargs)

    # -- the assistant ---------------------------------------------------------------------

    def remember(
        self,
        user_id: str,
        content: str,
        *,
        category: str,
        purpose: str = "personalization",
        expires_at: datetime | None = None,
        source: str | None = None,
    ) -> MemoryPublic:
        method, path, kwargs = _Requests.remember(
            user_id, content, category, purpose, expires_at, source
        )
        return _parse(MemoryPublic, self._send(method, path, **kwargs))

    def recall(
        self,
        user_id: str,
        *,
        purpose: str = "personalization",
        q: str | None = None,
        category: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> MemoryPage:
        method, path, kwargs = _Requests.recall(user_id, purpose, q, category, limit, cursor)
        return _parse(MemoryPage, self._send(method, path, **kwargs))

    def recall_all(
        self, user_id: str, *, purpose: str = "personalization", q: str | None = None
    ) -> Iterator[MemoryPublic]:
        """Every memory the purpose may use, following the cursors."""
        cursor = None
        while True:
            page = self.recall(user_id, purpose=purpose, q=q, limit=100, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get(
        self, user_id: str, memory_id: str, *, purpose: str = "personalization"
    ) -> MemoryPublic:
        response = self._send(
            "GET", f"/v1/users/{user_id}/memories/{memory_id}", params={"purpose": purpose}
        )
        return _parse(MemoryPublic, response)

    def context(
        self,
        user_id: str,
        *,
        purpose: str = "personalization",
        q: str | None = None,
        limit: int = 10,
        max_chars: int = 2000,
    ) -> ContextResult:
        """The memories most relevant to `q`, best first, within `max_chars`."""
        method, path, kwargs = _Requests.context(user_id, purpose, q, limit, max_chars)
        return _parse(ContextResult, self._send(method, path, **kwargs))

    # -- the user ----------------------------------------------------------------------------

    def whoami(self) -> WhoAmI:
        return _parse(WhoAmI, self._send("GET", "/v1/me"))

    def my_memories(
        self,
        *,
        q: str | None = None,
        category: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> MemoryPage:
        params = _drop_none({"q": q, "category": category, "limit": limit, "cursor": cursor})
        return _parse(MemoryPage, self._send("GET", "/v1/me/memories", params=params))

    def edit(
        self,
        memory_id: str,
        *,
        version: int | None = None,
        content: str | None = None,
        category: str | None = None,
        expires_at: datetime | None = None,
    ) -> MemoryPublic:
        body = _drop_none(
            {
                "content": content,
                "category": category,
                "expires_at": expires_at.isoformat() if expires_at else None,
            }
        )
        headers = {"If-Match": f'"{version}"'} if version is not None else {}
        response = self._send("PATCH", f"/v1/me/memories/{memory_id}", json=body, headers=headers)
        return _parse(MemoryPublic, response)

    def history(self, memory_id: str) -> list[MemoryVersionPublic]:
        response = self._send("GET", f"/v1/me/memories/{memory_id}/history")
        raise_for_problem(response)
        return [MemoryVersionPublic.model_validate(item) for item in response.json()]

    def forget(self, memory_id: str) -> None:
        raise_for_problem(self._send("DELETE", f"/v1/me/memories/{memory_id}"))

    def forget_everything(self) -> ErasureReceipt:
        return _parse(ErasureReceipt, self._send("DELETE", "/v1/me"))

    def consents(self) -> ConsentOverview:
        return _parse(ConsentOverview, self._send("GET", "/v1/me/consents"))

    def set_consent(self, purpose: str, category: str, *, granted: bool) -> ConsentChangeResult:
        response = self._send(
            "PUT", f"/v1/me/consents/{purpose}/{category}", json={"granted": granted}
        )
        return _parse(ConsentChangeResult, response)

    def set_memory_enabled(self, enabled: bool) -> SettingsPublic:
        response = self._send("PATCH", "/v1/me/settings", json={"memory_enabled": enabled})
        return _parse(SettingsPublic, response)

    def access_log(self) -> AccessLogPage:
        return _parse(AccessLogPage, self._send("GET", "/v1/me/access-log"))

    def export(self) -> UserExport:
        return _parse(UserExport, self._send("GET", "/v1/me/export"))


class AsyncMemoryStoreClient:
    """The asynchronous client: the assistant's calls, awaitable."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def remember(
        self,
        user_id: str,
        content: str,
        *,
        category: str,
        purpose: str = "personalization",
        expires_at: datetime | None = None,
        source: str | None = None,
    ) -> MemoryPublic:
        method, path, kwargs = _Requests.remember(
            user_id, content, category, purpose, expires_at, source
        )
        return _parse(MemoryPublic, await self._http.request(method, path, **kwargs))

    async def recall(
        self,
        user_id: str,
        *,
        purpose: str = "personalization",
        q: str | None = None,
        category: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> MemoryPage:
        method, path, kwargs = _Requests.recall(user_id, purpose, q, category, limit, cursor)
        return _parse(MemoryPage, await self._http.request(method, path, **kwargs))

    async def get(
        self, user_id: str, memory_id: str, *, purpose: str = "personalization"
    ) -> MemoryPublic:
        response = await self._http.get(
            f"/v1/users/{user_id}/memories/{memory_id}", params={"purpose": purpose}
        )
        return _parse(MemoryPublic, response)

    async def context(
        self,
        user_id: str,
        *,
        purpose: str = "personalization",
        q: str | None = None,
        limit: int = 10,
        max_chars: int = 2000,
    ) -> ContextResult:
        method, path, kwargs = _Requests.context(user_id, purpose, q, limit, max_chars)
        return _parse(ContextResult, await self._http.request(method, path, **kwargs))

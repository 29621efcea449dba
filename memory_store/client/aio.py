"""The asynchronous client."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Self

import httpx

from memory_store.client.calls import _Requests
from memory_store.client.errors import _parse
from memory_store.schemas import ContextResult, Erasure, MemoryPage, MemoryPublic


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
        method, path, kwargs = _Requests.get(user_id, memory_id, purpose)
        return _parse(MemoryPublic, await self._http.request(method, path, **kwargs))

    async def forget_for_user(
        self, user_id: str, memory_id: str, *, purpose: str = "personalization"
    ) -> Erasure:
        """Forget one of the user's memories on their behalf; the erasure's status."""
        method, path, kwargs = _Requests.forget_for_user(user_id, memory_id, purpose)
        return _parse(Erasure, await self._http.request(method, path, **kwargs))

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

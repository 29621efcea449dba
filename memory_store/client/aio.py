"""The asynchronous client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx

from memory_store.client.calls import _Requests
from memory_store.client.errors import _parse
from memory_store.item_schemas import ItemPage, ItemPublic, NamespaceList
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

    # -- keyed items -------------------------------------------------------------------------

    async def put_item(
        self,
        user_id: str,
        namespace: Sequence[str],
        key: str,
        value: Mapping[str, Any],
        *,
        category: str,
        purpose: str = "personalization",
        expires_at: datetime | None = None,
    ) -> ItemPublic:
        """Store `value` under (namespace, key): created, or replaced as a new version."""
        method, path, kwargs = _Requests.put_item(
            user_id, namespace, key, value, category, purpose, expires_at
        )
        return _parse(ItemPublic, await self._http.request(method, path, **kwargs))

    async def get_item(
        self, user_id: str, namespace: Sequence[str], key: str, *, purpose: str = "personalization"
    ) -> ItemPublic:
        """The item of that name (NotFound when there is none the purpose may see)."""
        body = {"namespace": list(namespace), "key": key}
        method, path, kwargs = _Requests.item(user_id, "lookup", purpose, body)
        return _parse(ItemPublic, await self._http.request(method, path, **kwargs))

    async def forget_item(
        self, user_id: str, namespace: Sequence[str], key: str, *, purpose: str = "personalization"
    ) -> Erasure:
        """Forget the item of that name as any memory is forgotten; the erasure's status."""
        body = {"namespace": list(namespace), "key": key}
        method, path, kwargs = _Requests.item(user_id, "forget", purpose, body)
        return _parse(Erasure, await self._http.request(method, path, **kwargs))

    async def search_items(
        self,
        user_id: str,
        namespace_prefix: Sequence[str] = (),
        *,
        purpose: str = "personalization",
        query: str | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> ItemPage:
        """Items under the prefix matching `filter`, ranked by `query` when given."""
        body = {
            "namespace_prefix": list(namespace_prefix),
            "query": query,
            "filter": dict(filter) if filter is not None else None,
            "limit": limit,
            "offset": offset,
        }
        method, path, kwargs = _Requests.item(user_id, "search", purpose, body)
        return _parse(ItemPage, await self._http.request(method, path, **kwargs))

    async def list_namespaces(
        self,
        user_id: str,
        *,
        purpose: str = "personalization",
        prefix: Sequence[str] | None = None,
        suffix: Sequence[str] | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> NamespaceList:
        """The namespace paths of the user's items (after the user), sorted."""
        body = {
            "prefix": list(prefix) if prefix is not None else None,
            "suffix": list(suffix) if suffix is not None else None,
            "max_depth": max_depth,
            "limit": limit,
            "offset": offset,
        }
        method, path, kwargs = _Requests.item(user_id, "namespaces", purpose, body)
        return _parse(NamespaceList, await self._http.request(method, path, **kwargs))

"""The asynchronous client: the same methods as the synchronous one, awaitable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import TypeAdapter

from memory_store.client.calls import _Requests
from memory_store.client.errors import _parse, raise_for_problem
from memory_store.client.retries import RetryPolicy
from memory_store.item_schemas import ItemPage, ItemPublic, NamespaceList
from memory_store.schemas import (
    AccessLogPage,
    ConsentChangeResult,
    ConsentOverview,
    ContextResult,
    Erasure,
    ErasureReceipt,
    MemoryPage,
    MemoryPublic,
    MemoryVersionPublic,
    SettingsPublic,
    UserExport,
    WhoAmI,
)

_HISTORY = TypeAdapter(list[MemoryVersionPublic])


class AsyncMemoryStoreClient:
    """The asynchronous client. Use it as an async context manager, or await aclose().

    `retry`: how 429, 503 and connections that could not be made are retried (default: 3
    attempts in all, honouring Retry-After up to 30 s); `RetryPolicy(attempts=1)` never
    retries."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self._retry = retry or RetryPolicy()

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

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = await self._retry.async_retrying()(
            self._http.request, method, path, **kwargs
        )
        return response

    # -- the assistant ---------------------------------------------------------------------

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
        return _parse(MemoryPublic, await self._send(method, path, **kwargs))

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
        return _parse(MemoryPage, await self._send(method, path, **kwargs))

    async def recall_all(
        self, user_id: str, *, purpose: str = "personalization", q: str | None = None
    ) -> AsyncIterator[MemoryPublic]:
        """Every memory the purpose may use, following the cursors."""
        cursor = None
        while True:
            page = await self.recall(user_id, purpose=purpose, q=q, limit=100, cursor=cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get(
        self, user_id: str, memory_id: str, *, purpose: str = "personalization"
    ) -> MemoryPublic:
        method, path, kwargs = _Requests.get(user_id, memory_id, purpose)
        return _parse(MemoryPublic, await self._send(method, path, **kwargs))

    async def forget_for_user(
        self, user_id: str, memory_id: str, *, purpose: str = "personalization"
    ) -> Erasure:
        """Forget one of the user's memories on their behalf ("forget that"): its keys, it
        and its history go. The answer is the erasure's status (`final_at`: when no copy of
        it opens anywhere any more)."""
        method, path, kwargs = _Requests.forget_for_user(user_id, memory_id, purpose)
        return _parse(Erasure, await self._send(method, path, **kwargs))

    async def context(
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
        return _parse(ContextResult, await self._send(method, path, **kwargs))

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
        return _parse(ItemPublic, await self._send(method, path, **kwargs))

    async def get_item(
        self, user_id: str, namespace: Sequence[str], key: str, *, purpose: str = "personalization"
    ) -> ItemPublic:
        """The item of that name (NotFound when there is none the purpose may see)."""
        body = {"namespace": list(namespace), "key": key}
        method, path, kwargs = _Requests.item(user_id, "lookup", purpose, body)
        return _parse(ItemPublic, await self._send(method, path, **kwargs))

    async def forget_item(
        self, user_id: str, namespace: Sequence[str], key: str, *, purpose: str = "personalization"
    ) -> Erasure:
        """Forget the item of that name as any memory is forgotten; the erasure's status."""
        body = {"namespace": list(namespace), "key": key}
        method, path, kwargs = _Requests.item(user_id, "forget", purpose, body)
        return _parse(Erasure, await self._send(method, path, **kwargs))

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
        return _parse(ItemPage, await self._send(method, path, **kwargs))

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
        return _parse(NamespaceList, await self._send(method, path, **kwargs))

    # -- the user ----------------------------------------------------------------------------

    async def whoami(self) -> WhoAmI:
        return _parse(WhoAmI, await self._send("GET", "/v1/me"))

    async def my_memories(
        self,
        *,
        q: str | None = None,
        category: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> MemoryPage:
        method, path, kwargs = _Requests.my_memories(q, category, limit, cursor)
        return _parse(MemoryPage, await self._send(method, path, **kwargs))

    async def edit(
        self,
        memory_id: str,
        *,
        version: int | None = None,
        content: str | None = None,
        category: str | None = None,
        expires_at: datetime | None = None,
    ) -> MemoryPublic:
        method, path, kwargs = _Requests.edit(memory_id, version, content, category, expires_at)
        return _parse(MemoryPublic, await self._send(method, path, **kwargs))

    async def history(self, memory_id: str) -> list[MemoryVersionPublic]:
        method, path, kwargs = _Requests.history(memory_id)
        response = await self._send(method, path, **kwargs)
        raise_for_problem(response)
        return _HISTORY.validate_json(response.content)

    async def forget(self, memory_id: str) -> None:
        method, path, kwargs = _Requests.forget(memory_id)
        raise_for_problem(await self._send(method, path, **kwargs))

    async def forget_everything(self) -> ErasureReceipt:
        return _parse(ErasureReceipt, await self._send("DELETE", "/v1/me"))

    async def consents(self) -> ConsentOverview:
        return _parse(ConsentOverview, await self._send("GET", "/v1/me/consents"))

    async def set_consent(
        self, purpose: str, category: str, *, granted: bool
    ) -> ConsentChangeResult:
        method, path, kwargs = _Requests.set_consent(purpose, category, granted)
        return _parse(ConsentChangeResult, await self._send(method, path, **kwargs))

    async def set_memory_enabled(self, enabled: bool) -> SettingsPublic:
        method, path, kwargs = _Requests.set_memory_enabled(enabled)
        return _parse(SettingsPublic, await self._send(method, path, **kwargs))

    async def access_log(self) -> AccessLogPage:
        return _parse(AccessLogPage, await self._send("GET", "/v1/me/access-log"))

    async def export(self) -> UserExport:
        return _parse(UserExport, await self._send("GET", "/v1/me/export"))

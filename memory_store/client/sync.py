"""The synchronous client."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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


class MemoryStoreClient:
    """The synchronous client. Use it as a context manager, or call close().

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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self._retry = retry or RetryPolicy()

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
        response: httpx.Response = self._retry.retrying()(
            self._http.request, method, path, **kwargs
        )
        return response

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
        method, path, kwargs = _Requests.get(user_id, memory_id, purpose)
        return _parse(MemoryPublic, self._send(method, path, **kwargs))

    def forget_for_user(
        self, user_id: str, memory_id: str, *, purpose: str = "personalization"
    ) -> Erasure:
        """Forget one of the user's memories on their behalf ("forget that"): its keys, it
        and its history go. The answer is the erasure's status (`final_at`: when no copy of
        it opens anywhere any more)."""
        method, path, kwargs = _Requests.forget_for_user(user_id, memory_id, purpose)
        return _parse(Erasure, self._send(method, path, **kwargs))

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

    # -- keyed items -------------------------------------------------------------------------

    def put_item(
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
        return _parse(ItemPublic, self._send(method, path, **kwargs))

    def get_item(
        self, user_id: str, namespace: Sequence[str], key: str, *, purpose: str = "personalization"
    ) -> ItemPublic:
        """The item of that name (NotFound when there is none the purpose may see)."""
        body = {"namespace": list(namespace), "key": key}
        method, path, kwargs = _Requests.item(user_id, "lookup", purpose, body)
        return _parse(ItemPublic, self._send(method, path, **kwargs))

    def forget_item(
        self, user_id: str, namespace: Sequence[str], key: str, *, purpose: str = "personalization"
    ) -> Erasure:
        """Forget the item of that name as any memory is forgotten; the erasure's status."""
        body = {"namespace": list(namespace), "key": key}
        method, path, kwargs = _Requests.item(user_id, "forget", purpose, body)
        return _parse(Erasure, self._send(method, path, **kwargs))

    def search_items(
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
        return _parse(ItemPage, self._send(method, path, **kwargs))

    def list_namespaces(
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
        return _parse(NamespaceList, self._send(method, path, **kwargs))

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
        method, path, kwargs = _Requests.my_memories(q, category, limit, cursor)
        return _parse(MemoryPage, self._send(method, path, **kwargs))

    def edit(
        self,
        memory_id: str,
        *,
        version: int | None = None,
        content: str | None = None,
        category: str | None = None,
        expires_at: datetime | None = None,
    ) -> MemoryPublic:
        method, path, kwargs = _Requests.edit(memory_id, version, content, category, expires_at)
        return _parse(MemoryPublic, self._send(method, path, **kwargs))

    def history(self, memory_id: str) -> list[MemoryVersionPublic]:
        method, path, kwargs = _Requests.history(memory_id)
        response = self._send(method, path, **kwargs)
        raise_for_problem(response)
        return _HISTORY.validate_json(response.content)

    def forget(self, memory_id: str) -> None:
        method, path, kwargs = _Requests.forget(memory_id)
        raise_for_problem(self._send(method, path, **kwargs))

    def forget_everything(self) -> ErasureReceipt:
        return _parse(ErasureReceipt, self._send("DELETE", "/v1/me"))

    def consents(self) -> ConsentOverview:
        return _parse(ConsentOverview, self._send("GET", "/v1/me/consents"))

    def set_consent(self, purpose: str, category: str, *, granted: bool) -> ConsentChangeResult:
        method, path, kwargs = _Requests.set_consent(purpose, category, granted)
        return _parse(ConsentChangeResult, self._send(method, path, **kwargs))

    def set_memory_enabled(self, enabled: bool) -> SettingsPublic:
        method, path, kwargs = _Requests.set_memory_enabled(enabled)
        return _parse(SettingsPublic, self._send(method, path, **kwargs))

    def access_log(self) -> AccessLogPage:
        return _parse(AccessLogPage, self._send("GET", "/v1/me/access-log"))

    def export(self) -> UserExport:
        return _parse(UserExport, self._send("GET", "/v1/me/export"))

"""memory-store as a LangGraph store: `graph.compile(store=MemoryStore(url, token))`.

A namespace's first label is the user the memory is about; the labels after it are the
item's namespace path, and keys are the item's key (both stored encrypted, found by a keyed
hash: see the server's keyed items). Values are JSON objects, returned exactly as put; the
category is the value's `category` field, else `default_category`. Every call goes to the
server through the Python client, with the token and the declared purpose: the host holds no
key and no database, and the server's policy, consent, secret guard and audit trail apply.

What differs from LangGraph's own stores, deliberately:
- a read the user's choices refuse (a category withdrawn, memory paused, a stranger) finds
  nothing: `get` answers None and `search` leaves the item out, as if it were not there;
  a refused write raises the client's error (ConsentRequired, MemoryPaused, ...);
- `search` and `list_namespaces` need the user: a namespace prefix whose first label is
  the user id (no listing across people);
- TTL (minutes) sets the item's expiry, within its category's retention; reading does not
  extend it (`refresh_ttl` is ignored: a read changes nothing);
- `index` (vector search) is ignored: `query` ranks by the server's recall (BM25).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from memory_store.client import MemoryStoreClient, MemoryStoreError
from memory_store.clock import utc_now
from memory_store.integrations._async_client import LoopClient
from memory_store.item_schemas import ItemPage, ItemPublic

__all__ = ["MemoryStore"]

_PAGE = 1000  # namespaces fetched at once to be matched here
_MAX_QUERY = 256  # the API's bound on a query


def _split(namespace: tuple[str, ...]) -> tuple[str, list[str]]:
    if not namespace:
        raise ValueError("memory-store namespaces start with the user id: (user_id, ...)")
    return namespace[0], list(namespace[1:])


def _user_of_prefix(prefix: tuple[str, ...]) -> str:
    if not prefix or prefix[0] == "*":
        raise ValueError(
            "memory-store searches one user's memories: the namespace prefix must start "
            "with the user id"
        )
    return prefix[0]


def _item(found: ItemPublic) -> Item:
    return Item(
        value=found.value,
        key=found.key,
        namespace=(found.user_id, *found.namespace),
        created_at=found.created_at,
        updated_at=found.updated_at,
    )


def _search_item(found: ItemPublic) -> SearchItem:
    return SearchItem(
        namespace=(found.user_id, *found.namespace),
        key=found.key,
        value=found.value,
        created_at=found.created_at,
        updated_at=found.updated_at,
        score=found.score,
    )


def _matches(namespace: tuple[str, ...], path: tuple[str, ...], suffix: bool) -> bool:
    if len(namespace) < len(path):
        return False
    ends = namespace[len(namespace) - len(path) :] if suffix else namespace[: len(path)]
    return all(p in ("*", n) for n, p in zip(ends, path, strict=True))


def _namespaces(
    user_id: str, paths: list[list[str]], op: ListNamespacesOp
) -> list[tuple[str, ...]]:
    """LangGraph's matching, over the full namespaces (the user's id first)."""
    found = {(user_id, *path) for path in paths}
    for condition in op.match_conditions or ():
        suffix = condition.match_type == "suffix"
        found = {ns for ns in found if _matches(ns, tuple(condition.path), suffix)}
    if op.max_depth is not None:
        found = {ns[: op.max_depth] for ns in found}
    return sorted(found)[op.offset : op.offset + op.limit]


def _prefix_of(op: ListNamespacesOp) -> tuple[str, ...]:
    for condition in op.match_conditions or ():
        if condition.match_type == "prefix":
            return tuple(condition.path)
    return ()


class MemoryStore(BaseStore):
    """A LangGraph `BaseStore` on a memory-store server."""

    supports_ttl = True

    def __init__(
        self,
        url: str,
        token: str,
        *,
        purpose: str = "personalization",
        default_category: str = "preferences",
        timeout: float = 10.0,
    ) -> None:
        self.purpose = purpose
        self.default_category = default_category
        self._client = MemoryStoreClient(url, token, timeout=timeout)
        self._async = LoopClient(url, token, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def _put_arguments(self, op: PutOp) -> dict[str, Any]:
        value = dict(op.value or {})
        category = value.get("category")
        expires_at = None
        if op.ttl is not None:
            expires_at = utc_now() + timedelta(minutes=op.ttl)
        return {
            "category": category if isinstance(category, str) else self.default_category,
            "purpose": self.purpose,
            "expires_at": expires_at,
        }

    def _call(self, op: Op) -> _Call:
        """The client call an operation is, how its answer reads, and which refusals mean
        that there is nothing (and what nothing is)."""
        purpose = self.purpose
        if isinstance(op, GetOp):
            user_id, path = _split(op.namespace)
            return _Call("get_item", (user_id, path, op.key), {"purpose": purpose}, _item, None)
        if isinstance(op, PutOp):
            user_id, path = _split(op.namespace)
            if op.value is None:  # a delete: one not there is done
                args = (user_id, path, op.key)
                return _Call("forget_item", args, {"purpose": purpose}, _none, None, (404,))
            kwargs = self._put_arguments(op)
            return _Call("put_item", (user_id, path, op.key, op.value), kwargs, _none, None, ())
        if isinstance(op, SearchOp):
            user_id = _user_of_prefix(op.namespace_prefix)
            kwargs = {
                "purpose": purpose,
                # No query ranks nothing; the server ranks on a query's first 256 characters.
                "query": op.query[:_MAX_QUERY] if op.query else None,
                "filter": op.filter,
                "limit": op.limit,
                "offset": op.offset,
            }
            prefix_args = (user_id, op.namespace_prefix[1:])
            return _Call("search_items", prefix_args, kwargs, _search_items, [])
        if isinstance(op, ListNamespacesOp):
            prefix = _prefix_of(op)
            user_id = _user_of_prefix(prefix)
            kwargs = {"purpose": purpose, "prefix": list(prefix[1:]), "limit": _PAGE}
            return _Call(
                "list_namespaces",
                (user_id,),
                kwargs,
                lambda listed: _namespaces(user_id, listed.namespaces, op),
                [],
            )
        raise TypeError(f"unknown operation {type(op).__name__}")

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        results = []
        for op in ops:
            call = self._call(op)
            try:
                answer = getattr(self._client, call.method)(*call.args, **call.kwargs)
            except MemoryStoreError as refused:
                results.append(call.refused(refused))
                continue
            results.append(call.answer(answer))
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        client = self._async.get()
        results = []
        for op in ops:
            call = self._call(op)
            try:
                answer = await getattr(client, call.method)(*call.args, **call.kwargs)
            except MemoryStoreError as refused:
                results.append(call.refused(refused))
                continue
            results.append(call.answer(answer))
        return results


def _none(_: object) -> None:
    return None


def _search_items(page: ItemPage) -> list[SearchItem]:
    return [_search_item(found) for found in page.items]


@dataclass(frozen=True)
class _Call:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    answer: Callable[[Any], Result]
    nothing: Result
    # Refusals that mean "nothing there": for reads, not found and the policy's refusal
    # (a withdrawn category, memory paused, a stranger); for a delete, not found only.
    quiet: tuple[int, ...] = (403, 404)

    def refused(self, refusal: MemoryStoreError) -> Result:
        if refusal.status in self.quiet:
            return self.nothing
        raise refusal

"""The hottest routes served without FastAPI's routing and dependency solving, which cost more
per request than the rest of the framework together (benchmarks/HISTORY.md, issue 14): the
assistant's write, list and get one, and a user's list and get of their own memories.

`HotRoutes` is the innermost of the app's middleware, so the request id, the body limit, the
access log line and the security headers are the same as on every other route. For a request
to one of those routes it parses the path, the query and the body with the very types the
routes declare (deps.py, schemas.py), authenticates the caller as `get_principal` does, and
calls the same answer functions as the routes (assistant.py, me.py). Refusals go through the app's
own exception handlers, so they are recorded and rendered as on the documented path.

Anything it does not recognise as well formed (a parameter missing, repeated or invalid, a
body that is not JSON or does not validate, another content type, a root path) goes to
FastAPI unchanged, body and all, before anything is authenticated or counted: FastAPI then
answers exactly as it always has (401 before 422, the same problem details). So there is one
definition of each parameter, and the 4xx answers have one author.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memory_store.api import assistant, me
from memory_store.api.deps import (
    CategoryQuery,
    CursorQuery,
    LimitQuery,
    MemoryIdPath,
    PurposeQuery,
    SearchQuery,
    UserIdPath,
    principal_of,
)
from memory_store.domain import Principal
from memory_store.schemas import MemoryCreate
from memory_store.services.container import Services
from memory_store.services.memories import ListQuery

_USER_ID: TypeAdapter[str] = TypeAdapter(UserIdPath)
_MEMORY_ID: TypeAdapter[str] = TypeAdapter(MemoryIdPath)
_PURPOSE: TypeAdapter[str] = TypeAdapter(PurposeQuery)
_LIST_QUERY: dict[str, TypeAdapter[Any]] = {
    "category": TypeAdapter(CategoryQuery),
    "q": TypeAdapter(SearchQuery),
    "limit": TypeAdapter(LimitQuery),
    "cursor": TypeAdapter(CursorQuery),
}
# Starlette's own pattern for a path parameter: one segment, at least one character.
_SEGMENT = "([^/]+)"

# What a hot route does once parsed and the caller known: an answer function of its router.
Answer = Callable[[Services, Principal], Awaitable[Response]]
# A route's parser: the path's parameters, the query's and the body in; the answer (its
# arguments bound) out. It raises _Refused to leave the request to FastAPI.
Parser = Callable[[list[str], dict[str, str], bytes | None], Answer]
# One of the app's exception handlers.
Handler = Callable[[Request, Exception], Awaitable[Response]]


class _Refused(Exception):
    """A parameter or the body did not validate: FastAPI answers this request."""


def _valid(adapter: TypeAdapter[Any], value: str | None) -> Any:
    if value is None:
        raise _Refused
    try:
        return adapter.validate_python(value)
    except ValidationError:
        raise _Refused from None


def _purpose(query: dict[str, str]) -> str:
    result: str = _valid(_PURPOSE, query.get("purpose"))
    return result


def _parse_write(path: list[str], query: dict[str, str], body: bytes | None) -> Answer:
    user_id, purpose = _valid(_USER_ID, path[0]), _purpose(query)
    if not body:
        raise _Refused
    try:
        memory = MemoryCreate.model_validate(json.loads(body))
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError included
        raise _Refused from None
    return lambda services, principal: assistant.write_answer(
        services, principal, user_id, purpose, memory
    )


def _listing(query: dict[str, str]) -> ListQuery:
    rules = _LIST_QUERY.items()
    return ListQuery(**{name: _valid(rule, query[name]) for name, rule in rules if name in query})


def _parse_list(path: list[str], query: dict[str, str], body: bytes | None) -> Answer:
    user_id, purpose, listing = _valid(_USER_ID, path[0]), _purpose(query), _listing(query)
    return lambda services, principal: assistant.list_answer(
        services, principal, user_id, purpose, listing
    )


def _parse_get(path: list[str], query: dict[str, str], body: bytes | None) -> Answer:
    user_id, memory_id = _valid(_USER_ID, path[0]), _valid(_MEMORY_ID, path[1])
    purpose = _purpose(query)
    return lambda services, principal: assistant.get_answer(
        services, principal, user_id, memory_id, purpose
    )


def _parse_my_list(path: list[str], query: dict[str, str], body: bytes | None) -> Answer:
    listing = _listing(query)
    return lambda services, principal: me.list_own_answer(services, principal, listing)


def _parse_my_get(path: list[str], query: dict[str, str], body: bytes | None) -> Answer:
    memory_id = _valid(_MEMORY_ID, path[0])
    return lambda services, principal: me.get_own_answer(services, principal, memory_id)


class HotRoute:
    """One hot route: its method, FastAPI's path template for it (the access log and the
    records name the route by it) and its parser."""

    def __init__(self, method: str, path: str, parse: Parser) -> None:
        self.method, self.path, self.parse = method, path, parse
        self.names = re.findall(r"\{([a-z_]+)\}", path)
        self.pattern = re.compile(re.sub(r"\{[a-z_]+\}", _SEGMENT, path))


HOT_ROUTES = (
    HotRoute("POST", "/v1/users/{user_id}/memories", _parse_write),
    HotRoute("GET", "/v1/users/{user_id}/memories", _parse_list),
    HotRoute("GET", "/v1/users/{user_id}/memories/{memory_id}", _parse_get),
    HotRoute("GET", "/v1/me/memories", _parse_my_list),
    HotRoute("GET", "/v1/me/memories/{memory_id}", _parse_my_get),
)


def _is_json(content_type: bytes | None) -> bool:
    """Only what FastAPI parses as JSON without doubt; anything else is left to it."""
    if content_type is None:
        return False
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json"


class HotRoutes:
    """ASGI middleware serving the hot routes; see the module's docstring. `api.state.
    hot_routes` (True unless set otherwise) turns it on and off, for tests that compare
    both paths."""

    def __init__(self, app: ASGIApp, *, api: FastAPI) -> None:
        self.app = app
        self._api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("root_path") or not self._api.state.hot_routes:
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        for hot in HOT_ROUTES:
            if hot.method == method and (matched := hot.pattern.fullmatch(path)):
                await self._serve(hot, list(matched.groups()), scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(
        self, hot: HotRoute, path: list[str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        authorization: str | None = None
        content_type: bytes | None = None
        for name, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value
        body: bytes | None = None
        if hot.method == "POST":
            message = await receive()  # the whole body: RequestContextMiddleware buffered it
            body = message.get("body", b"")
            receive = _replay(message, receive)
        answer: Answer | None = None
        query = _query(scope["query_string"])
        if query is not None and (hot.method != "POST" or _is_json(content_type)):
            with contextlib.suppress(_Refused):
                answer = hot.parse(path, query, body)
        if answer is None:  # FastAPI says what is wrong, as it always has
            await self.app(scope, receive, send)
            return
        scope["route"] = hot
        scope["path_params"] = dict(zip(hot.names, path, strict=True))
        state = self._api.state
        services: Services = state.services
        client = scope.get("client")
        address = client[0] if client else "-"
        try:
            principal = await principal_of(scope, services, state.limits, authorization, address)
            response = await answer(services, principal)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:  # a bug: the server's error middleware answers 500
                raise
            response = await handler(Request(scope, receive), exc)
        await response(scope, receive, send)

    def _handler(
        self, exc: Exception
    ) -> Callable[[Request, Exception], Awaitable[Response]] | None:
        """The app's handler for `exc`, as Starlette's exception middleware finds it; the
        handler of `Exception` belongs to the server error middleware, outside this one."""
        handlers = self._api.exception_handlers
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                handler: Any = handlers[cls]
                return handler  # type: ignore[no-any-return]
        return None


def _query(query_string: bytes) -> dict[str, str] | None:
    """The query's parameters as Starlette parses them; None when a name is repeated (which
    value a route takes is then FastAPI's to say)."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    query = dict(pairs)
    return query if len(query) == len(pairs) else None


def _replay(message: Message, receive: Receive) -> Receive:
    """`receive`, with the message already taken handed out first."""
    pending = [message]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay

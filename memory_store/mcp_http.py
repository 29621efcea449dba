"""`/mcp`: the MCP tools served by the server itself, over the streamable HTTP transport.

    POST /mcp?user_id=alice&purpose=personalization      Authorization: Bearer <token>

Every HTTP request to /mcp is authenticated as an API request is (api/deps.authenticate: the
token looked up each time, so a revoked token fails the next call; the same rate limits), and
names in its query whose memories and why (purpose defaults to personalization). The tools
(mcp_server) run on the server's services as that request's principal: the same policy,
consent, secret guard and audit trail as the API, with no HTTP hop back to itself. The
transport is stateless with JSON answers: each POST stands alone, so any worker process of
`serve --workers N` can answer it and no session outlives a revocation.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import ValidationError
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from memory_store.api.deps import authenticate
from memory_store.api.limits import Limits
from memory_store.api.problems import log_key_provider_failure, log_unexpected, problem_response
from memory_store.domain import AuditAction, Principal
from memory_store.errors import InvalidRequest, KeyProviderError, Problem
from memory_store.mcp_server import build_server, refusal
from memory_store.policy.catalogue import Catalogue
from memory_store.schemas import (
    USER_ID_PATTERN,
    USER_ID_RULE,
    ContextResult,
    Erasure,
    MemoryCreate,
    MemoryPage,
    MemoryPublic,
)
from memory_store.services.container import Services
from memory_store.services.memories import ListQuery

MCP_PATH = "/mcp"
DEFAULT_PURPOSE = "personalization"
_CALL = "mcp_call"  # the request state's key for the caller the endpoint authenticated
T = TypeVar("T")


class McpNotServing(Problem):
    """Only an app whose lifespan has not started (a test client outside `with`)."""

    status = 503
    type_slug = "mcp-not-serving"
    title = "MCP is not being served yet"


@dataclass(frozen=True)
class McpCall:
    """Who calls, for whom and why: one HTTP request to /mcp."""

    services: Services
    principal: Principal
    user_id: str
    purpose: str

    def refused(self, problem: Problem, action: AuditAction) -> None:
        """Record a refusal the use case did not record itself (services/refusals.py)."""
        self.services.refusals.record(
            self.principal,
            problem,
            method="POST",
            route=MCP_PATH,
            path={"user_id": self.user_id},
            query={"purpose": self.purpose},
            action=action,
        )


class ServiceMemories:
    """The tools' Memories at /mcp: the services, as the request's principal. Each call runs
    in the request thread pool (it reads and writes the databases), as the API's routes do."""

    def __init__(self, call: McpCall) -> None:
        self._call = call
        self._memories = call.services.memories

    async def remember(
        self, content: str, category: str, expires_at: datetime | None
    ) -> MemoryPublic:
        call = self._call
        try:
            body = MemoryCreate(content=content, category=category, expires_at=expires_at)
        except ValidationError:  # its text would quote the content
            invalid = InvalidRequest("The content or category is not valid")
            await anyio.to_thread.run_sync(partial(call.refused, invalid, AuditAction.memory_write))
            raise _refused(invalid) from None
        return await _run(
            call,
            AuditAction.memory_write,
            self._memories.write,
            call.principal,
            call.user_id,
            call.purpose,
            body,
        )

    async def recall(self, query: str, limit: int, max_chars: int) -> ContextResult:
        call = self._call
        context = partial(self._memories.context, q=query, limit=limit, max_chars=max_chars)
        return await _run(
            call, AuditAction.memory_context, context, call.principal, call.user_id, call.purpose
        )

    async def list(self, category: str | None, limit: int, cursor: str | None) -> MemoryPage:
        call = self._call
        query = ListQuery(category=category, limit=limit, cursor=cursor)
        return await _run(
            call,
            AuditAction.memory_list,
            self._memories.list_for_purpose,
            call.principal,
            call.user_id,
            call.purpose,
            query,
        )

    async def forget(self, memory_id: str) -> Erasure:
        call = self._call
        return await _run(
            call,
            AuditAction.memory_delete,
            self._memories.forget_for_purpose,
            call.principal,
            call.user_id,
            memory_id,
            call.purpose,
        )


def _refused(problem: Problem) -> ToolError:
    return refusal(problem.type_uri, problem.title, problem.detail)


async def _run(call: McpCall, action: AuditAction, use_case: Callable[..., T], *args: Any) -> T:
    """A use case off the event loop; its refusal recorded (as the API's would be) and
    answered as a tool error, as the API would say it."""
    try:
        return await anyio.to_thread.run_sync(partial(use_case, *args))
    except Problem as problem:
        await anyio.to_thread.run_sync(partial(call.refused, problem, action))
        raise _refused(problem) from None
    except KeyProviderError as exc:
        raise _refused(log_key_provider_failure(exc)) from None
    except Exception as exc:
        # A bug: logged as the app logs one (where, not the message, which may quote data).
        log_unexpected(exc)
        raise ToolError("Internal error: the service failed") from None


class McpEndpoint:
    """The ASGI app at /mcp: authenticate the request, then hand it to the MCP transport."""

    def __init__(self, catalogue: Catalogue, *, max_body_bytes: int) -> None:
        self._catalogue = catalogue
        self._max_body_bytes = max_body_bytes
        self._server = build_server(self._memories_for, catalogue)
        self._manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Run the transport for the app's lifespan (a new session manager each time: one
        runs only once)."""
        self._server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=True,
            max_request_body_size=self._max_body_bytes,
            # Its DNS-rebinding check would refuse any Host but localhost; a bearer token,
            # which a rebound page does not hold, is what protects this endpoint.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        manager = self._server.session_manager
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)  # headers and query only: the body is the transport's
        try:
            call = await self._authenticated(request)
            if self._manager is None:
                raise McpNotServing("The server is starting or stopping; try again")
        except Problem as problem:
            await problem_response(problem, request)(scope, receive, send)
            return
        setattr(request.state, _CALL, call)
        await self._manager.handle_request(scope, receive, send)

    async def _authenticated(self, request: Request) -> McpCall:
        """The caller first (401 before anything else, as for the API), then the query."""
        services: Services = request.app.state.services
        limits: Limits = request.app.state.limits
        address = request.client.host if request.client else "-"
        principal = await anyio.to_thread.run_sync(
            authenticate, services, limits, request.headers.get("authorization"), address
        )
        user_id = request.query_params.get("user_id", "")
        purpose = request.query_params.get("purpose", DEFAULT_PURPOSE)
        call = McpCall(services, principal, user_id, purpose)
        try:
            if not re.fullmatch(USER_ID_PATTERN, user_id):
                raise InvalidRequest(
                    f"Name whose memories in the query: /mcp?user_id=<{USER_ID_RULE}>"
                    "&purpose=<a purpose of the catalogue>",
                    errors=[{"loc": ["query", "user_id"], "type": "string_pattern_mismatch"}],
                )
            self._catalogue.purpose(purpose)  # 422 unknown-purpose now, not at every call
        except Problem as problem:  # an authenticated caller's refusal: on the trail
            await anyio.to_thread.run_sync(
                partial(call.refused, problem, AuditAction.request_refused)
            )
            raise
        return McpCall(services, principal, user_id, purpose)

    def _memories_for(self, ctx: Context) -> ServiceMemories:
        request = ctx.request_context.request
        call = getattr(getattr(request, "state", None), _CALL, None)
        if not isinstance(call, McpCall):  # every request to /mcp comes through __call__
            raise ToolError("This call did not come through the authenticated endpoint")
        return ServiceMemories(call)


class McpRoute(Route):
    """/mcp, named in the access log as the API's routes are (their template)."""

    def __init__(self, endpoint: McpEndpoint) -> None:
        # POST only: stateless, the server has nothing to push on a GET stream (which would
        # stay open for as long as the caller likes) and no session to DELETE.
        super().__init__(MCP_PATH, endpoint, methods=["POST"], include_in_schema=False)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope

"""Dependencies shared by the routers: the services, the caller, common parameters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from memory_store.api.limits import Limits
from memory_store.domain import Principal, Role
from memory_store.errors import Unauthenticated
from memory_store.schemas import USER_ID_PATTERN, USER_ID_RULE
from memory_store.services.container import Services
from memory_store.services.memories import ListQuery

# Declared for the OpenAPI document ("Authorize" in /docs); the header is checked below.
_bearer = HTTPBearer(auto_error=False, description="A token from `memory-store tokens create`.")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, as every refusal is answered."""

    type: str
    title: str
    status: int
    detail: str | None = None
    request_id: str


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for refusals, as they are sent: application/problem+json. Every
    authenticated route can also answer 429 (rate limit) and 503 (keys or audit trail
    unavailable), so those are always listed."""
    schema = {"$ref": "#/components/schemas/ProblemDetails"}
    return {
        status: {
            "description": "A refusal, as RFC 9457 problem details.",
            "content": {"application/problem+json": {"schema": schema}},
            **(
                {"headers": {"Retry-After": {"schema": {"type": "integer"}}}}
                if status == 429
                else {}
            ),
        }
        for status in sorted({*statuses, 429, 503})
    }


# FastAPI runs a plain `def` dependency or endpoint in the thread pool (one hand-off to a
# thread and back, each time) and an `async def` one on the event loop. Those that do no I/O
# are `async def`; those that touch a database stay `def`, so they never block the loop.


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def identify(
    services: Services, limits: Limits, authorization: str | None, address: str
) -> Principal:
    """The caller of one request, from its Authorization header, with the rate limits
    applied: a database lookup on every request, so that a revocation holds at once in every
    process. Raises Unauthenticated (not yet recorded: see `authenticate`)."""
    try:
        principal = services.tokens.authenticate(authorization)
    except Unauthenticated:
        # Limit guessing per client address first, so a flood of bad tokens cannot flood
        # the audit trail with its refusals either.
        limits.check_address(address)
        raise
    limits.check_token(principal.token_id, is_assistant=principal.role is Role.assistant)
    return principal


def authenticate(
    services: Services, limits: Limits, authorization: str | None, address: str
) -> Principal:
    """`identify`, with a refusal recorded on the trail. The MCP endpoint (/mcp) comes
    through here, from a thread."""
    try:
        return identify(services, limits, authorization, address)
    except Unauthenticated as problem:
        services.tokens.refuse(problem)
        raise


async def get_principal(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from their bearer token. It stays a dependency, resolved before the
    parameters are validated, so that a caller without a valid token learns nothing about
    the API beyond 401."""
    address = request.client.host if request.client else "-"
    authorization = request.headers.get("authorization")
    limits: Limits = request.app.state.limits
    return await principal_of(request.scope, services, limits, authorization, address)


async def principal_of(
    scope: Scope, services: Services, limits: Limits, authorization: str | None, address: str
) -> Principal:
    """`identify`, for a request on the event loop. On SQLite the token's lookup (one
    indexed read of a local file) runs inline: shorter than the hand-off to a thread and
    back. Elsewhere, and for a refusal's record (a commit), it goes to a thread. The caller
    is kept in the request's state, for the record of a refusal should the request fail."""
    try:
        if services.inline_reads:
            principal = identify(services, limits, authorization, address)
        else:
            principal = await run_in_threadpool(identify, services, limits, authorization, address)
    except Unauthenticated as problem:
        await run_in_threadpool(services.tokens.refuse, problem)
        raise
    scope.setdefault("state", {})["principal"] = principal
    return principal


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
UserIdPath = Annotated[
    str, Path(pattern=USER_ID_PATTERN, description=f"A user id: {USER_ID_RULE}.")
]
MemoryIdPath = Annotated[str, Path(min_length=1, max_length=64)]
PurposeQuery = Annotated[
    str,
    Query(min_length=1, max_length=64, description="Why the memory is used (see the catalogue)."),
]


CategoryQuery = Annotated[str | None, Query(min_length=1, max_length=64)]
SearchQuery = Annotated[
    str | None, Query(min_length=1, max_length=256, description="Keywords, all must match.")
]
LimitQuery = Annotated[int, Query(ge=1, le=100)]
CursorQuery = Annotated[str | None, Query(min_length=1, max_length=512)]


async def list_query(
    category: CategoryQuery = None,
    q: SearchQuery = None,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> ListQuery:
    return ListQuery(category=category, q=q, limit=limit, cursor=cursor)


ListQueryDep = Annotated[ListQuery, Depends(list_query)]

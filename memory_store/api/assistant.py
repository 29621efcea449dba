"""The assistant's routes: write and read a user's memories for a declared purpose."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from starlette.concurrency import run_in_threadpool

from memory_store.api.deps import (
    ListQueryDep,
    MemoryIdPath,
    PrincipalDep,
    PurposeQuery,
    ServicesDep,
    UserIdPath,
    problem_responses,
)
from memory_store.api.erasures import ERASURE_RESPONSES, PreferHeader, erasure_answer
from memory_store.api.responses import model_response
from memory_store.domain import Principal
from memory_store.pending import run_steps_async, run_steps_off_loop
from memory_store.schemas import ContextResult, MemoryCreate, MemoryPage, MemoryPublic
from memory_store.services.container import Services
from memory_store.services.memories import ListQuery

router = APIRouter(prefix="/v1/users/{user_id}/memories", tags=["assistant"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MemoryPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
)
async def write_memory(
    user_id: UserIdPath,
    purpose: PurposeQuery,
    body: MemoryCreate,
    principal: PrincipalDep,
    services: ServicesDep,
) -> Response:
    """Store a new memory about `user_id`, encrypted under that user's key."""
    return await write_answer(services, principal, user_id, purpose, body)


@router.get("", response_model=MemoryPage, responses=problem_responses(401, 403, 404, 410, 422))
async def list_memories(
    user_id: UserIdPath,
    purpose: PurposeQuery,
    query: ListQueryDep,
    principal: PrincipalDep,
    services: ServicesDep,
) -> Response:
    """The user's memories that `purpose` may use, newest first."""
    return await list_answer(services, principal, user_id, purpose, query)


@router.get(
    "/{memory_id}",
    response_model=MemoryPublic,
    responses=problem_responses(401, 403, 404, 410, 422),
)
async def get_memory(
    user_id: UserIdPath,
    memory_id: MemoryIdPath,
    purpose: PurposeQuery,
    principal: PrincipalDep,
    services: ServicesDep,
) -> Response:
    """One memory, if `purpose` may use its category."""
    return await get_answer(services, principal, user_id, memory_id, purpose)


# What the three routes above do once their parameters are parsed and the caller known:
# FastAPI's routes and the hot-route dispatcher (hot_routes.py) both call these.


async def write_answer(
    services: Services, principal: Principal, user_id: str, purpose: str, body: MemoryCreate
) -> Response:
    steps = services.memories.write_steps(principal, user_id, purpose, body)
    if services.inline_reads:  # checks inline; each commit awaited, holding no thread
        memory = await run_steps_async(steps)
    else:  # checks in a thread; each commit awaited on the loop, holding no thread
        memory = await run_steps_off_loop(steps)
    location = f"/v1/users/{user_id}/memories/{memory.id}?purpose={purpose}"
    return model_response(memory, status_code=201, headers={"Location": location})


async def list_answer(
    services: Services, principal: Principal, user_id: str, purpose: str, query: ListQuery
) -> Response:
    memories = services.memories
    if query.q:  # a search decrypts to match: in a thread
        page = await run_in_threadpool(
            memories.list_for_purpose, principal, user_id, purpose, query
        )
    elif services.inline_reads:  # short indexed reads inline; the record awaited on the loop
        pending = memories.begin_list_for_purpose(principal, user_id, purpose, query)
        page = await pending.answered()
    else:  # the reads in threads; the record's commit awaited on the loop, holding no thread
        pending = await run_in_threadpool(
            memories.begin_list_for_purpose, principal, user_id, purpose, query
        )
        page = await pending.answered_off_loop()
    return model_response(page)


async def get_answer(
    services: Services, principal: Principal, user_id: str, memory_id: str, purpose: str
) -> Response:
    memories = services.memories
    if services.inline_reads:
        pending = memories.begin_get_for_purpose(principal, user_id, memory_id, purpose)
        memory = await pending.answered()
    else:
        pending = await run_in_threadpool(
            memories.begin_get_for_purpose, principal, user_id, memory_id, purpose
        )
        memory = await pending.answered_off_loop()
    return model_response(memory)


@router.delete(
    "/{memory_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**ERASURE_RESPONSES, **problem_responses(401, 403, 404, 422)},
    response_class=Response,
)
def forget_memory(
    user_id: UserIdPath,
    memory_id: MemoryIdPath,
    purpose: PurposeQuery,
    principal: PrincipalDep,
    services: ServicesDep,
    prefer: PreferHeader = None,
) -> Response:
    """Forget one memory on the user's behalf (\"forget that\"): its keys, it and its history
    go. The erasure's status is at `Location`."""
    erasure = services.memories.forget_for_purpose(principal, user_id, memory_id, purpose)
    return erasure_answer(erasure, prefer)


context_router = APIRouter(prefix="/v1/users/{user_id}/context", tags=["assistant"])


@context_router.get("", responses=problem_responses(401, 403, 404, 410, 422))
def get_context(
    user_id: UserIdPath,
    purpose: PurposeQuery,
    principal: PrincipalDep,
    services: ServicesDep,
    q: Annotated[
        str | None, Query(min_length=1, max_length=256, description="What the turn is about.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    max_chars: Annotated[int, Query(ge=1, le=20_000)] = 2000,
) -> ContextResult:
    """The memories most relevant to `q`, best first, within `max_chars` characters: what an
    assistant puts in front of the model for one turn. Audited like any read."""
    return services.memories.context(
        principal, user_id, purpose, q=q, limit=limit, max_chars=max_chars
    )

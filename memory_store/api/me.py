"""A user's own routes: everything kept about the caller, and their rights over it."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from starlette.concurrency import run_in_threadpool

from memory_store.api.deps import (
    ListQueryDep,
    MemoryIdPath,
    PrincipalDep,
    ServicesDep,
    problem_responses,
)
from memory_store.api.erasures import ERASURE_RESPONSES, PreferHeader, erasure_answer
from memory_store.api.responses import model_response
from memory_store.domain import Principal
from memory_store.errors import InvalidRequest
from memory_store.schemas import (
    AccessLogPage,
    CategoryErasure,
    ErasureReceipt,
    MemoryPage,
    MemoryPublic,
    MemoryUpdate,
    MemoryVersionPublic,
    UserExport,
    WhoAmI,
)
from memory_store.services.container import Services
from memory_store.services.memories import ListQuery

router = APIRouter(prefix="/v1/me", tags=["user"])

_ETAG = re.compile(r'^(?:W/)?"?(\d{1,9})"?$')


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(value: str | None) -> int | None:
    """The version an If-Match header names; None for no header or "*"."""
    if value is None or value.strip() == "*":
        return None
    match = _ETAG.match(value.strip())
    if match is None:
        raise InvalidRequest('If-Match must name a memory version, e.g. If-Match: "3"')
    return int(match.group(1))


@router.get("/memories", response_model=MemoryPage, responses=problem_responses(401, 403, 410, 422))
async def list_my_memories(
    query: ListQueryDep, principal: PrincipalDep, services: ServicesDep
) -> Response:
    """Everything kept about you, newest first; `q` searches the contents."""
    return await list_own_answer(services, principal, query)


async def list_own_answer(services: Services, principal: Principal, query: ListQuery) -> Response:
    """The route above once parsed (api/hot_routes.py calls it too)."""
    memories = services.memories
    if query.q:  # a search decrypts to match: in a thread
        page = await run_in_threadpool(memories.list_own, principal, query)
    elif services.inline_reads:
        page = await memories.begin_list_own(principal, query).answered()
    else:  # the reads in threads; the record's commit awaited on the loop
        pending = await run_in_threadpool(memories.begin_list_own, principal, query)
        page = await pending.answered_off_loop()
    return model_response(page)


@router.delete("/memories", responses=problem_responses(401, 403, 422))
def delete_my_category(
    category: Annotated[str, Query(min_length=1, max_length=64)],
    principal: PrincipalDep,
    services: ServicesDep,
) -> CategoryErasure:
    """Forget every memory of one category, with its history: their keys are destroyed and
    the rows deleted. `final_at`: when no copy of them opens anywhere any more."""
    deleted, erasure = services.memories.delete_category_own(principal, category)
    return CategoryErasure(
        category=category, deleted=deleted, erasure_id=erasure.id, final_at=erasure.final_at
    )


@router.get(
    "/memories/{memory_id}",
    response_model=MemoryPublic,
    responses=problem_responses(401, 403, 404, 410, 422),
)
async def get_my_memory(
    memory_id: MemoryIdPath, principal: PrincipalDep, services: ServicesDep
) -> Response:
    """One of your memories. Its ETag is its version, for `If-Match` on PATCH."""
    return await get_own_answer(services, principal, memory_id)


async def get_own_answer(services: Services, principal: Principal, memory_id: str) -> Response:
    """The route above once parsed (api/hot_routes.py calls it too)."""
    memories = services.memories
    if services.inline_reads:
        memory = await memories.begin_get_own(principal, memory_id).answered()
    else:  # the reads in threads; the record's commit awaited on the loop
        pending = await run_in_threadpool(memories.begin_get_own, principal, memory_id)
        memory = await pending.answered_off_loop()
    return model_response(memory, headers={"ETag": etag(memory.version)})


@router.patch(
    "/memories/{memory_id}",
    responses=problem_responses(400, 401, 403, 404, 410, 412, 413, 422),
)
def patch_my_memory(
    memory_id: MemoryIdPath,
    body: MemoryUpdate,
    principal: PrincipalDep,
    services: ServicesDep,
    response: Response,
    if_match: Annotated[
        str | None,
        Header(description="The version you read (its ETag): 412 if it has changed since."),
    ] = None,
) -> MemoryPublic:
    """Correct a memory: its content, its category, or an earlier expiry. The version it
    replaces is kept in its history."""
    memory = services.memories.update_own(
        principal, memory_id, body, if_match=parse_if_match(if_match)
    )
    response.headers["ETag"] = etag(memory.version)
    return memory


@router.delete(
    "/memories/{memory_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**ERASURE_RESPONSES, **problem_responses(401, 403, 404, 422)},
    response_class=Response,
)
def delete_my_memory(
    memory_id: MemoryIdPath,
    principal: PrincipalDep,
    services: ServicesDep,
    prefer: PreferHeader = None,
) -> Response:
    """Forget one memory: its keys are destroyed, its row and its history deleted. The
    erasure's status (when no copy opens anywhere any more) is at `Location`."""
    return erasure_answer(services.memories.delete_own(principal, memory_id), prefer)


@router.get("/memories/{memory_id}/history", responses=problem_responses(401, 403, 404, 410, 422))
def my_memory_history(
    memory_id: MemoryIdPath, principal: PrincipalDep, services: ServicesDep
) -> list[MemoryVersionPublic]:
    """The earlier versions of a memory, newest first."""
    return services.memories.history_own(principal, memory_id)


@router.get("/export", responses=problem_responses(401, 403, 410))
def export_me(principal: PrincipalDep, services: ServicesDep, response: Response) -> UserExport:
    """Everything held about you, as one JSON document (format memory-store-export/1)."""
    response.headers["Content-Disposition"] = 'attachment; filename="memory-store-export.json"'
    return services.rights.export(principal)


@router.delete("", responses=problem_responses(401, 403))
def forget_me(principal: PrincipalDep, services: ServicesDep) -> ErasureReceipt:
    """Forget everything: your data key is destroyed, every memory, version, consent,
    setting and token of yours is deleted. The receipt says what, and the audit record."""
    return services.rights.forget(principal)


@router.get("", responses=problem_responses(401, 403))
def whoami(principal: PrincipalDep, services: ServicesDep) -> WhoAmI:
    """Who your token belongs to."""
    return services.rights.whoami(principal)


@router.get("/access-log", responses=problem_responses(401, 403, 422))
def access_log(
    principal: PrincipalDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> AccessLogPage:
    """Who read (or tried to read) your memories, when, and for which purpose."""
    entries, next_cursor = services.audit.access_log(principal, limit=limit, cursor=cursor)
    return AccessLogPage(items=entries, next_cursor=next_cursor)

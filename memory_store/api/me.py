"""A user's own routes: the memories kept about the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from memory_store.api.deps import (
    ListQueryDep,
    MemoryIdPath,
    PrincipalDep,
    RuntimeDep,
    problem_responses,
)
from memory_store.schemas import (
    AccessLogEntry,
    AccessLogPage,
    MemoryPage,
    MemoryPatch,
    MemoryPublic,
)

router = APIRouter(prefix="/v1/me", tags=["user"])


@router.get("/memories", responses=problem_responses(401, 403, 410, 422))
def list_my_memories(
    query: ListQueryDep, principal: PrincipalDep, runtime: RuntimeDep
) -> MemoryPage:
    """Everything kept about you, newest first; `q` searches the contents."""
    return runtime.memories.list_own(principal, query)


@router.get("/memories/{memory_id}", responses=problem_responses(401, 403, 404, 410, 422))
def get_my_memory(
    memory_id: MemoryIdPath, principal: PrincipalDep, runtime: RuntimeDep
) -> MemoryPublic:
    return runtime.memories.get_own(principal, memory_id)


@router.patch(
    "/memories/{memory_id}", responses=problem_responses(400, 401, 403, 404, 410, 413, 422)
)
def patch_my_memory(
    memory_id: MemoryIdPath, body: MemoryPatch, principal: PrincipalDep, runtime: RuntimeDep
) -> MemoryPublic:
    """Bring forward when a memory is forgotten (`expires_at`, earlier than now set)."""
    return runtime.memories.shorten_expiry(principal, memory_id, body.expires_at)


@router.get("/access-log", responses=problem_responses(401, 403, 422))
def access_log(
    principal: PrincipalDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> AccessLogPage:
    """Who read (or tried to read) your memories, when, and for which purpose."""
    entries, next_cursor = runtime.audit.access_log(principal, limit=limit, cursor=cursor)
    return AccessLogPage(
        items=[
            AccessLogEntry(
                at=entry.record.at,
                actor=entry.actor_name,
                actor_role=entry.record.actor_role,
                action=entry.record.action,
                memory_ids=list(entry.record.memory_ids),
                purpose=entry.record.purpose,
                outcome=entry.record.outcome,
                reason=entry.record.reason,
                result_count=entry.record.result_count,
            )
            for entry in entries
        ],
        next_cursor=next_cursor,
    )

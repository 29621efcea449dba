"""A user's own routes: the memories kept about the caller."""

from __future__ import annotations

from fastapi import APIRouter

from memory_store.api.deps import (
    ListQueryDep,
    MemoryIdPath,
    PrincipalDep,
    RuntimeDep,
    problem_responses,
)
from memory_store.schemas import MemoryPage, MemoryPatch, MemoryPublic

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

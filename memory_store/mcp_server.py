"""An MCP server (stdio) for one configured user and purpose: tools to remember, recall, list
and forget. Every call goes through the same service, policy and audit path as the HTTP API,
acting as the principal of the token it was started with; never straight to the database.

    memory-store mcp --user alice --purpose personalization   (token in MEMORY_STORE_MCP_TOKEN)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from memory_store.domain import Principal
from memory_store.errors import Problem
from memory_store.runtime import Runtime
from memory_store.schemas import MemoryCreate, MemoryPublic
from memory_store.services.memories import ListQuery


def _public(memory: MemoryPublic) -> dict[str, Any]:
    return {
        "id": memory.id,
        "content": memory.content,
        "category": memory.category,
        "created_at": memory.created_at.isoformat(),
        "expires_at": memory.expires_at.isoformat(),
    }


def build_server(runtime: Runtime, principal: Principal, user_id: str, purpose: str) -> MCPServer:
    """The MCP server, its tools bound to `user_id` and `purpose`."""
    server: MCPServer = MCPServer(
        name="memory-store",
        instructions=(
            f"Long-term memory about the user {user_id}, used for {purpose}. Recall before "
            "answering; remember durable facts the user shares; forget what the user asks you "
            "to forget. Never store secrets (card numbers, passwords, keys): they are refused."
        ),
    )

    def refused(problem: Problem) -> ToolError:
        return ToolError(f"{problem.type_uri}: {problem.detail}")

    @server.tool()
    def remember(content: str, category: str, expires_at: str | None = None) -> dict[str, Any]:
        """Keep a fact about the user. category: one of the catalogue's categories
        (preferences, profile, work, relationships, interests, location, schedule, finance,
        ...). expires_at: optional RFC 3339 time to forget it at."""
        try:
            body = MemoryCreate(
                content=content,
                category=category,
                expires_at=datetime.fromisoformat(expires_at) if expires_at else None,
            )
            return _public(runtime.memories.write(principal, user_id, purpose, body))
        except Problem as problem:
            raise refused(problem) from None
        except (ValidationError, ValueError) as exc:
            raise ToolError(f"invalid arguments: {exc.__class__.__name__}") from None

    @server.tool()
    def recall(query: str, limit: int = 5, max_chars: int = 2000) -> dict[str, Any]:
        """The memories most relevant to `query`, best first, within `max_chars`."""
        try:
            result = runtime.memories.context(
                principal,
                user_id,
                purpose,
                q=query,
                limit=max(1, min(limit, 50)),
                max_chars=max(1, min(max_chars, 20_000)),
            )
        except Problem as problem:
            raise refused(problem) from None
        return {
            "memories": [{**_public(item), "score": item.score} for item in result.items],
            "truncated": result.truncated,
        }

    @server.tool(name="list")
    def list_memories(
        category: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> dict[str, Any]:
        """The user's memories this purpose may use, newest first; pass `next_cursor` back
        as `cursor` for more."""
        try:
            page = runtime.memories.list_for_purpose(
                principal,
                user_id,
                purpose,
                ListQuery(category=category, limit=max(1, min(limit, 100)), cursor=cursor),
            )
        except Problem as problem:
            raise refused(problem) from None
        return {"memories": [_public(m) for m in page.items], "next_cursor": page.next_cursor}

    @server.tool()
    def forget(memory_id: str) -> dict[str, Any]:
        """Forget one memory (by its id, from recall or list): its keys are destroyed, it and
        its history deleted; `final_at` says when no copy of it opens anywhere any more."""
        try:
            erasure = runtime.memories.forget_for_purpose(principal, user_id, memory_id, purpose)
        except Problem as problem:
            raise refused(problem) from None
        final_at = erasure.final_at.isoformat() if erasure.final_at else None
        return {"forgotten": memory_id, "erasure_id": erasure.id, "final_at": final_at}

    return server

"""`memory-store mcp --url URL --user ID`: MCP over stdio, as a client of the running server.

The tools are mcp_server's; each call is an HTTP request through the Python client with the
token of MEMORY_STORE_MCP_TOKEN. So the MCP host holds that token and nothing else of the
store: no key, no database, no file under the data dir; and the server authenticates, limits,
decides and audits every call as it does any other (a revoked token fails the next call).
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import TypeVar

import anyio
import httpx
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from memory_store.client import AsyncMemoryStoreClient, MemoryStoreError
from memory_store.mcp_server import build_server, refusal
from memory_store.policy.catalogue import Catalogue
from memory_store.schemas import ContextResult, Erasure, MemoryPage, MemoryPublic

T = TypeVar("T")


class RemoteMemories:
    """Memories through the Python client: every call an HTTP request with the token, so
    the server authenticates (a revoked token fails the next call), limits and audits it."""

    def __init__(self, client: AsyncMemoryStoreClient, user_id: str, purpose: str) -> None:
        self._client = client
        self._user_id = user_id
        self._purpose = purpose

    async def remember(
        self, content: str, category: str, expires_at: datetime | None
    ) -> MemoryPublic:
        return await _answer(
            self._client.remember(
                self._user_id,
                content,
                category=category,
                purpose=self._purpose,
                expires_at=expires_at,
            )
        )

    async def recall(self, query: str, limit: int, max_chars: int) -> ContextResult:
        return await _answer(
            self._client.context(
                self._user_id, purpose=self._purpose, q=query, limit=limit, max_chars=max_chars
            )
        )

    async def list(self, category: str | None, limit: int, cursor: str | None) -> MemoryPage:
        return await _answer(
            self._client.recall(
                self._user_id, purpose=self._purpose, category=category, limit=limit, cursor=cursor
            )
        )

    async def forget(self, memory_id: str) -> Erasure:
        return await _answer(
            self._client.forget_for_user(self._user_id, memory_id, purpose=self._purpose)
        )


async def _answer(call: Awaitable[T]) -> T:
    try:
        return await call
    except MemoryStoreError as refused:
        raise refusal(refused.problem_type, refused.title, refused.detail) from None
    except httpx.HTTPError as exc:
        raise ToolError(
            f"The memory-store server did not answer ({type(exc).__name__}); try again"
        ) from None
    except ValidationError:  # its text would quote the answer: contents
        raise ToolError("The memory-store server's answer was not understood") from None


def serve_stdio(url: str, token: str, user_id: str, purpose: str, catalogue: Catalogue) -> None:
    """Serve MCP on stdin/stdout for one user and purpose, as a client of the server at
    `url`: this process holds the token, and no key, database or file of the store."""

    async def serve() -> None:
        async with AsyncMemoryStoreClient(url, token) as client:
            memories = RemoteMemories(client, user_id, purpose)
            server = build_server(
                lambda _ctx: memories, catalogue, user_id=user_id, purpose=purpose
            )
            await server.run_stdio_async()

    anyio.run(serve)

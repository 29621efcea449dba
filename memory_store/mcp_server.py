"""The MCP tools (remember, recall, list, forget), defined once for both ways memory-store
serves MCP: `memory-store mcp --url` (stdio, a client of the running server: mcp_stdio.py)
and `/mcp` on the server itself (streamable HTTP: mcp_http.py).

A tool validates its arguments (bounded as the API bounds them) and calls a `Memories`: the
one thing the two differ in. Over stdio it is the Python client, holding the token; at /mcp
it is the server's services, acting as the principal of the request's bearer token. Either
way the server authenticates, limits, decides and audits every call, and a refusal reaches
the model as a tool error with the problem's title and detail, never a memory's contents.
"""

# No `from __future__ import annotations` here: the SDK reads each tool's parameters from
# its annotations, and those name values built per server (the catalogue's categories).

import importlib.metadata
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal, Protocol

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from memory_store import __version__, schemas
from memory_store.policy.catalogue import Catalogue
from memory_store.schemas import (
    MAX_CONTENT_CHARS,
    ContextResult,
    Erasure,
    MemoryPage,
    MemoryPublic,
)

MAX_MEMORY_ID_CHARS = 64  # as the API's paths: a longer id names no memory
MAX_QUERY_CHARS = 256
MAX_CURSOR_CHARS = 512


class Memories(Protocol):
    """What the tools do, for one user and purpose, as one caller."""

    async def remember(
        self, content: str, category: str, expires_at: datetime | None
    ) -> MemoryPublic: ...

    async def recall(self, query: str, limit: int, max_chars: int) -> ContextResult: ...

    async def list(self, category: str | None, limit: int, cursor: str | None) -> MemoryPage: ...

    async def forget(self, memory_id: str) -> Erasure: ...


# The Memories of one tool call, from its MCP context (at /mcp: the HTTP request's caller).
MemoriesFor = Callable[[Context], Memories]


def refusal(problem_type: str, title: str, detail: str) -> ToolError:
    """A refusal as the model reads it: the problem's words, written by the service."""
    said = title if detail in ("", title) else f"{title}: {detail}"
    return ToolError(f"{said} ({problem_type})")


def package_version() -> str:
    try:
        return importlib.metadata.version("memory-store")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return __version__


# -- what the tools answer ---------------------------------------------------------------


class Memory(BaseModel):
    id: str = Field(description="Pass to `forget` to forget it.")
    content: str
    category: str
    created_at: datetime
    expires_at: datetime = Field(description="When it will be forgotten by itself.")

    @classmethod
    def of(cls, memory: MemoryPublic) -> "Memory":
        return cls(
            id=memory.id,
            content=memory.content,
            category=memory.category,
            created_at=memory.created_at,
            expires_at=memory.expires_at,
        )


class Recalled(Memory):
    score: float = Field(description="Relevance to the query (BM25); higher is closer.")


class RecallResult(BaseModel):
    memories: list[Recalled] = Field(description="Best first.")
    truncated: bool = Field(description="True when relevant memories did not fit max_chars.")
    match: Literal["relevant", "none"] | None = Field(
        default=None,
        description="`none`: nothing answered the query; the memories are then the most "
        "recent ones, offered instead.",
    )


class ListResult(BaseModel):
    memories: list[Memory] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for more; null at the end.")


class Forgotten(BaseModel):
    forgotten: str = Field(description="The memory's id.")
    erasure_id: str = Field(description="Its status: GET /v1/erasures/{erasure_id}.")
    final_at: datetime | None = Field(
        description="When no copy of it (a backup, a database log) opens anywhere any more."
    )


# -- the arguments -----------------------------------------------------------------------

Content = Annotated[
    schemas.Content,  # 1-4096 characters, not blank: as the API's
    Field(
        description=f"The fact, in a short sentence (1-{MAX_CONTENT_CHARS} characters), "
        "stored encrypted. Never a secret (card or account numbers, passwords, keys): "
        "those are refused.",
    ),
]
MemoryId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_MEMORY_ID_CHARS,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="A memory's id (mem_...), from `recall` or `list`.",
    ),
]
Query = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description=f"What the turn is about, in words (1-{MAX_QUERY_CHARS} characters).",
    ),
]
RecallLimit = Annotated[int, Field(ge=1, le=50, description="At most this many memories (1-50).")]
MaxChars = Annotated[
    int,
    Field(ge=1, le=20_000, description="At most this many characters of content (1-20000)."),
]
ListLimit = Annotated[int, Field(ge=1, le=100, description="At most this many memories (1-100).")]
Cursor = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=MAX_CURSOR_CHARS,
        description="`next_cursor` from the previous page; omit for the first.",
    ),
]
ExpiresAt = Annotated[
    AwareDatetime | None,
    Field(
        description="When to forget it (RFC 3339 with a time zone, e.g. "
        "2027-01-01T00:00:00Z). Defaults to, and may not exceed, the category's retention."
    ),
]


class _Categories:
    """The category argument: an enum of the catalogue's names (checked, not only shown)
    and a description of each, the sensitive ones marked."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.enum = WithJsonSchema({"type": "string", "enum": sorted(catalogue.categories)})
        self.check = AfterValidator(self._known)
        self._names = frozenset(catalogue.categories)
        kinds = "; ".join(
            f"{name}{' (sensitive)' if c.sensitive else ''}: {c.description.rstrip('.')}"
            for name, c in sorted(catalogue.categories.items())
        )
        self.described = (
            f"What kind of fact it is. {kinds}. Sensitive categories are special categories "
            "of personal data: kept only when the user has opted in to this purpose for them."
        )

    def _known(self, value: str) -> str:
        if value not in self._names:
            raise ValueError("not a category of the catalogue")
        return value


def _quiet(tool: Tool) -> Tool:
    """A tool whose argument errors name the argument and the rule, never echo its value
    (a 100,000-character id, or content that is a secret)."""
    model = tool.fn_metadata.arg_model
    tool.fn_metadata.arg_model = type(
        model.__name__,
        (model,),
        {"model_config": ConfigDict(hide_input_in_errors=True), "__module__": model.__module__},
    )
    return tool


def build_server(
    memories_for: MemoriesFor,
    catalogue: Catalogue,
    *,
    user_id: str | None = None,
    purpose: str | None = None,
) -> MCPServer:
    """The MCP server and its four tools, each call served by `memories_for(context)`."""
    kind = _Categories(catalogue)
    whom = f"the user {user_id}" if user_id else "one user (the one this connection names)"
    why = f"for {purpose}" if purpose else "for the purpose this connection declares"

    async def remember(
        ctx: Context,
        content: Content,
        category: Annotated[str, kind.enum, kind.check, Field(description=kind.described)],
        expires_at: ExpiresAt = None,
    ) -> Memory:
        """Keep a durable fact about the user that they shared (a preference, a plan, who
        someone is). Refused without the user's consent for this category and purpose, or
        while they have paused memory."""
        return Memory.of(await memories_for(ctx).remember(content, category, expires_at))

    async def recall(
        ctx: Context, query: Query, limit: RecallLimit = 5, max_chars: MaxChars = 2000
    ) -> RecallResult:
        """The memories most relevant to `query` (by its words and its meaning), best
        first, within `max_chars` characters: call it before answering. When nothing is
        relevant, `match` is "none" and the most recent memories are offered instead."""
        found = await memories_for(ctx).recall(query, limit, max_chars)
        memories = [
            Recalled(**Memory.of(item).model_dump(), score=item.score) for item in found.items
        ]
        return RecallResult(memories=memories, truncated=found.truncated, match=found.match)

    async def list_memories(
        ctx: Context,
        category: Annotated[
            Annotated[str, kind.enum, kind.check] | None,
            Field(description="Only this category (see `remember`); omit for all."),
        ] = None,
        limit: ListLimit = 20,
        cursor: Cursor = None,
    ) -> ListResult:
        """The user's memories this purpose may use, newest first, a page at a time."""
        page = await memories_for(ctx).list(category, limit, cursor)
        return ListResult(memories=[Memory.of(m) for m in page.items], next_cursor=page.next_cursor)

    async def forget(ctx: Context, memory_id: MemoryId) -> Forgotten:
        """Forget one memory when the user asks you to: its keys are destroyed, it and its
        history deleted at once. Forgetting it again is refused as not found."""
        erasure = await memories_for(ctx).forget(memory_id)
        return Forgotten(forgotten=memory_id, erasure_id=erasure.id, final_at=erasure.final_at)

    tools = [
        Tool.from_function(
            remember,
            title="Remember a fact about the user",
            annotations=ToolAnnotations(
                read_only_hint=False,
                destructive_hint=False,
                idempotent_hint=False,
                open_world_hint=False,
            ),
        ),
        Tool.from_function(
            recall,
            title="Recall what is relevant",
            annotations=ToolAnnotations(
                read_only_hint=True, idempotent_hint=True, open_world_hint=False
            ),
        ),
        Tool.from_function(
            list_memories,
            name="list",
            title="List memories",
            annotations=ToolAnnotations(
                read_only_hint=True, idempotent_hint=True, open_world_hint=False
            ),
        ),
        Tool.from_function(
            forget,
            title="Forget a memory",
            annotations=ToolAnnotations(
                read_only_hint=False,
                destructive_hint=True,
                idempotent_hint=True,
                open_world_hint=False,
            ),
        ),
    ]
    return MCPServer(
        name="memory-store",
        version=package_version(),
        instructions=(
            f"Long-term memory about {whom}, used {why}. Recall before answering; remember "
            "durable facts the user shares; forget what the user asks you to forget. Never "
            "store secrets (card numbers, passwords, keys): they are refused. A refusal for "
            "consent or a pause is the user's choice: do not retry it."
        ),
        tools=[_quiet(tool) for tool in tools],
    )

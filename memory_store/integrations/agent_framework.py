"""memory-store as a Microsoft Agent Framework context provider:
`Agent(client=..., context_providers=[MemoryStoreContextProvider(url, token, user_id="alice")])`.

Before each run, it recalls what the declared purpose may see for the conversation's last user
message (the server's context ranking, within a character budget) and adds it as one message
marked as memories. After each run, it stores what the application's `extractor` hands it;
there is none by default, so no model is called and nothing is stored on the user's behalf
unless the application says so. Everything goes through the server with the token: the
agent's host holds no key and no database, and every recall is on the user's access log with
its purpose.

A refusal (consent withdrawn, memory paused, not found, rate limited, the server
unreachable) means no memories for that turn, never an error in the agent's turn.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from agent_framework import AgentSession, ContextProvider, Message, SessionContext, SupportsAgentRun

from memory_store.client import MemoryStoreError
from memory_store.integrations._async_client import LoopClient
from memory_store.logging import get_logger

__all__ = ["Fact", "MemoryStoreContextProvider"]

_log = get_logger("memory_store.integrations.agent_framework")
_MAX_QUERY = 256  # the API's bound on a query: the message's first 256 characters
HEADING = "## Memories"


@dataclass(frozen=True)
class Fact:
    """What an extractor hands back to be remembered."""

    content: str
    category: str
    expires_at: datetime | None = None


# Given the turn's input messages and the response's, the facts to keep (sync or async).
Extractor = Callable[
    [Sequence[Message], Sequence[Message]], Iterable[Fact] | Awaitable[Iterable[Fact]]
]


def _last_user_text(messages: Sequence[Message]) -> str | None:
    for message in reversed(messages):
        if message.role == "user" and message.text.strip():
            return message.text.strip()
    return None


class MemoryStoreContextProvider(ContextProvider):
    """Recalls a user's memories into each run; remembers what an extractor returns."""

    DEFAULT_SOURCE_ID = "memory-store"

    def __init__(
        self,
        url: str,
        token: str,
        *,
        user_id: str,
        purpose: str = "personalization",
        max_chars: int = 2000,
        limit: int = 10,
        extractor: Extractor | None = None,
        source_id: str = DEFAULT_SOURCE_ID,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(source_id)
        self.user_id = user_id
        self.purpose = purpose
        self.max_chars = max_chars
        self.limit = limit
        self.extractor = extractor
        self._client = LoopClient(url, token, timeout=timeout)

    async def before_run(
        self,
        *,
        agent: SupportsAgentRun,
        session: AgentSession,
        context: SessionContext,
        state: dict[str, Any],
    ) -> None:
        question = _last_user_text(context.input_messages)
        if question is None:
            return
        try:
            found = await self._client.get().context(
                self.user_id,
                purpose=self.purpose,
                q=question[:_MAX_QUERY],
                limit=self.limit,
                max_chars=self.max_chars,
            )
        except (MemoryStoreError, httpx.HTTPError) as refused:
            self._refused("recall", refused)
            return
        if not found.items:
            return
        lines = "\n".join(f"- {item.content}" for item in found.items)
        text = (
            f"{HEADING}\nConsider the following memories about the user, kept by "
            f"memory-store for {self.purpose}, when answering:\n{lines}"
        )
        marker = {"memory_store": {"purpose": self.purpose, "memories": len(found.items)}}
        context.extend_messages(self, [Message("user", [text], additional_properties=marker)])

    async def after_run(
        self,
        *,
        agent: SupportsAgentRun,
        session: AgentSession,
        context: SessionContext,
        state: dict[str, Any],
    ) -> None:
        if self.extractor is None:
            return
        answer = context.response.messages if context.response is not None else []
        facts = self.extractor(context.input_messages, answer)
        if inspect.isawaitable(facts):
            facts = await facts
        client = self._client.get()
        for fact in facts:
            try:
                await client.remember(
                    self.user_id,
                    fact.content,
                    category=fact.category,
                    purpose=self.purpose,
                    expires_at=fact.expires_at,
                )
            except (MemoryStoreError, httpx.HTTPError) as refused:
                self._refused("remember", refused)

    def _refused(self, step: str, refusal: Exception) -> None:
        # The problem's type and status only: never a content, a query or a user id.
        if isinstance(refusal, MemoryStoreError):
            _log.info(
                "memory_store_refused", step=step, status=refusal.status, type=refusal.problem_type
            )
        else:
            _log.warning("memory_store_unreachable", step=step, error_type=type(refusal).__name__)

    async def aclose(self) -> None:
        await self._client.aclose()

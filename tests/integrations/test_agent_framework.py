"""An Agent Framework `Agent` with memory-store's context provider and a scripted chat client
that records what the model is given: the memory reaches the model's input, a withdrawn
category does not (a withdrawal between turns changes the next turn), each recall is on the
user's access log with its purpose, refusals never break a turn, and an application's
extractor is how anything gets remembered."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from agent_framework import Agent, BaseChatClient, ChatResponse, Message

from memory_store.client import MemoryStoreClient
from memory_store.integrations.agent_framework import HEADING, Fact, MemoryStoreContextProvider
from tests.integrations.conftest import Server

PURPOSE = "personalization"


class ScriptedChatClient(BaseChatClient):
    """A model that answers "Noted." and keeps every message list it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[Message]] = []

    async def _inner_get_response(  # type: ignore[override]
        self, *, messages: Sequence[Message], stream: bool, options: Mapping[str, Any], **_: Any
    ) -> ChatResponse:
        self.calls.append(list(messages))
        return ChatResponse(messages=[Message("assistant", ["Noted."])])

    def memories_seen(self) -> str:
        """The memories message of the last call ("" when there was none)."""
        return "\n".join(m.text for m in self.calls[-1] if m.text.startswith(HEADING))


def seed(server: Server, user: str) -> None:
    with MemoryStoreClient(server.url, server.assistant) as assistant:
        assistant.remember(user, "prefers window seats", category="preferences")
        assistant.remember(user, "flying to Tokyo in October", category="schedule")


@pytest.mark.anyio
async def test_the_memory_reaches_the_model_and_a_withdrawn_category_does_not(
    memory_server: Server,
) -> None:
    user = "agent-alice"
    seed(memory_server, user)
    model = ScriptedChatClient()
    provider = MemoryStoreContextProvider(memory_server.url, memory_server.assistant, user_id=user)
    agent = Agent(client=model, instructions="You book trips.", context_providers=[provider])
    session = agent.create_session()

    await agent.run("Book window seats for my Tokyo trip", session=session)
    seen = model.memories_seen()
    assert "prefers window seats" in seen
    assert "flying to Tokyo in October" in seen
    assert model.calls[-1][-1].text == "Book window seats for my Tokyo trip"

    with MemoryStoreClient(memory_server.url, memory_server.users[user]) as alice:
        alice.set_consent(PURPOSE, "preferences", granted=False)
        await agent.run("Book window seats for my Tokyo trip", session=session)
        seen = model.memories_seen()
        assert "flying to Tokyo in October" in seen
        assert "prefers window seats" not in seen
        recalls = [e for e in alice.access_log().items if e.action == "memory.context"]
    assert [(e.purpose, e.outcome, e.result_count) for e in recalls] == [
        (PURPOSE, "allowed", 1),  # newest first: the turn after the withdrawal
        (PURPOSE, "allowed", 2),
    ]
    await provider.aclose()


@pytest.mark.anyio
async def test_refusals_mean_no_memories_never_a_failed_turn(memory_server: Server) -> None:
    user = "agent-refused"
    seed(memory_server, user)
    question = "Book window seats for my Tokyo trip"
    model = ScriptedChatClient()

    with MemoryStoreClient(memory_server.url, memory_server.users[user]) as alice:
        alice.set_memory_enabled(False)  # paused: the assistant gets nothing
        paused = MemoryStoreContextProvider(
            memory_server.url, memory_server.assistant, user_id=user
        )
        agent = Agent(client=model, context_providers=[paused])
        assert (await agent.run(question)).text == "Noted."
        assert model.memories_seen() == ""
        alice.set_memory_enabled(True)

    # Someone else's token (404), and a server that is not there: still an answer.
    for provider in (
        MemoryStoreContextProvider(
            memory_server.url, memory_server.users["agent-alice"], user_id=user
        ),
        MemoryStoreContextProvider("http://127.0.0.1:9", "mst_none", user_id=user, timeout=2),
    ):
        agent = Agent(client=model, context_providers=[provider])
        assert (await agent.run(question)).text == "Noted."
        assert model.memories_seen() == ""


@pytest.mark.anyio
async def test_only_what_the_extractor_returns_is_remembered(memory_server: Server) -> None:
    user = "agent-extract"
    given: list[tuple[list[str], list[str]]] = []

    def extractor(asked: Sequence[Message], answered: Sequence[Message]) -> list[Fact]:
        given.append(([m.text for m in asked], [m.text for m in answered]))
        return [
            Fact("likes aisle seats on night flights", "preferences"),
            Fact("was diagnosed with asthma", "health"),  # no opt-in: refused, quietly
        ]

    model = ScriptedChatClient()
    silent = MemoryStoreContextProvider(memory_server.url, memory_server.assistant, user_id=user)
    await Agent(client=model, context_providers=[silent]).run("I like aisle seats at night")
    with MemoryStoreClient(memory_server.url, memory_server.users[user]) as alice:
        assert alice.my_memories().items == []  # no extractor: nothing kept

        keeper = MemoryStoreContextProvider(
            memory_server.url, memory_server.assistant, user_id=user, extractor=extractor
        )
        answer = await Agent(client=model, context_providers=[keeper]).run(
            "I like aisle seats at night"
        )
        assert answer.text == "Noted."
        assert given == [(["I like aisle seats at night"], ["Noted."])]
        kept = alice.my_memories().items
    assert [(m.content, m.category) for m in kept] == [
        ("likes aisle seats on night flights", "preferences")
    ]
    await keeper.aclose()

"""A LangGraph graph compiled with memory-store as its store: a node reads the user's
memories (what it hands the model) and writes the one the turn asks for. A consent
withdrawal between turns changes what the next turn sees, and every read is on the user's
access log with the purpose."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from memory_store.client import MemoryStoreClient
from memory_store.integrations.langgraph import MemoryStore
from tests.integrations.conftest import Server


class Turn(TypedDict, total=False):
    user_id: str
    remember: dict[str, Any]  # {"key": ..., "value": {...}}
    seen: list[str]  # what the node put before the model


def respond(state: Turn, runtime: Runtime[None]) -> dict[str, Any]:
    store = runtime.store
    assert store is not None
    user = state["user_id"]
    if "remember" in state:
        store.put((user, "travel"), state["remember"]["key"], state["remember"]["value"])
    memories = store.search((user, "travel"), query="window seats Tokyo", limit=10)
    return {"seen": sorted(item.value["content"] for item in memories)}


async def arespond(state: Turn, runtime: Runtime[None]) -> dict[str, Any]:
    store = runtime.store
    assert store is not None
    user = state["user_id"]
    if "remember" in state:
        await store.aput((user, "travel"), state["remember"]["key"], state["remember"]["value"])
    item = await store.aget((user, "travel"), "seat")
    return {"seen": [item.value["content"]] if item is not None else []}


def graph(node: Any, store: MemoryStore) -> Any:
    builder = StateGraph(Turn)
    builder.add_node("respond", node)
    builder.add_edge(START, "respond")
    builder.add_edge("respond", END)
    return builder.compile(store=store)


SEAT = {"key": "seat", "value": {"content": "prefers window seats", "category": "preferences"}}
TRIP = {"key": "trip", "value": {"content": "flying to Tokyo in October", "category": "schedule"}}


def test_a_graph_reads_and_writes_memories_and_a_withdrawal_changes_the_next_turn(
    memory_server: Server,
) -> None:
    user = "graph-alice"
    store = MemoryStore(memory_server.url, memory_server.assistant)
    app = graph(respond, store)

    assert app.invoke({"user_id": user, "remember": SEAT})["seen"] == ["prefers window seats"]
    seen = app.invoke({"user_id": user, "remember": TRIP})["seen"]
    assert seen == ["flying to Tokyo in October", "prefers window seats"]

    with MemoryStoreClient(memory_server.url, memory_server.users[user]) as alice:
        alice.set_consent("personalization", "preferences", granted=False)
        assert app.invoke({"user_id": user})["seen"] == ["flying to Tokyo in October"]
        # The withdrawn memory is not gone: the user still sees it, and a grant brings it back.
        assert {m.content for m in alice.my_memories().items} == {
            "prefers window seats",
            "flying to Tokyo in October",
        }
        reads = [
            entry
            for entry in alice.access_log().items
            if entry.action == "memory.search" and entry.actor == "framework-tests"
        ]
    assert len(reads) == 3
    assert {entry.purpose for entry in reads} == {"personalization"}
    assert sorted(entry.result_count or 0 for entry in reads) == [1, 1, 2]
    store.close()


@pytest.mark.anyio
async def test_a_graph_runs_the_store_asynchronously(memory_server: Server) -> None:
    user = "graph-async"
    store = MemoryStore(memory_server.url, memory_server.assistant)
    app = graph(arespond, store)

    assert (await app.ainvoke({"user_id": user, "remember": SEAT}))["seen"] == [
        "prefers window seats"
    ]
    with MemoryStoreClient(memory_server.url, memory_server.users[user]) as alice:
        alice.set_consent("personalization", "preferences", granted=False)
        assert (await app.ainvoke({"user_id": user}))["seen"] == []
        alice.set_consent("personalization", "preferences", granted=True)
    assert (await app.ainvoke({"user_id": user}))["seen"] == ["prefers window seats"]
    store.close()

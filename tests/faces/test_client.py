"""memory_store.client against the live app: uvicorn on a free port, real HTTP."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from memory_store.app import create_app
from memory_store.client import (
    AsyncMemoryStoreClient,
    ConsentRequired,
    Forbidden,
    MemoryPaused,
    MemoryStoreClient,
    NotFound,
    Unauthenticated,
    VersionMismatch,
)
from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.runtime import Runtime, open_runtime


@dataclass
class Live:
    url: str
    runtime: Runtime
    assistant: str


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    yield from serve(Settings(data_dir=tmp_path / "var", retention_sweep_seconds=0))


def serve(settings: Settings) -> Iterator[Live]:
    """The app under uvicorn on a free port, in a thread, until the generator is closed."""
    runtime = open_runtime(settings)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, runtime),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield Live(
        f"http://127.0.0.1:{port}",
        runtime,
        runtime.tokens.issue(role=Role.assistant, name="copilot").token,
    )
    server.should_exit = True
    thread.join(timeout=20)


def user_token(live: Live, user_id: str = "alice") -> str:
    return live.runtime.tokens.issue(role=Role.user, name=user_id, user_id=user_id).token


def test_an_assistant_turn_context_answer_remember(live: Live) -> None:
    """The README's turn: fetch context, answer, write a new memory."""
    with MemoryStoreClient(live.url, token=live.assistant) as store:
        store.remember("alice", "prefers a window seat on long flights", category="preferences")
        store.remember("alice", "vegetarian", category="preferences")
        context = store.context("alice", q="book a long flight, which seat", limit=1)
        assert [item.content for item in context.items] == ["prefers a window seat on long flights"]
        assert context.items[0].score > 0 and context.total_chars > 0
        written = store.remember("alice", "flying to Tokyo in October", category="schedule")
        assert store.get("alice", written.id).content == "flying to Tokyo in October"
        assert {m.content for m in store.recall_all("alice")} == {
            "prefers a window seat on long flights",
            "vegetarian",
            "flying to Tokyo in October",
        }
        assert [m.content for m in store.recall("alice", q="tokyo").items] == [
            "flying to Tokyo in October"
        ]


def test_problems_become_exceptions_that_carry_their_details(live: Live) -> None:
    alice = user_token(live)
    with MemoryStoreClient(live.url, token=live.assistant) as store:
        with pytest.raises(ConsentRequired) as refused:
            store.remember("alice", "asthma", category="health")
        error = refused.value
        assert error.status == 403 and error.problem_type == "/problems/consent-required"
        assert error.extensions["category"] == "health" and error.request_id
        with pytest.raises(NotFound):
            store.get("alice", "mem_missing")
        with MemoryStoreClient(live.url, token=alice) as me:
            me.set_memory_enabled(False)
        with pytest.raises(MemoryPaused):
            store.remember("alice", "x", category="work")
    stranger = MemoryStoreClient(live.url, token="mst_not-a-token")
    with stranger, pytest.raises(Unauthenticated):
        stranger.recall("alice")
    with MemoryStoreClient(live.url, token=alice) as me, pytest.raises(Forbidden):
        me.recall("alice")


def test_the_user_side_edit_history_consent_export_forget(live: Live) -> None:
    alice = user_token(live)
    with MemoryStoreClient(live.url, token=live.assistant) as store:
        memory = store.remember("alice", "lives in Oslo", category="location")
    with MemoryStoreClient(live.url, token=alice) as me:
        assert me.whoami().user_id == "alice"
        edited = me.edit(memory.id, version=1, content="lives in Bergen")
        assert edited.version == 2
        with pytest.raises(VersionMismatch):
            me.edit(memory.id, version=1, content="stale")
        assert [v.content for v in me.history(memory.id)] == ["lives in Oslo"]
        change = me.set_consent("analytics", "work", granted=True)
        assert change.change.granted is True
        assert any(i.purpose == "analytics" and i.granted for i in me.consents().items)
        assert [m.content for m in me.export().memories] == ["lives in Bergen"]
        readers = {(entry.actor_role, entry.action) for entry in me.access_log().items}
        assert readers == {("user", "memory.export"), ("user", "memory.history")}
        receipt = me.forget_everything()
        assert receipt.memories == 1 and receipt.data_key_destroyed
        with pytest.raises(Unauthenticated):
            me.whoami()


def test_the_assistant_forgets_on_the_users_behalf_and_gets_the_erasure(live: Live) -> None:
    with MemoryStoreClient(live.url, token=live.assistant) as store:
        memory = store.remember("alice", "lives in Oslo", category="location")
        erasure = store.forget_for_user("alice", memory.id)
        assert erasure.id.startswith("er_") and erasure.kind == "memory" and erasure.items == 1
        with pytest.raises(NotFound):
            store.get("alice", memory.id)
        with pytest.raises(NotFound):
            store.forget_for_user("alice", memory.id)
        # An id is one path segment: it cannot add a query (another purpose) or a route.
        with pytest.raises(NotFound):
            store.get("alice", f"{memory.id}?purpose=analytics")


def test_the_async_client_does_the_assistants_calls(live: Live) -> None:
    async def turn() -> list[str]:
        async with AsyncMemoryStoreClient(live.url, token=live.assistant) as store:
            await store.remember("bob", "plays chess online", category="interests")
            written = await store.remember("bob", "hikes in Sintra", category="interests")
            assert (await store.get("bob", written.id)).content == "hikes in Sintra"
            context = await store.context("bob", q="weekend hiking")
            page = await store.recall("bob")
            assert len(page.items) == 2
            erasure = await store.forget_for_user("bob", written.id)
            assert erasure.items == 1 and erasure.final is False
            with pytest.raises(NotFound):
                await store.forget_for_user("bob", written.id)
            return [item.content for item in context.items]

    assert asyncio.run(turn()) == ["hikes in Sintra"]


def test_keyed_items_by_name_sync_and_async(live: Live) -> None:
    with MemoryStoreClient(live.url, token=live.assistant) as store:
        created = store.put_item(
            "alice",
            ["travel", "flights"],
            "seat",
            {"content": "window", "rank": 1},
            category="preferences",
        )
        replaced = store.put_item(
            "alice",
            ["travel", "flights"],
            "seat",
            {"content": "aisle", "rank": 2},
            category="preferences",
        )
        assert (replaced.id, replaced.version) == (created.id, 2)
        assert store.get_item("alice", ["travel", "flights"], "seat").value["content"] == "aisle"
        found = store.search_items("alice", ["travel"], query="aisle", filter={"rank": {"$gte": 2}})
        assert [item.key for item in found.items] == ["seat"] and found.items[0].score
        assert store.list_namespaces("alice", prefix=["travel"]).namespaces == [
            ["travel", "flights"]
        ]
        assert store.forget_item("alice", ["travel", "flights"], "seat").items == 1
        with pytest.raises(NotFound):
            store.get_item("alice", ["travel", "flights"], "seat")

    async def turn() -> list[list[str]]:
        async with AsyncMemoryStoreClient(live.url, token=live.assistant) as store:
            await store.put_item("bob", ["a"], "k", {"x": 1}, category="interests")
            assert (await store.get_item("bob", ["a"], "k")).value == {"x": 1}
            assert len((await store.search_items("bob", filter={"x": 1})).items) == 1
            listed = (await store.list_namespaces("bob")).namespaces
            assert (await store.forget_item("bob", ["a"], "k")).items == 1
            with pytest.raises(NotFound):
                await store.get_item("bob", ["a"], "k")
            return listed

    assert asyncio.run(turn()) == [["a"]]

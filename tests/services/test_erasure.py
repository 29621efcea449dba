"""Forgetting a user with many memories: the answer comes once the key is destroyed and the
rows are hidden; the rows are then deleted in batches, and an interrupted erasure resumes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from memory_store.app import create_app
from memory_store.clock import utc_now
from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.runtime import Runtime, open_runtime
from memory_store.storage.eraser import Eraser
from tests.conftest import PURPOSE, assert_problem, bearer, issue_token, write_memory


def count(runtime: Runtime, sql: str) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def alices_rows(runtime: Runtime) -> int:
    return count(runtime, "SELECT count(*) FROM memories WHERE user_id = 'alice'")


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Eraser, "INLINE_ROWS", 4)
    monkeypatch.setattr(Eraser, "BATCH", 3)


@pytest.fixture
def no_eraser_thread(
    small_batches: None, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> Iterator[tuple[TestClient, Runtime]]:
    """A service whose eraser thread never runs: what the request leaves behind stays."""
    monkeypatch.setattr(Eraser, "start", lambda self: None)
    runtime = open_runtime(settings)
    with TestClient(create_app(settings, runtime)) as client:
        yield client, runtime
    runtime.close()


def test_a_large_forget_answers_at_once_hides_every_row_and_the_rest_is_deleted_after(
    no_eraser_thread: tuple[TestClient, Runtime],
) -> None:
    client, runtime = no_eraser_thread
    assistant = issue_token(runtime, Role.assistant)
    alice = issue_token(runtime, Role.user, "alice")
    compliance = issue_token(runtime, Role.compliance)
    ids = [write_memory(client, assistant, content=f"fact {n}")["id"] for n in range(10)]
    edit = client.patch(
        f"/v1/me/memories/{ids[0]}", json={"content": "fact 0, corrected"}, headers=bearer(alice)
    )
    assert edit.status_code == 200
    bobs = write_memory(client, assistant, user_id="bob", content="bob stays")

    runtime.audit_log.checkpoint()  # published: the trail after the forget must extend it
    receipt = client.delete("/v1/me", headers=bearer(alice)).json()
    assert (receipt["memories"], receipt["memory_versions"]) == (10, 1)
    assert receipt["data_key_destroyed"] is True and receipt["rows_deleted"] is False
    assert alices_rows(runtime) == 10  # more than INLINE_ROWS: left to the eraser

    # What is left is invisible to everyone, and the user starts afresh beside it.
    listed = client.get(
        "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(assistant)
    )
    assert listed.status_code == 200 and listed.json()["items"] == []
    remaining = [
        i for i in ids if count(runtime, f"SELECT count(*) FROM memories WHERE id = '{i}'")
    ]
    assert remaining
    hidden = client.get(
        f"/v1/users/alice/memories/{remaining[0]}",
        params={"purpose": PURPOSE},
        headers=bearer(assistant),
    )
    assert_problem(hidden, 404)
    fresh = write_memory(client, assistant, content="a new start")
    new_alice = issue_token(runtime, Role.user, "alice")
    mine = client.get("/v1/me/memories", headers=bearer(new_alice)).json()["items"]
    assert [m["content"] for m in mine] == ["a new start"]
    assert (
        client.get("/v1/me/export", headers=bearer(new_alice)).json()["memories"][0]["id"]
        == (fresh["id"])
    )

    assert runtime.eraser.drain() == 1
    assert alices_rows(runtime) == 1  # only the new start
    assert count(runtime, "SELECT count(*) FROM memory_versions WHERE user_id = 'alice'") == 0
    assert count(runtime, "SELECT count(*) FROM memory_erasures") == 0
    assert runtime.eraser.drain() == 0
    assert client.get(
        f"/v1/users/bob/memories/{bobs['id']}",
        params={"purpose": PURPOSE},
        headers=bearer(assistant),
    ).is_success
    verdict = client.get("/v1/audit/verify", headers=bearer(compliance)).json()
    assert verdict["ok"] is True and verdict["anchored"] is True  # by the checkpoint before


def test_the_eraser_thread_deletes_what_the_request_left(
    small_batches: None, settings: Settings
) -> None:
    runtime = open_runtime(settings)
    try:
        with TestClient(create_app(settings, runtime)) as client:
            assistant = issue_token(runtime, Role.assistant)
            alice = issue_token(runtime, Role.user, "alice")
            for n in range(12):
                write_memory(client, assistant, content=f"fact {n}")
            receipt = client.delete("/v1/me", headers=bearer(alice)).json()
            assert receipt["memories"] == 12 and receipt["rows_deleted"] is False
            assert wait_for(lambda: alices_rows(runtime) == 0), "the eraser did not finish"
            assert wait_for(lambda: runtime.eraser.pending() == 0)
    finally:
        runtime.close()


def test_an_erasure_interrupted_before_the_key_was_destroyed_resumes_at_the_next_start(
    small_batches: None, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setattr(Eraser, "start", lambda self: None)
    runtime = open_runtime(settings)
    with TestClient(create_app(settings, runtime)) as client:
        assistant = issue_token(runtime, Role.assistant)
        for n in range(7):
            write_memory(client, assistant, content=f"fact {n}")
    # The forget got as far as marking the rows, then the process died.
    counts = runtime.eraser.begin("alice", utc_now())
    assert counts.memories == 7
    assert runtime.keyring.key_for_read("alice") is not None
    runtime.close()

    monkeypatch.undo()  # the next start runs the eraser thread
    restarted = open_runtime(settings)
    try:
        assert wait_for(lambda: restarted.eraser.pending() == 0), "the erasure did not resume"
        assert alices_rows(restarted) == 0
        assert restarted.keyring.key_for_read("alice") is None  # the key went too
    finally:
        restarted.close()

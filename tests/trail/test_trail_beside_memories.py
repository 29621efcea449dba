"""The audit trail's tables in the memory database (MEMORY_STORE_AUDIT_DATABASE_URL the same as
MEMORY_STORE_DATABASE_URL): a write's record and its row commit in one transaction, and
everything else holds as with a trail of its own: a failed record stores nothing, a refused
insert keeps the record of the attempt, reads are recorded before they disclose, the trail
verifies alone. On SQLite and on PostgreSQL (the suite's two runs)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audit import AuditRecord
from memory_store.app import create_app
from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.runtime import Runtime, open_runtime
from memory_store.storage.audit_writer import AuditAppendError
from memory_store.trail.verification import verify_stored
from tests.conftest import PURPOSE, assert_problem, bearer, issue_token


def _settings(data_dir: Path, **extra: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        log_format="json",
        retention_sweep_seconds=0,
        kek_rotate_every=0,
        max_memories_per_user=25,
        **extra,
    )


@pytest.fixture
def beside(tmp_path: Path) -> Settings:
    memory_url = _settings(tmp_path / "var").resolved_database_url()
    return _settings(tmp_path / "var", audit_database_url=memory_url)


@pytest.fixture
def store(beside: Settings) -> Iterator[Runtime]:
    opened = open_runtime(beside)
    yield opened
    opened.close()


@pytest.fixture
def api(beside: Settings, store: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(beside, store)) as client:
        yield client


def write(client: TestClient, token: str, content: str) -> Any:
    return client.post(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE},
        json={"content": content, "category": "preferences"},
        headers=bearer(token),
    )


def records(store: Runtime, action: str) -> list[AuditRecord]:
    return [r for r in store.audit_store.iter_records() if r.action == action]


def test_a_write_and_its_record_commit_in_one_transaction(api: TestClient, store: Runtime) -> None:
    assert store.settings.trail_beside_memories() and store.auditor.beside_memories
    token = issue_token(store, Role.assistant)
    memory_batches = store.memory_writer.batches_committed
    trail_batches = store.audit_log.batches_committed

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: write(api, token, f"fact {n}"), range(20)))
    assert [answer.status_code for answer in answers] == [201] * 20

    # Every row went in with its record, in the trail's transactions: none of its own.
    assert store.memory_writer.batches_committed == memory_batches
    assert store.audit_log.batches_committed > trail_batches
    written = {answer.json()["id"] for answer in answers}
    recorded = {memory_id for r in records(store, "memory.write") for memory_id in r.memory_ids}
    assert recorded == written
    page = api.get(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE, "limit": 100},
        headers=bearer(token),
    )
    assert {item["id"] for item in page.json()["items"]} == written
    result = verify_stored(
        store.audit_store, store.audit_log.signing_key, [], allow_unanchored=True
    )
    assert result.ok, result.problem


def _failing(*_args: Any) -> Future[Any]:
    failed: Future[Any] = Future()
    failed.set_exception(AuditAppendError("disk full"))
    return failed


def test_a_write_whose_record_fails_stores_nothing(
    api: TestClient, store: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = issue_token(store, Role.assistant)
    monkeypatch.setattr(store.audit_log.writer, "begin_change", _failing)
    assert_problem(write(api, token, "never stored"), 503, "audit-unavailable")
    monkeypatch.undo()
    page = api.get("/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(token))
    assert page.json()["items"] == []


def test_a_refused_insert_keeps_the_record_of_the_attempt_and_stores_nothing(
    api: TestClient, store: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The insert counts the user's memories under the write lock: full, it stores nothing;
    its record (of the attempt) stays, and the refusal is recorded beside it."""
    token = issue_token(store, Role.assistant)
    for n in range(25):
        assert write(api, token, f"fact {n}").status_code == 201
    # Past the check before the insert (as a concurrent write would be): the insert refuses.
    monkeypatch.setattr(store.memories._memories, "count", lambda _user: 0)
    assert_problem(write(api, token, "one too many"), 409)
    attempts = records(store, "memory.write")
    assert len([r for r in attempts if r.outcome == "allowed"]) == 26
    assert [r.reason for r in attempts if r.outcome == "denied"] == ["quota-exceeded"]
    monkeypatch.undo()
    assert store.memories._memories.count("alice") == 25


def test_a_read_is_recorded_before_it_discloses(
    api: TestClient, store: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = issue_token(store, Role.assistant)
    assert write(api, token, "the secret recipe").status_code == 201
    monkeypatch.setattr(store.audit_log, "begin_append", _failing)
    page = api.get("/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(token))
    assert_problem(page, 503, "audit-unavailable")
    assert "secret recipe" not in page.text

"""Abuse limits: per-token rate limits (429 with Retry-After), a per-user memory quota, and no
CORS unless configured."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlalchemy import text

from memory_store.app import create_app
from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.errors import QuotaExceeded
from memory_store.runtime import Runtime, open_runtime
from memory_store.schemas import MemoryCreate
from tests.conftest import PURPOSE, assert_problem, bearer, issue_token, write_memory


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[TestClient, Runtime]]:
    settings = Settings(
        data_dir=tmp_path / "var",
        retention_sweep_seconds=0,
        rate_limit_per_minute=60,
        rate_limit_burst_seconds=3,
    )
    runtime = open_runtime(settings)
    with TestClient(create_app(settings, runtime)) as client:
        yield client, runtime
    runtime.close()


def test_a_token_over_its_rate_gets_429_with_retry_after_then_recovers(
    limited: tuple[TestClient, Runtime],
) -> None:
    client, runtime = limited
    token, other = issue_token(runtime, Role.user, "alice"), issue_token(runtime, Role.user, "bob")
    with freeze_time("2026-06-01T12:00:00Z") as frozen:
        for _ in range(3):
            assert client.get("/v1/me", headers=bearer(token)).status_code == 200
        refused = client.get("/v1/me", headers=bearer(token))
        body = assert_problem(refused, 429, "rate-limited")
        assert refused.headers["retry-after"] == "1" and body["retry_after"] == 1
        assert client.get("/v1/me", headers=bearer(other)).status_code == 200  # its own bucket
        frozen.tick(1.0)  # one request a second refills
        assert client.get("/v1/me", headers=bearer(token)).status_code == 200
        assert_problem(client.get("/v1/me", headers=bearer(token)), 429, "rate-limited")


def test_a_flood_of_bad_tokens_is_limited_and_does_not_flood_the_audit_trail(
    limited: tuple[TestClient, Runtime],
) -> None:
    client, runtime = limited
    with freeze_time("2026-06-01T12:00:00Z"):
        statuses = [
            client.get("/v1/me", headers={"Authorization": f"Bearer mst_guess{i}"}).status_code
            for i in range(10)
        ]
    assert statuses == [401] * 3 + [429] * 7
    refusals = [r for r in runtime.audit_store.iter_records() if r.action == "auth"]
    assert len(refusals) == 3


def test_the_memory_quota_refuses_writes_beyond_it_and_stores_nothing(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "var", retention_sweep_seconds=0, max_memories_per_user=2
    )
    runtime = open_runtime(settings)
    with TestClient(create_app(settings, runtime)) as client:
        _quota(client, runtime)
    runtime.close()


def _quota(client: TestClient, runtime: Runtime) -> None:
    assistant = issue_token(runtime, Role.assistant)
    alice = issue_token(runtime, Role.user, "alice")
    first = write_memory(client, assistant, content="one")
    write_memory(client, assistant, content="two")
    refused = client.post(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE},
        json={"content": "three", "category": "preferences"},
        headers=bearer(assistant),
    )
    body = assert_problem(refused, 409, "quota-exceeded")
    assert body["limit"] == 2 and "three" not in refused.text
    assert len(client.get("/v1/me/memories", headers=bearer(alice)).json()["items"]) == 2
    write_memory(client, assistant, user_id="bob", content="bob has room")
    client.delete(f"/v1/me/memories/{first['id']}", headers=bearer(alice))
    write_memory(client, assistant, content="three, now that there is room")


def test_concurrent_writes_cannot_overshoot_the_quota(tmp_path: Path) -> None:
    """The count and the insert are one atomic step: writers racing for the last places
    store exactly up to the quota, and every other one is refused with 409."""
    settings = Settings(
        data_dir=tmp_path / "var", retention_sweep_seconds=0, max_memories_per_user=5
    )
    runtime = open_runtime(settings)
    try:
        assistant = runtime.tokens.authenticate(f"Bearer {issue_token(runtime, Role.assistant)}")
        barrier = threading.Barrier(12)

        def write(n: int) -> str:
            barrier.wait()
            try:
                body = MemoryCreate(content=f"racing write {n}", category="preferences")
                runtime.memories.write(assistant, "alice", PURPOSE, body)
            except QuotaExceeded:
                return "refused"
            return "stored"

        with ThreadPoolExecutor(max_workers=12) as pool:
            outcomes = list(pool.map(write, range(12)))
        assert outcomes.count("stored") == 5 and outcomes.count("refused") == 7
        with runtime.engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM memories")).scalar_one()
        assert stored == 5
    finally:
        runtime.close()


def test_no_cors_headers_unless_origins_are_configured(tmp_path: Path) -> None:
    origin = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    for origins, allowed in (([], False), (["https://app.example"], False)):
        settings = Settings(
            data_dir=tmp_path / f"var{len(origins)}",
            retention_sweep_seconds=0,
            cors_origins=origins,
        )
        with TestClient(create_app(settings)) as client:
            preflight = client.options("/v1/me/memories", headers=origin)
            assert ("access-control-allow-origin" in preflight.headers) is allowed
    settings = Settings(
        data_dir=tmp_path / "var2", retention_sweep_seconds=0, cors_origins=["https://app.example"]
    )
    with TestClient(create_app(settings)) as client:
        ok = client.options(
            "/v1/me/memories",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
        )
        assert ok.headers["access-control-allow-origin"] == "https://app.example"


def test_assistant_tokens_have_their_own_higher_limit(
    limited: tuple[TestClient, Runtime],
) -> None:
    """One assistant token serves many users, so people's limit must not throttle it."""
    client, runtime = limited
    assistant = issue_token(runtime, Role.assistant)
    with freeze_time("2026-06-01T12:00:00Z"):
        statuses = {
            client.get(
                "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(assistant)
            ).status_code
            for _ in range(10)
        }
    assert statuses == {200}


def test_the_workers_of_one_server_split_the_rate_between_them(tmp_path: Path) -> None:
    """With `serve --workers 2`, each worker allows half the rate: together, about the rate."""
    settings = Settings(
        data_dir=tmp_path / "var",
        retention_sweep_seconds=0,
        rate_limit_per_minute=120,  # 2 a second; a burst of 3 s: 6 at once
        rate_limit_burst_seconds=3,
        workers=2,
    )
    runtime = open_runtime(settings)
    try:
        with TestClient(create_app(settings, runtime)) as client:
            token = issue_token(runtime, Role.user, "alice")
            with freeze_time("2026-06-01T12:00:00Z"):
                answers = [
                    client.get("/v1/me", headers=bearer(token)).status_code for _ in range(4)
                ]
            # This worker's half: 1 a second, a burst of 3.
            assert answers == [200, 200, 200, 429]
    finally:
        runtime.close()

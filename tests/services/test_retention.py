"""Retention: a memory is visible until its expires_at and invisible to everyone after it;
the sweeper deletes expired rows for good, in the server and from the CLI."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlalchemy import text

from memory_store.app import create_app
from memory_store.cli import main
from memory_store.config import Settings
from memory_store.domain import Principal, Role
from memory_store.errors import Forbidden
from memory_store.runtime import Runtime, open_runtime
from tests.conftest import PURPOSE, assert_problem, bearer, issue_token, write_memory

WRITTEN_AT = "2026-01-01T00:00:00Z"


def row_ids(runtime: Runtime) -> set[str]:
    with runtime.engine.connect() as conn:
        return set(conn.execute(text("SELECT id FROM memories")).scalars())


def assistant_sees(client: TestClient, token: str, memory_id: str) -> bool:
    listed = client.get(
        "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(token)
    ).json()["items"]
    got = client.get(
        f"/v1/users/alice/memories/{memory_id}", params={"purpose": PURPOSE}, headers=bearer(token)
    )
    in_list = memory_id in [item["id"] for item in listed]
    assert in_list == got.is_success, "list and get must agree"
    if not got.is_success:
        assert_problem(got, 404, "not-found")
    return in_list


def user_sees(client: TestClient, token: str, memory_id: str) -> bool:
    listed = client.get("/v1/me/memories", headers=bearer(token)).json()["items"]
    got = client.get(f"/v1/me/memories/{memory_id}", headers=bearer(token))
    in_list = memory_id in [item["id"] for item in listed]
    assert in_list == got.is_success
    return in_list


def test_a_memory_is_visible_one_second_before_its_category_limit_and_gone_one_after(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    with freeze_time(WRITTEN_AT):
        memory = write_memory(client, assistant_token, category="schedule")  # 30 days
    assert memory["expires_at"] == "2026-01-31T00:00:00Z"
    with freeze_time("2026-01-30T23:59:59Z"):
        assert assistant_sees(client, assistant_token, memory["id"])
        assert user_sees(client, alice_token, memory["id"])
    with freeze_time("2026-01-31T00:00:01Z"):
        assert not assistant_sees(client, assistant_token, memory["id"])
        assert not user_sees(client, alice_token, memory["id"])


def test_the_sweeper_deletes_expired_rows_for_good_and_reports_how_many(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    with freeze_time(WRITTEN_AT):
        short = [write_memory(client, assistant_token, category="schedule")["id"] for _ in range(3)]
        long = write_memory(client, assistant_token, category="preferences")["id"]  # 730 days
    with freeze_time("2026-01-30T23:59:59Z"):
        assert runtime.sweeper.sweep() == 0
        assert row_ids(runtime) == {*short, long}
    with freeze_time("2026-01-31T00:00:01Z"):
        assert runtime.sweeper.sweep() == 3
        assert row_ids(runtime) == {long}
        assert runtime.sweeper.sweep() == 0


def test_sweep_from_the_cli_reports_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEMORY_STORE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("MEMORY_STORE_RETENTION_SWEEP_SECONDS", "0")
    settings = Settings()
    runtime = open_runtime(settings)
    token = issue_token(runtime, Role.assistant)
    with freeze_time(WRITTEN_AT), TestClient(create_app(settings, runtime)) as client:
        write_memory(client, token, category="schedule")
        write_memory(client, token, category="schedule")
    runtime.close()
    with freeze_time("2026-02-01T00:00:00Z"):
        assert main(["retention", "sweep"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "purged 2 expired memories"
    runtime = open_runtime(settings)
    assert row_ids(runtime) == set()
    runtime.close()


def test_the_server_sweeps_in_the_background(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", retention_sweep_seconds=0.1)
    runtime = open_runtime(settings)
    token = issue_token(runtime, Role.assistant)
    with TestClient(create_app(settings, runtime)) as client:
        expires = (datetime.now(UTC) + timedelta(seconds=0.5)).isoformat()
        memory = write_memory(client, token, expires_at=expires)
        assert row_ids(runtime) == {memory["id"]}
        deadline = time.monotonic() + 10
        while row_ids(runtime) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert row_ids(runtime) == set()
    runtime.close()


def test_a_user_may_bring_expiry_forward_but_not_push_it_back(
    client: TestClient, assistant_token: str, alice_token: str
) -> None:
    with freeze_time(WRITTEN_AT):
        memory = write_memory(client, assistant_token, category="schedule")
        path = f"/v1/me/memories/{memory['id']}"
        shorter = client.patch(
            path, json={"expires_at": "2026-01-10T00:00:00Z"}, headers=bearer(alice_token)
        )
        assert shorter.status_code == 200, shorter.text
        assert shorter.json()["expires_at"] == "2026-01-10T00:00:00Z"
        assert shorter.json()["version"] == 2
        later = client.patch(
            path, json={"expires_at": "2026-01-20T00:00:00Z"}, headers=bearer(alice_token)
        )
        assert_problem(later, 422, "invalid-request")
        past = client.patch(
            path, json={"expires_at": "2025-12-31T00:00:00Z"}, headers=bearer(alice_token)
        )
        assert_problem(past, 422, "invalid-request")
    with freeze_time("2026-01-10T00:00:01Z"):
        assert not assistant_sees(client, assistant_token, memory["id"])


def test_shortening_expiry_needs_the_owner(
    client: TestClient, assistant_token: str, bob_token: str
) -> None:
    memory = write_memory(client, assistant_token)
    path = f"/v1/me/memories/{memory['id']}"
    body = {"expires_at": "2026-12-20T00:00:00Z"}
    assert_problem(client.patch(path, json=body), 401, "unauthenticated")
    assert_problem(client.patch(path, json=body, headers=bearer(bob_token)), 404, "not-found")
    assert_problem(client.patch(path, json=body, headers=bearer(assistant_token)), 403, "forbidden")


def test_the_sweeper_is_refused_to_roles_the_policy_does_not_name(runtime: Runtime) -> None:
    assistant = Principal(token_id="t", name="t", role=Role.assistant, user_id=None)
    with pytest.raises(Forbidden):
        runtime.sweeper.sweep(assistant)

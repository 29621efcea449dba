"""Every forget answers with an erasure the requester can follow: gone here at once, final in
every copy at `final_at`, when the KEK epoch of the day is destroyed by the schedule."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from memory_store.app import create_app
from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.runtime import Runtime, open_runtime
from tests.conftest import PURPOSE, assert_problem, bearer, issue_token, write_memory

DAY = timedelta(days=1)


@pytest.fixture
def scheduled(settings: Settings) -> Iterator[tuple[TestClient, Runtime]]:
    """A service whose KEK epochs last a day (the schedule run by hand, below)."""
    daily = settings.model_copy(update={"kek_rotate_every": DAY.total_seconds()})
    runtime = open_runtime(daily)
    with TestClient(create_app(daily, runtime)) as client:
        yield client, runtime
    runtime.close()


def test_forgetting_one_memory_answers_where_its_erasure_is_and_it_becomes_final(
    scheduled: tuple[TestClient, Runtime],
) -> None:
    client, runtime = scheduled
    assistant = issue_token(runtime, Role.assistant)
    alice = issue_token(runtime, Role.user, "alice")
    memory = write_memory(client, assistant, content="the surprise party")
    answer = client.delete(f"/v1/me/memories/{memory['id']}", headers=bearer(alice))
    assert answer.status_code == 204 and answer.content == b""
    location = answer.headers["Location"]
    assert location.startswith("/v1/erasures/er_")

    status = client.get(location)  # no token: a forgotten user has none
    assert status.status_code == 200
    pending = status.json()
    assert (pending["kind"], pending["items"], pending["final"]) == ("memory", 1, False)
    final_at = runtime.keys.epoch_started() + DAY
    assert datetime.fromisoformat(pending["final_at"].replace("Z", "+00:00")) == final_at
    assert "alice" not in status.text and memory["id"] not in status.text

    assert runtime.keys.maintain(final_at) is True  # the schedule: rotate, retire
    done = client.get(location).json()
    assert done["final"] is True and done["id"] == pending["id"]


def test_with_prefer_return_representation_the_forget_answers_with_the_erasure(
    scheduled: tuple[TestClient, Runtime],
) -> None:
    client, runtime = scheduled
    assistant = issue_token(runtime, Role.assistant)
    memory = write_memory(client, assistant, content="likes figs")
    answer = client.delete(
        f"/v1/users/alice/memories/{memory['id']}",
        params={"purpose": PURPOSE},
        headers={**bearer(assistant), "Prefer": "return=representation"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert answer.headers["Location"] == f"/v1/erasures/{body['id']}"
    assert body["kind"] == "memory" and body["final"] is False and body["final_at"]


def test_the_receipt_of_forgetting_everything_names_its_erasure(
    scheduled: tuple[TestClient, Runtime],
) -> None:
    client, runtime = scheduled
    assistant = issue_token(runtime, Role.assistant)
    alice = issue_token(runtime, Role.user, "alice")
    write_memory(client, assistant, content="likes figs")
    receipt = client.delete("/v1/me", headers=bearer(alice)).json()
    status = client.get(f"/v1/erasures/{receipt['erasure_id']}").json()
    assert (status["kind"], status["items"], status["final"]) == ("everything", 1, False)
    assert status["final_at"] == receipt["final_at"]


def test_an_unknown_or_malformed_erasure_id_is_a_problem_not_a_crash(
    client: TestClient,
) -> None:
    assert_problem(client.get("/v1/erasures/er_unknown"), 404, "not-found")
    assert_problem(client.get("/v1/erasures/" + "x" * 65), 422)
    assert_problem(client.get("/v1/erasures/" + "x" * 40), 404, "not-found")


def test_without_a_schedule_an_erasure_is_final_when_the_operator_retires_the_epoch(
    runtime: Runtime,
) -> None:
    erasure = runtime.erasures.record("memory", 1)
    assert erasure.final is False and erasure.final_at is None
    runtime.keys.rotate()
    assert runtime.erasures.status(erasure.id).final is False  # the old epoch still exists
    assert runtime.keys.retire_unused() == [1]
    assert runtime.erasures.status(erasure.id).final is True

"""The list and get await the read's audit record as a future on the event loop (their reads
inline on SQLite, in a thread on PostgreSQL), and no content leaves before that record is
committed; a search still runs in a thread."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audit import AuditRecord
from memory_store.runtime import Runtime
from tests.conftest import PURPOSE, bearer, write_memory

SECRET = "the secret recipe"


@pytest.mark.parametrize("route", ["list", "get", "own list", "own get"])
def test_no_content_leaves_before_the_reads_record_is_committed(
    client: TestClient,
    runtime: Runtime,
    assistant_token: str,
    alice_token: str,
    monkeypatch: pytest.MonkeyPatch,
    route: str,
) -> None:
    memory = write_memory(client, assistant_token, content=SECRET)
    log = runtime.audit_log
    append = log.append
    held: list[tuple[AuditRecord, Future[AuditRecord]]] = []
    queued = threading.Event()

    def held_back(record: AuditRecord) -> Future[AuditRecord]:
        """Queue the record, but commit it only when the test says so."""
        done: Future[AuditRecord] = Future()
        held.append((record, done))
        queued.set()
        return done

    monkeypatch.setattr(log, "begin_append", held_back)
    requests: dict[str, tuple[str, dict[str, Any], str]] = {
        "list": ("/v1/users/alice/memories", {"purpose": PURPOSE}, assistant_token),
        "get": (f"/v1/users/alice/memories/{memory['id']}", {"purpose": PURPOSE}, assistant_token),
        "own list": ("/v1/me/memories", {}, alice_token),
        "own get": (f"/v1/me/memories/{memory['id']}", {}, alice_token),
    }
    path, params, token = requests[route]
    answers: list[Any] = []
    caller = threading.Thread(
        target=lambda: answers.append(client.get(path, params=params, headers=bearer(token)))
    )
    caller.start()
    assert queued.wait(10), "the read queued no record"
    caller.join(0.3)
    assert caller.is_alive() and not answers, "answered before its record was committed"
    ((record, done),) = held
    done.set_result(append(record))  # now the record is committed, for real
    caller.join(10)
    (response,) = answers
    assert response.status_code == 200 and SECRET in response.text
    assert record.action in ("memory.list", "memory.read")


def test_a_search_still_answers_and_is_recorded(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    write_memory(client, assistant_token, content=SECRET)
    response = client.get(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE, "q": "recipe"},
        headers=bearer(assistant_token),
    )
    assert [m["content"] for m in response.json()["items"]] == [SECRET]
    last = list(runtime.audit_store.iter_records())[-1]
    assert (last.action, last.result_count) == ("memory.search", 1)

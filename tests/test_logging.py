"""Logs: one JSON line per event with the request id, and never a content, query or token."""

from __future__ import annotations

import io
import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from memory_store.logging import REDACTED, get_logger
from tests.conftest import PURPOSE, bearer, write_memory

CONTENT = "canary-4242 has a secret pilot licence"
QUERY = "pilot licence"


def parsed_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_full_requests_log_no_content_no_query_and_no_token(
    json_logs: io.StringIO,
    client: TestClient,
    assistant_token: str,
    alice_token: str,
) -> None:
    memory = write_memory(client, assistant_token, content=CONTENT, source="canary-source-99")
    client.get(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE, "q": QUERY},
        headers=bearer(assistant_token),
    )
    client.get(f"/v1/me/memories/{memory['id']}", headers=bearer(alice_token))
    client.get("/v1/me/memories", params={"q": QUERY}, headers=bearer(alice_token))
    client.post(  # refused requests log too
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE},
        json={"content": CONTENT, "category": "nope"},
        headers=bearer(assistant_token),
    )
    client.get("/v1/me/memories", headers={"Authorization": f"Bearer {alice_token}x"})

    text = json_logs.getvalue()
    lines = parsed_lines(text)
    requests = [line for line in lines if line["event"] == "request"]
    assert len(requests) == 6
    assert all(str(line["request_id"]).startswith("req_") for line in requests)
    assert {line["route"] for line in requests} == {
        "/v1/users/{user_id}/memories",
        "/v1/me/memories/{memory_id}",
        "/v1/me/memories",
    }
    for secret in (CONTENT, "canary", QUERY, "pilot", assistant_token, alice_token, "mst_"):
        assert secret not in text, f"{secret!r} leaked into the logs"


def test_the_request_id_of_a_response_is_on_its_log_line(
    json_logs: io.StringIO, client: TestClient
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "trace-from-the-gateway-1"})
    assert response.headers["x-request-id"] == "trace-from-the-gateway-1"
    lines = parsed_lines(json_logs.getvalue())
    (line,) = [line for line in lines if line.get("client_request_id")]
    assert line["client_request_id"] == "trace-from-the-gateway-1"
    assert str(line["request_id"]).startswith("req_")  # the service's own, beside it


def test_a_malformed_incoming_request_id_is_replaced(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "bad id\twith junk"})
    assert response.headers["x-request-id"].startswith("req_")


def test_secret_fields_are_redacted_whoever_logs_them(
    json_logs: io.StringIO,
) -> None:
    get_logger("test").info("oops", content=CONTENT, token="mst_abc", q=QUERY, memory_id="m1")
    line = parsed_lines(json_logs.getvalue())[-1]
    assert line["content"] == REDACTED and line["token"] == REDACTED and line["q"] == REDACTED
    assert line["memory_id"] == "m1"


def test_an_unexpected_error_is_500_problem_and_its_message_is_not_logged(
    json_logs: io.StringIO,
    app: FastAPI,
    assistant_token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"bug while handling {CONTENT}")

    for name in ("list_for_purpose", "begin_list_for_purpose"):  # threaded, or on the loop
        monkeypatch.setattr(app.state.runtime.memories, name, explode)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(
            "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(assistant_token)
        )
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert CONTENT not in response.text
    text = json_logs.getvalue()
    assert "unhandled_error" in text and "RuntimeError" in text
    assert CONTENT not in text

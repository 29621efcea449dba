"""The HTTP layer's own work: the thread limit and the connection pools, the order of
authentication and validation, and the access log line."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio.to_thread
import pytest
import structlog
from fastapi.testclient import TestClient
from sqlalchemy import event

from memory_store.app import create_app
from memory_store.config import SERVER_POOL_SIZE, SQLITE_POOL_SIZE, Settings
from memory_store.domain import Role
from memory_store.logging import configure_logging
from memory_store.runtime import Runtime
from memory_store.storage.engines import engine_pool_size
from tests.conftest import BACKEND, PURPOSE, assert_problem, bearer, issue_token, write_memory


@pytest.fixture
def logs() -> Iterator[None]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    yield
    root.handlers, root.level = saved_handlers, saved_level
    structlog.reset_defaults()


def thread_limit(client: TestClient) -> int:
    """The thread limit of the app's event loop, as its sync endpoints see it."""

    async def read() -> int:
        return int(anyio.to_thread.current_default_thread_limiter().total_tokens)

    assert client.portal is not None
    return client.portal.call(read)


def test_the_pool_size_defaults_to_the_backend(settings: Settings) -> None:
    expected = SERVER_POOL_SIZE if BACKEND == "postgresql" else SQLITE_POOL_SIZE
    assert settings.resolved_db_pool_size() == expected
    assert Settings(db_pool_size=3).resolved_db_pool_size() == 3


def test_requests_are_served_by_as_many_threads_as_pooled_connections(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"db_pool_size": 3})
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    engines = (runtime.engine, runtime.keystore_engine, runtime.audit_engine)
    assert [engine_pool_size(engine) for engine in engines] == [3, 3, 3]
    with TestClient(app) as client:
        assert thread_limit(client) == 3
        assert client.get("/healthz").status_code == 200


def test_under_load_connections_are_reused_not_opened_and_closed(settings: Settings) -> None:
    """Before the pool matched the thread limit, 32 concurrent requests opened (and closed)
    hundreds of connections a second, each running its PRAGMAs. Now the connections opened
    are bounded by the threads, whatever the number of requests: each request thread uses
    at most one pooled connection per database (and, on SQLite, rawdb keeps one more per
    thread)."""
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    pool_size = engine_pool_size(runtime.engine)
    assert pool_size is not None
    opened: list[str] = []
    lock = threading.Lock()

    def count(name: str) -> Any:
        def connected(*_args: Any) -> None:
            with lock:
                opened.append(name)

        return connected

    for name, engine in (("memory", runtime.engine), ("keystore", runtime.keystore_engine)):
        event.listen(engine, "connect", count(name))
    token = issue_token(runtime, Role.assistant)
    with TestClient(app) as client:
        assert thread_limit(client) == pool_size
        for n in range(5):
            write_memory(client, token, content=f"fact {n}")

        def list_twice(_: int) -> list[int]:
            return [
                client.get(
                    "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(token)
                ).status_code
                for _ in range(2)
            ]

        with ThreadPoolExecutor(32) as pool:
            statuses = [status for pair in pool.map(list_twice, range(160)) for status in pair]
    assert statuses == [200] * 320
    assert opened.count("memory") <= 2 * pool_size
    assert opened.count("keystore") <= 2 * pool_size


def test_without_a_token_the_answer_is_401_before_any_validation(client: TestClient) -> None:
    """get_principal is a dependency, so it runs before the parameters are validated: a
    caller without a token learns nothing about what the API expects."""
    response = client.get("/v1/users/alice/memories", params={"purpose": PURPOSE, "limit": 0})
    assert_problem(response, 401, "unauthenticated")
    response = client.post(
        "/v1/users/alice/memories", params={"purpose": PURPOSE}, json={"content": 3}
    )
    assert_problem(response, 401, "unauthenticated")


def test_healthz_and_the_ui_redirect_answer_on_the_event_loop(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    redirect = client.get("/ui", follow_redirects=False)
    assert redirect.status_code == 308
    assert redirect.headers["location"] == "/ui/"
    assert redirect.headers["x-frame-options"] == "DENY"
    assert redirect.headers["x-request-id"].startswith("req_")


def test_the_access_log_follows_a_reconfiguration(logs: None, client: TestClient) -> None:
    """The access logger is bound once per logging configuration, not once for good."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "info", stream=first)
    client.get("/healthz", headers={"X-Request-ID": "first-request-1"})
    configure_logging("console", "info", stream=second)
    client.get("/healthz", headers={"X-Request-ID": "second-request-2"})
    structlog.reset_defaults()
    configure_logging("json", "info", stream=first)
    client.get("/healthz", headers={"X-Request-ID": "third-request-3"})

    lines = [json.loads(line) for line in first.getvalue().splitlines()]
    requests = [line for line in lines if line["event"] == "request"]
    assert [line["client_request_id"] for line in requests] == [
        "first-request-1",
        "third-request-3",
    ]
    assert all(line["route"] == "/healthz" and line["status"] == 200 for line in requests)
    assert "second-request-2" in second.getvalue()
    assert "{" not in second.getvalue()  # the console format, not JSON


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("abcdefgh", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("short", False),
        ("has space 123", False),
        ("ümlaut-12345", False),
    ],
)
def test_an_incoming_request_id_is_kept_only_when_it_is_plain(
    client: TestClient, header: str, kept: bool
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": header.encode()})
    if kept:
        assert response.headers["x-request-id"] == header
    else:
        assert response.headers["x-request-id"].startswith("req_")
        assert len(response.headers["x-request-id"]) == 28


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(
    client: TestClient, assistant_token: str
) -> None:
    response = client.post(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE},
        content=b"{}",
        headers={**bearer(assistant_token), "Content-Length": str(10**9)},
    )
    assert_problem(response, 413, "body-too-large")

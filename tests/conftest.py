"""Shared fixtures: a fresh service per test, under a temporary data dir, with tokens."""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient

from memory_store.app import create_app
from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.logging import configure_logging
from memory_store.runtime import Runtime, open_runtime
from tests.postgres import Cluster, start_cluster

PURPOSE = "personalization"

# `MEMORY_STORE_TEST_DATABASE=postgresql pytest` runs the suite against a throwaway
# PostgreSQL cluster; by default it runs against SQLite files under each test's tmp_path.
BACKEND = os.environ.get("MEMORY_STORE_TEST_DATABASE", "sqlite")


def pytest_configure(config: pytest.Config) -> None:
    # The suite never touches the real user's store: the default data dir (the platform's
    # user data folder) and MEMORY_STORE_DATA_DIR both point into a throwaway folder for every
    # test and every process it starts, unless a test points them elsewhere.
    sandbox = Path(tempfile.mkdtemp(prefix="memory-store-tests-"))
    os.environ["XDG_DATA_HOME"] = str(sandbox / "xdg")
    os.environ["MEMORY_STORE_DATA_DIR"] = str(sandbox / "var")
    config.addinivalue_line(
        "markers", "sqlite_only: the test inspects SQLite files directly; skipped on PostgreSQL"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND != "postgresql":
        return
    skip = pytest.mark.skip(reason="inspects SQLite files directly")
    for item in items:
        if "sqlite_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster | None]:
    if BACKEND != "postgresql":
        yield None
        return
    cluster = start_cluster()
    if cluster is None:
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql: PostgreSQL run skipped")
    yield cluster
    cluster.stop()


@pytest.fixture(autouse=True)
def _database_backend(pg_cluster: Cluster | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL, point every Settings() of the test (and its subprocesses) at three
    fresh schemas: memories, key store, audit trail."""
    if pg_cluster is None:
        return
    urls = pg_cluster.fresh_urls()
    monkeypatch.setenv("MEMORY_STORE_DATABASE_URL", urls["database"])
    monkeypatch.setenv("MEMORY_STORE_KEYSTORE_URL", urls["keystore"])
    monkeypatch.setenv("MEMORY_STORE_AUDIT_DATABASE_URL", urls["audit"])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # No background sweeper, key rotation or recall indexer: tests that travel in time would
    # race them (recall's tests run the indexer's `catch_up` themselves). Tests of those
    # build their own settings.
    return Settings(
        data_dir=tmp_path / "var",
        log_format="json",
        retention_sweep_seconds=0,
        kek_rotate_every=0,
        recall_index_seconds=0,
    )


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures logging for the whole process; undo that after each test, so no
    handler outlives the captured stream it writes to."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    yield
    root.handlers, root.level = saved_handlers, saved_level
    structlog.reset_defaults()


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Everything the service logs during the test, as the JSON lines it would print."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    yield stream
    root.handlers, root.level = saved_handlers, saved_level
    structlog.reset_defaults()


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    opened = open_runtime(settings)
    yield opened
    opened.close()


@pytest.fixture
def app(settings: Settings, runtime: Runtime) -> FastAPI:
    return create_app(settings, runtime)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def issue_token(runtime: Runtime, role: Role, user_id: str | None = None) -> str:
    return runtime.tokens.issue(role=role, name=f"test-{role.value}", user_id=user_id).token


@pytest.fixture
def assistant_token(runtime: Runtime) -> str:
    return issue_token(runtime, Role.assistant)


@pytest.fixture
def alice_token(runtime: Runtime) -> str:
    return issue_token(runtime, Role.user, "alice")


@pytest.fixture
def bob_token(runtime: Runtime) -> str:
    return issue_token(runtime, Role.user, "bob")


@pytest.fixture
def compliance_token(runtime: Runtime) -> str:
    return issue_token(runtime, Role.compliance)


@pytest.fixture
def admin_token(runtime: Runtime) -> str:
    return issue_token(runtime, Role.admin)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def write_memory(
    client: TestClient,
    token: str,
    user_id: str = "alice",
    content: str = "prefers window seats",
    category: str = "preferences",
    purpose: str = PURPOSE,
    **extra: Any,
) -> dict[str, Any]:
    """Write one memory through the API and return its JSON; fails the test unless 201."""
    response = client.post(
        f"/v1/users/{user_id}/memories",
        params={"purpose": purpose},
        json={"content": content, "category": category, **extra},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_problem(response: Any, status: int, type_slug: str | None = None) -> dict[str, Any]:
    """The response is a problem+json of this status (and type), with a request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    if type_slug is not None:
        assert body["type"] == f"/problems/{type_slug}"
    return body

"""Shared fixtures: a fresh service per test, under a temporary data dir, with tokens."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient

from memory_store.app import create_app
from memory_store.config import Settings
from memory_store.models import Role
from memory_store.runtime import Runtime, open_runtime

PURPOSE = "personalization"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # No background sweeper: tests that travel in time would race it. Tests of the sweeper
    # build their own settings.
    return Settings(data_dir=tmp_path / "var", log_format="json", retention_sweep_seconds=0)


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

"""The server as a real process, for the tests of this folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.runtime import open_runtime
from tests.live_server import LiveServer, server_environment


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """`memory-store serve`, not started yet (the test starts it, after issuing its tokens
    with the same environment), under tmp_path/var, its output in tmp_path/server.log;
    stopped with SIGTERM at the end."""
    server_environment(monkeypatch, tmp_path / "var")
    live = LiveServer(tmp_path / "server.log")
    yield live
    live.stop()


def issue_tokens(assistant_name: str, users: list[str]) -> tuple[str, dict[str, str]]:
    """An assistant token and a user token per user id, issued with the test's environment
    (so, on the PostgreSQL run, into its schemas) before the server starts."""
    runtime = open_runtime(Settings())
    try:
        assistant = runtime.tokens.issue(role=Role.assistant, name=assistant_name).token
        tokens = {
            user_id: runtime.tokens.issue(role=Role.user, name=user_id, user_id=user_id).token
            for user_id in users
        }
    finally:
        runtime.close()
    return assistant, tokens

"""One real server for the framework adapters' tests: `memory-store serve` as a process
(tests/live_server.py), started once for tests/integrations, on SQLite files or, on the
PostgreSQL run, on schemas of its own. Its tokens are issued before it starts: the assistant's
and one user token per id in USERS (the graph and agent tests use those ids, one each, so
that they never see each other's memories)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live_server import LiveServer, issue_tokens, server_environment
from tests.postgres import Cluster

USERS = ["graph-alice", "graph-async", "agent-alice", "agent-refused", "agent-extract"]


@dataclass(frozen=True)
class Server:
    url: str
    assistant: str
    users: dict[str, str]  # user id -> that user's token


@pytest.fixture(scope="session")
def memory_server(
    tmp_path_factory: pytest.TempPathFactory, pg_cluster: Cluster | None
) -> Iterator[Server]:
    home: Path = tmp_path_factory.mktemp("integrations")
    live = LiveServer(home / "server.log")
    with pytest.MonkeyPatch.context() as env:
        server_environment(env, home / "var")
        if pg_cluster is not None:
            urls = pg_cluster.fresh_urls()
            env.setenv("MEMORY_STORE_DATABASE_URL", urls["database"])
            env.setenv("MEMORY_STORE_KEYSTORE_URL", urls["keystore"])
            env.setenv("MEMORY_STORE_AUDIT_DATABASE_URL", urls["audit"])
        assistant, users = issue_tokens("framework-tests", USERS)
        live.start()
    try:
        yield Server(live.base_url, assistant, users)
    finally:
        live.stop()


@pytest.fixture
def anyio_backend() -> str:
    """The async tests (marked anyio) run on asyncio, as the frameworks do."""
    return "asyncio"

"""The server as a real process, for the tests of this folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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

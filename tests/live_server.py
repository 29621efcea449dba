"""A real `memory-store serve` process for the tests that need one (fuzzing, crashes, load,
at rest, MCP): on a 127.0.0.1 port, with the test's environment (so, on the PostgreSQL run, the
test's schemas), its output appended to a log file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.runtime import open_runtime


def server_environment(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    """The environment a server under test runs with (it and every CLI process beside it):
    its data dir, both rate limits off (they would mask a bug, or throttle a load), no
    retention sweeper (it would race the test), JSON logs. Set through `monkeypatch`, so it
    ends with the test."""
    monkeypatch.setenv("MEMORY_STORE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MEMORY_STORE_RATE_LIMIT_PER_MINUTE", "0")
    monkeypatch.setenv("MEMORY_STORE_ASSISTANT_RATE_LIMIT_PER_MINUTE", "0")
    monkeypatch.setenv("MEMORY_STORE_RETENTION_SWEEP_SECONDS", "0")
    monkeypatch.setenv("MEMORY_STORE_LOG_FORMAT", "json")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def console_script() -> Path:
    """The `memory-store` console script installed beside this interpreter (in the venv
    that `make test` made), wherever the checkout is."""
    return Path(sys.executable).with_name("memory-store")


def cli() -> list[str]:
    """The `memory-store` command of this environment."""
    script = console_script()
    return [str(script)] if script.exists() else [sys.executable, "-m", "memory_store"]


def run_cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """The command as the operator runs it: a separate process, the same environment."""
    return subprocess.run(
        [*cli(), *args],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class LiveServer:
    """`memory-store serve` on a 127.0.0.1 port (the same one across restarts when it can),
    with the test's environment; its output is appended to `log_path`."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        for _attempt in range(3):
            self.port = self.port or free_port()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [*cli(), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                    env=os.environ.copy(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready(timeout):
                return
            tail = self.log_path.read_bytes()[-4000:].lower()
            if b"address already in use" not in tail and b"is taken" not in tail:
                break
            self.port = 0
        raise AssertionError(f"the server did not start:\n{self.log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_bytes()[-chars:].decode(errors="replace")


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """`memory-store serve`, not started yet (the test starts it, after issuing its tokens
    with the same environment), under tmp_path/var, its output in tmp_path/server.log;
    stopped with SIGTERM at the end. A conftest imports it where its tests need it."""
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

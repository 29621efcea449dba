"""`memory-store serve --workers N` (MEMORY_STORE_WORKERS): several server processes on one
listening socket, one database (SQLite file or PostgreSQL), one audit trail.

A real server with two workers takes concurrent writes, survives one of its workers being
killed (the other answers meanwhile, the supervisor starts a replacement), and stops cleanly;
its audit trail then verifies, gap-free. The retention sweeper runs once per server, in the
supervising process, not once per worker. A consent withdrawn or a token revoked through one
worker holds in the other on its very next request (each found by the socket it holds), so no
per-process cache may ever answer stale. Bad values are refused with a clear message.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from uvicorn.config import STARTUP_FAILURE

from memory_store.app import worker_app
from memory_store.cli import main
from memory_store.config import MAX_WORKERS
from tests.live_server import cli, free_port, run_cli, server_environment

PURPOSE = "personalization"
STARTED = re.compile(rb"Started server process \[(\d+)\]")


class Workers:
    """`memory-store serve --workers 2` as a real process, its output in a log file."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = free_port()
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*cli(), "serve", "--port", str(self.port), "--workers", "2"],
                env=os.environ.copy(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> bytes:
        return self.log_path.read_bytes()

    def worker_pids(self) -> list[int]:
        """Every worker process started so far, in order."""
        return [int(pid) for pid in STARTED.findall(self.log())]

    def wait_for_workers(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log().decode(errors="replace")
            if self.log().count(b"Application startup complete") >= count:
                return
            time.sleep(0.1)
        raise AssertionError(f"{count} workers did not start:\n{self.log().decode()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.process.returncode


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    server_environment(monkeypatch, tmp_path / "var")
    monkeypatch.delenv("MEMORY_STORE_WORKERS", raising=False)
    return tmp_path


@pytest.fixture
def workers(environment: Path) -> Iterator[Workers]:
    server = Workers(environment / "server.log")
    try:
        yield server
    finally:
        server.stop()


def issue_token(role: str = "assistant") -> str:
    done = run_cli("tokens", "create", "--role", role)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def write(base_url: str, token: str, n: int, **extra: Any) -> httpx.Response:
    # A new connection per request, so that the kernel hands them to either worker.
    return httpx.post(
        f"{base_url}/v1/users/user-{n % 7}/memories",
        params={"purpose": PURPOSE},
        json={"content": f"fact {n}: likes tea", "category": "preferences", **extra},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def audit_export() -> list[dict[str, Any]]:
    """The trail's records, in order (the export's record lines)."""
    done = run_cli("audit", "export")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return [line["record"] for line in lines if line["type"] == "record"]


def verify_trail() -> dict[str, Any]:
    done = run_cli("audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["ok"] is True
    return result


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


# -- a live server with two workers -----------------------------------------------------------


def test_two_workers_serve_one_database_and_one_gap_free_audit_trail(workers: Workers) -> None:
    token = issue_token()
    workers.wait_for_workers(2)
    first, second = workers.worker_pids()
    assert first != second
    assert _parent_of(first) == _parent_of(second) == workers.process.pid

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: write(workers.base_url, token, n), range(120)))
    assert [answer.status_code for answer in answers] == [201] * 120, answers[0].text

    # One worker dies: the other one answers meanwhile, on the same socket, and the
    # supervisor starts a replacement.
    os.kill(first, signal.SIGKILL)
    meanwhile = [write(workers.base_url, token, n).status_code for n in range(120, 140)]
    assert meanwhile == [201] * 20
    workers.wait_for_workers(3)
    assert len(workers.worker_pids()) == 3

    listed = httpx.get(
        f"{workers.base_url}/v1/users/user-0/memories",
        params={"purpose": PURPOSE, "limit": 100},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == len([n for n in range(140) if n % 7 == 0])

    assert workers.stop() == 0
    records = audit_export()
    assert [record["seq"] for record in records] == list(range(1, len(records) + 1))
    writes = [r for r in records if r["action"] == "memory.write" and r["outcome"] == "allowed"]
    assert len(writes) == 140
    assert verify_trail()["records"] == len(records) + 1  # and the verification's own record


def test_the_retention_sweeper_runs_once_in_the_supervising_process(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMORY_STORE_RETENTION_SWEEP_SECONDS", "0.5")
    token = issue_token()
    server = Workers(environment / "server.log")
    try:
        server.wait_for_workers(2)
        expires = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        for n in range(3):
            assert write(server.base_url, token, 7 * n, expires_at=expires).status_code == 201
        deadline = time.monotonic() + 60
        purged = 0
        while purged < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
            purges = [r for r in audit_export() if r["action"] == "memory.purge"]
            purged = sum(r["result_count"] for r in purges)
        assert purged == 3
    finally:
        assert server.stop() == 0
    purges = [r for r in audit_export() if r["action"] == "memory.purge"]
    # Every purge was made by the supervisor's sweeper: it carries that command's request
    # id (workers run none, and a sweeper of theirs would carry no request id).
    assert {r["request_id"] for r in purges} == {purges[0]["request_id"]}
    assert purges[0]["request_id"].startswith("cli_")
    verify_trail()


# -- bad values -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "two", "2.5", str(MAX_WORKERS + 1)])
def test_a_bad_workers_option_is_a_usage_error(
    value: str, environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --workers: expected a whole number of processes from 1 to {MAX_WORKERS}" in (
        err
    )
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MEMORY_STORE_WORKERS", "0", "greater than or equal to 1"),
        ("MEMORY_STORE_WORKERS", str(MAX_WORKERS + 1), f"less than or equal to {MAX_WORKERS}"),
        ("MEMORY_STORE_WORKERS", "several-s3cr3t", "valid integer"),
        ("MEMORY_STORE_DB_POOL_SIZE", "0", "greater than or equal to 1"),
    ],
)
def test_a_bad_setting_is_named_without_its_value_and_without_a_traceback(
    name: str,
    value: str,
    message: str,
    environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"memory-store: {name}: ")
    assert message in err
    assert "Traceback" not in err
    assert "s3cr3t" not in err


def test_the_real_command_refuses_a_bad_workers_value(environment: Path) -> None:
    done = subprocess.run(
        [*cli(), "serve", "--workers", "0"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "argument --workers" in done.stderr
    assert "Traceback" not in done.stderr
    env = {**os.environ, "MEMORY_STORE_WORKERS": "lots"}
    done = subprocess.run(
        [*cli(), "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert done.stderr.startswith("memory-store: MEMORY_STORE_WORKERS: ")
    assert "Traceback" not in done.stderr


# -- a worker that cannot start ---------------------------------------------------------------


def test_a_worker_that_cannot_start_exits_so_that_the_supervisor_stops(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """uvicorn restarts a worker that dies, except one that exits with STARTUP_FAILURE."""
    monkeypatch.setenv("MEMORY_STORE_MIGRATE_ON_START", "false")  # and nothing is migrated
    with pytest.raises(SystemExit) as exited:
        worker_app()
    assert exited.value.code == STARTUP_FAILURE
    err = capsys.readouterr().err
    assert "worker_refusing_to_start" in err
    assert "memory-store db upgrade" in err


def test_serve_fails_when_a_worker_failed_to_start(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[Any] = []

    class FailedStart:
        """uvicorn's supervisor, as it ends when a worker exits with STARTUP_FAILURE."""

        def __init__(self, config: Any, sockets: list[socket.socket]) -> None:
            started.append(config)
            for sock in sockets:
                sock.close()
            self.processes = [
                SimpleNamespace(exitcode=STARTUP_FAILURE),
                SimpleNamespace(exitcode=-signal.SIGTERM),
            ]

        def run(self) -> None:
            pass

    monkeypatch.setattr("uvicorn.supervisors.Multiprocess", FailedStart)
    assert main(["serve", "--port", str(free_port()), "--workers", "2"]) == 1
    assert "a worker process failed to start" in capsys.readouterr().err
    (config,) = started
    assert (config.app, config.factory, config.workers) == ("memory_store.app:worker_app", True, 2)
    assert (config.loop, config.http) == ("uvloop", "httptools")


# -- every worker obeys a change at once ------------------------------------------------------


class WorkerConnection:
    """A kept-alive connection to the server, and which worker process holds its other end."""

    def __init__(self, port: int, worker_pids: list[int]) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        assert self.request("GET", "/healthz")[0] == 200  # accepted by some worker by now
        local_port = self.connection.sock.getsockname()[1]
        self.pid = _worker_holding(port, local_port, worker_pids)

    def request(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        self.connection.request(method, path, body=payload, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None


def _worker_holding(server_port: int, client_port: int, worker_pids: list[int]) -> int:
    """The worker whose socket is the server end of the connection from `client_port`:
    its inode from /proc/net/tcp, then the process with that socket open."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.rsplit(":", 1)[1], 16) == server_port and (
            int(remote.rsplit(":", 1)[1], 16) == client_port
        ):
            inode = fields[9]
    assert inode is not None, "the connection is not in /proc/net/tcp"
    for pid in worker_pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError("no worker holds the connection")


def one_connection_per_worker(workers: Workers) -> list[WorkerConnection]:
    """A kept-alive connection to each of the two workers (the kernel picks the worker of a
    new connection: open them until both have one)."""
    pids = workers.worker_pids()
    chosen: dict[int, WorkerConnection] = {}
    for _ in range(200):
        connection = WorkerConnection(workers.port, pids)
        if connection.pid in chosen:
            connection.connection.close()
        else:
            chosen[connection.pid] = connection
        if len(chosen) == len(pids):
            return list(chosen.values())
    raise AssertionError("every new connection went to the same worker")


def token_id_of(created: subprocess.CompletedProcess[str]) -> str:
    """The id `tokens create` names in its first line ("created tok_...: ...")."""
    found = re.search(r"created (tok_[^:\s]+)", created.stdout)
    assert found is not None, created.stdout
    return found.group(1)


def test_a_withdrawal_and_a_revocation_hold_at_once_in_every_worker(workers: Workers) -> None:
    """Whatever a worker may keep in memory, the very next request in the other worker obeys
    a consent withdrawn (or given back) and a token revoked through this one."""
    created_assistant = run_cli("tokens", "create", "--role", "assistant")
    assert created_assistant.returncode == 0, created_assistant.stderr
    assistant = created_assistant.stdout.strip().splitlines()[-1]
    created = run_cli("tokens", "create", "--role", "user", "--user", "alice")
    assert created.returncode == 0, created.stderr
    alice = created.stdout.strip().splitlines()[-1]
    workers.wait_for_workers(2)
    first, second = one_connection_per_worker(workers)
    assert first.pid != second.pid

    memories = f"/v1/users/alice/memories?purpose={PURPOSE}"
    fact = {"content": "likes tea", "category": "preferences"}
    status, _ = first.request("POST", memories, assistant, fact)
    assert status == 201

    def seen(connection: WorkerConnection) -> list[str]:
        status, page = connection.request("GET", memories, assistant)
        assert status == 200, page
        return [item["content"] for item in page["items"]]

    assert seen(first) == seen(second) == ["likes tea"]  # each worker has read it once

    withdraw = f"/v1/me/consents/{PURPOSE}/preferences"
    assert first.request("PUT", withdraw, alice, {"granted": False})[0] == 200
    assert seen(second) == []
    assert seen(first) == []
    assert second.request("PUT", withdraw, alice, {"granted": True})[0] == 200
    assert seen(first) == ["likes tea"]

    # A token revoked from the command line: refused by both workers on their next request.
    assert seen(first) == seen(second) == ["likes tea"]
    revoked = run_cli("tokens", "revoke", token_id_of(created_assistant))
    assert revoked.returncode == 0, revoked.stderr
    assert first.request("GET", memories, assistant)[0] == 401
    assert second.request("GET", memories, assistant)[0] == 401

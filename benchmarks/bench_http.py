"""The service over HTTP on loopback, against the HTTP floor, driven by wrk.

Two servers run side by side, each uvicorn on uvloop and httptools, one worker, no access
log: the real app (`python -m memory_store serve`, a temporary data directory, a real
assistant token, its default logging) and the floor (http_floor.py: a bare FastAPI app with
one trivial JSON endpoint). wrk drives each in turn with 2 threads and 32 connections:
the floor, list 20, get one and write (a Lua script POSTs a different JSON body each
request, with the Authorization header, to 100 users in turn, so that none nears the
per-user quota), interleaved and rotated run by run. The assistant token's rate limit is
raised out of reach (the limiter still runs). Each ratio is
the median of the per-run ratios. Targets: list / floor >= 0.5, write / floor >= 0.4, and
p99 <= 25 ms for the service's endpoints.

Needs wrk (Debian package `wrk`; `make bench` installs it when it can). Without it this
module is skipped, and says so.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import Row, target
from memory_store.config import Settings
from memory_store.models import Role
from memory_store.runtime import open_runtime
from memory_store.schemas import MemoryCreate

THREADS, CONNECTIONS = 2, 32
PURPOSE = "personalization"
MEMORIES = 200  # alice's, for list and get

POST_SCRIPT = """
-- wrk: POST one new memory per request, a different one each time.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
function request()
  n = n + 1
  -- 100 users in turn (none nears the per-user quota), a different memory each time
  local path = string.format(
    "/v1/users/writer-%d-%d/memories?purpose=personalization", tid or 0, n % 50)
  local body = string.format(
    '{"content":"fact %d-%d: prefers window seats","category":"preferences"}', tid or 0, n)
  return wrk.format(nil, path, nil, body)
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int  # answers other than 2xx/3xx
    socket_errors: int  # connect, read, write errors and timeouts


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if not (rps and p50 and p99):
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        float(rps.group(1)),
        _ms(p50.group(1)),
        _ms(p99.group(1)),
        int(non_2xx.group(1)) if non_2xx else 0,
        sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def wrk(
    url: str, seconds: float, *, headers: tuple[str, ...] = (), script: Path | None = None
) -> WrkResult:
    # A long timeout, so that a slow answer is measured rather than dropped as an error.
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "30s"]
    command.append("--latency")
    for header in headers:
        command += ["-H", header]
    if script is not None:
        command += ["-s", str(script)]
    done = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    )
    return parse_wrk(done.stdout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(command: list[str], ready_url: str, log: Path, env: dict[str, str]) -> Iterator[None]:
    """Start a server process, wait until `ready_url` answers 200, stop it on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited:\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _prepare(data_dir: Path) -> tuple[str, str]:
    """An assistant token and alice's memories, written in-process before the server starts.
    Returns (token, the id of one of alice's memories)."""
    runtime = open_runtime(Settings(data_dir=data_dir, retention_sweep_seconds=0))
    try:
        issued = runtime.tokens.issue(role=Role.assistant, name="bench")
        principal = runtime.tokens.authenticate(f"Bearer {issued.token}")

        def write(i: int) -> str:
            body = MemoryCreate(content=f"fact {i}: likes tea", category="preferences")
            return runtime.memories.write(principal, "alice", PURPOSE, body).id

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(write, range(MEMORIES)))
    finally:
        runtime.close()
    return issued.token, ids[0]


def run(quick: bool = False) -> list[Row]:
    if shutil.which("wrk") is None:
        return [Row("HTTP: SKIPPED, wrk is not installed (Debian: apt-get install wrk)", 0, "-")]
    seconds, runs, warmup = (1, 3, 1) if quick else (10, 3, 2)  # wrk takes whole seconds
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "var"
        token, memory_id = _prepare(data_dir)
        env = {
            **os.environ,
            "MEMORY_STORE_DATA_DIR": str(data_dir),
            "MEMORY_STORE_RETENTION_SWEEP_SECONDS": "0",
            # The rate limiter still runs (its cost is measured) but never refuses: what is
            # measured is the service, not the limit.
            "MEMORY_STORE_ASSISTANT_RATE_LIMIT_PER_MINUTE": str(10**9),
        }
        script = tmp / "post.lua"
        script.write_text(POST_SCRIPT)
        app_port, floor_port = _free_port(), _free_port()
        app = f"http://127.0.0.1:{app_port}"
        auth = (f"Authorization: Bearer {token}",)
        targets = {
            "floor": (f"http://127.0.0.1:{floor_port}/ping", (), None),
            "list": (f"{app}/v1/users/alice/memories?purpose={PURPOSE}", auth, None),
            "get": (f"{app}/v1/users/alice/memories/{memory_id}?purpose={PURPOSE}", auth, None),
            "write": (f"{app}/v1/users/writer/memories?purpose={PURPOSE}", auth, script),
        }
        app_command = [python, "-m", "memory_store", "serve", "--port", str(app_port)]
        floor_command = [python, "-m", "benchmarks.http_floor", "--port", str(floor_port)]
        results: dict[str, list[WrkResult]] = {name: [] for name in targets}
        with (
            _server(app_command, f"{app}/healthz", tmp / "app.log", env),
            _server(floor_command, targets["floor"][0], tmp / "floor.log", env),
        ):
            for url, headers, lua in targets.values():  # warm up every path once
                wrk(url, warmup, headers=headers, script=lua)
            names = list(targets)
            for run_number in range(runs):  # interleaved, and the order rotates run by run
                for name in names[run_number:] + names[:run_number]:
                    url, headers, lua = targets[name]
                    results[name].append(wrk(url, seconds, headers=headers, script=lua))
    return _rows(results, seconds)


def _rows(results: dict[str, list[WrkResult]], seconds: int) -> list[Row]:
    labels = {
        "floor": "floor: bare FastAPI GET /ping",
        "list": "GET list 20",
        "get": "GET one memory",
        "write": "POST write one memory",
    }
    rows: list[Row] = []
    for name, label in labels.items():
        runs = results[name]
        p99 = statistics.median(r.p99_ms for r in runs)
        rows += [
            Row(
                f"{label}: requests/s", statistics.median(r.requests_per_second for r in runs), "/s"
            ),
            Row(f"{label}: p50", statistics.median(r.p50_ms for r in runs), "ms"),
            Row(
                f"{label}: p99",
                p99,
                "ms",
                "" if name == "floor" else target(p99 <= 25, "<= 25 ms"),
            ),
        ]
        non_2xx = sum(r.non_2xx for r in runs)
        if non_2xx:
            rows.append(Row(f"{label}: non-2xx answers, all runs", non_2xx, "", "CHECK"))
        socket_errors = sum(r.socket_errors for r in runs)
        if socket_errors:
            rows.append(Row(f"{label}: socket errors, all runs", socket_errors, "", "CHECK"))
    goals = {"list": 0.5, "get": None, "write": 0.4}
    for name, goal in goals.items():
        ratio = statistics.median(
            r.requests_per_second / f.requests_per_second
            for r, f in zip(results[name], results["floor"], strict=True)
        )
        note = target(ratio >= goal, f">= {goal}") if goal is not None else ""
        rows.append(Row(f"ratio {name} / floor", ratio, "x", note))
    rows.append(
        Row(
            f"(wrk: {THREADS} threads, {CONNECTIONS} connections, {seconds:g} s per run)",
            len(next(iter(results.values()))),
            "runs",
        )
    )
    return rows

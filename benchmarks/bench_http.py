"""The service over HTTP on loopback, against floors of the same size, driven by wrk.

Three servers run side by side, each uvicorn on uvloop and httptools, no access log: the
real app with one worker (`python -m memory_store serve`, a temporary data directory, a real
assistant token, its default logging), the same app with two workers (`serve --workers 2`,
on a copy of that data directory: a deployment of its own, whose indexer embeds only what
is written to it), and the floor (http_floor.py, one worker: a bare FastAPI app answering
the same-size JSON as a page of 20 memories, once as pre-serialised bytes, the floor the
targets are judged against, and once as objects that FastAPI serialises by its default
path, for comparison; and a bare POST that parses a body of the write's shape and answers
201 with the same-size JSON). wrk drives each in turn with 2 threads and 32 connections:
the three floors, then list 20, get one and write (a Lua script POSTs a different JSON body
each request, with the Authorization header, to 100 users in turn, so that none nears the
per-user quota) on each app, interleaved and rotated run by run. Each run starts once every
server is idle (`settle`): a write run leaves the recall indexer embedding what it wrote
for a while (about 100 memories a second), work that belongs to the write, not to whichever
run comes next. The assistant token's rate limit is raised out of reach (the limiter still
runs). Each ratio is the median of the per-run ratios; the two-worker rows are compared
with the same one-worker floor. Targets (issue 14): list / the same-size GET of bytes >=
0.5, write / the bare POST >= 0.45, and p99 <= 3x the floor's p99 in the same run. The list
and the get are also compared with the floor of objects, without a target.

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
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import Row, target
from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.runtime import open_runtime
from memory_store.schemas import MemoryCreate

THREADS, CONNECTIONS = 2, 32
TWO_WORKERS = "-2w"  # the suffix of the targets served by `serve --workers 2`
PURPOSE = "personalization"
MEMORIES = 200  # alice's, for list and get
P99_GOAL = 3.0  # the service's p99 / the floor's, at 32 connections

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


@dataclass(frozen=True)
class Target:
    """What wrk drives: a URL, its headers, and the Lua script of a write (or None)."""

    url: str
    headers: tuple[str, ...] = ()
    script: Path | None = None


def wrk(load: Target, seconds: float, connections: int = CONNECTIONS) -> WrkResult:
    # A long timeout, so that a slow answer is measured rather than dropped as an error.
    threads = min(THREADS, connections)  # wrk needs a connection per thread
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s"]
    command.append("--latency")
    for header in load.headers:
        command += ["-H", header]
    if load.script is not None:
        command += ["-s", str(load.script)]
    done = subprocess.run(
        [*command, load.url], capture_output=True, text=True, check=True, timeout=seconds + 60
    )
    return parse_wrk(done.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(
    command: list[str], ready_url: str, log: Path, env: dict[str, str], *, workers: int = 1
) -> Iterator[int]:
    """Start a server process, wait until `ready_url` answers 200 and, with several
    `workers`, until each has logged its start; stop it on exit. Yields its pid."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited:\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as response:
                    started = log.read_bytes().count(b"Application startup complete")
                    if response.status == 200 and (workers == 1 or started >= workers):
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command}: not all workers started:\n{log.read_text()}")
            time.sleep(0.2)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def prepare(settings: Settings) -> tuple[str, str]:
    """An assistant token and alice's memories, written in-process before the server starts.
    Returns (token, the id of one of alice's memories)."""
    runtime = open_runtime(settings)
    try:
        issued = runtime.tokens.issue(role=Role.assistant, name="bench")
        principal = runtime.tokens.authenticate(f"Bearer {issued.token}")

        def write(i: int) -> str:
            body = MemoryCreate(content=f"fact {i}: likes tea", category="preferences")
            return runtime.memories.write(principal, "alice", PURPOSE, body).id

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(write, range(MEMORIES)))
        # Embedded now, so that the server's indexer is not catching up (a core's worth of
        # work for a few seconds) while the first reads are measured; writes still feed it.
        runtime.indexer.catch_up()
    finally:
        runtime.close()
    return issued.token, ids[0]


def service_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "MEMORY_STORE_DATA_DIR": str(data_dir),
        "MEMORY_STORE_RETENTION_SWEEP_SECONDS": "0",
        # The rate limiter still runs (its cost is measured) but never refuses: what is
        # measured is the service, not the limit.
        "MEMORY_STORE_ASSISTANT_RATE_LIMIT_PER_MINUTE": str(10**9),
        **extra,
    }


def service_command(port: int, workers: int = 1) -> list[str]:
    command = [sys.executable, "-m", "memory_store", "serve", "--port", str(port)]
    return [*command, "--workers", str(workers)] if workers > 1 else command


def floor_command(port: int) -> list[str]:
    return [sys.executable, "-m", "benchmarks.http_floor", "--port", str(port)]


def service_targets(port: int, token: str, memory_id: str, script: Path) -> dict[str, Target]:
    """list, get and write on the service listening on `port`."""
    auth = (f"Authorization: Bearer {token}",)
    alice = f"http://127.0.0.1:{port}/v1/users/alice/memories"
    writer = f"http://127.0.0.1:{port}/v1/users/writer/memories"
    return {
        "list": Target(f"{alice}?purpose={PURPOSE}", auth),
        "get": Target(f"{alice}/{memory_id}?purpose={PURPOSE}", auth),
        "write": Target(f"{writer}?purpose={PURPOSE}", auth, script),
    }


def body_size(load: Target) -> int:
    request = urllib.request.Request(load.url)
    for header in load.headers:
        name, _, value = header.partition(": ")
        request.add_header(name, value)
    with urllib.request.urlopen(request, timeout=30) as response:
        return len(response.read())


def interleaved(
    targets: dict[str, Target],
    *,
    seconds: float,
    runs: int,
    connections: int = CONNECTIONS,
    servers: Sequence[int] = (),
) -> dict[str, list[WrkResult]]:
    """Each target driven in turn, `runs` times, the order rotating run by run; each run
    only once the `servers` (pids) have finished what the run before left them to do."""
    results: dict[str, list[WrkResult]] = {name: [] for name in targets}
    names = list(targets)
    for run_number in range(runs):
        shift = run_number % len(names)
        for name in names[shift:] + names[:shift]:
            settle(servers)
            results[name].append(wrk(targets[name], seconds, connections))
    return results


def settle(pids: Sequence[int], *, idle_share: float = 0.05, limit_seconds: float = 120) -> float:
    """Wait until the processes `pids` and their children together use less than
    `idle_share` of a core (over half a second), at most `limit_seconds`; how long it took.
    A write run leaves each server's recall indexer embedding what was written (about 100
    memories a second, a core's worth): a run started meanwhile would be measured against
    that work, which is the write's, in every server, the floor's run included."""
    if not pids:
        return 0.0
    tick = 1 / os.sysconf("SC_CLK_TCK")
    started = time.monotonic()
    before = _cpu_seconds(pids, tick)
    while time.monotonic() - started < limit_seconds:
        time.sleep(0.5)
        now = _cpu_seconds(pids, tick)
        if now - before < idle_share * 0.5:
            break
        before = now
    return time.monotonic() - started


def _cpu_seconds(roots: Sequence[int], tick: float) -> float:
    """The CPU time (user and system) used so far by the processes `roots` and every process
    descended from them, as /proc says it."""
    parents: dict[int, int] = {}
    used: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat.rpartition(")")[2].split()  # after the command's name: state, ppid, ...
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        used[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    family = set(roots)
    grown = True
    while grown:
        children = {pid for pid, parent in parents.items() if parent in family} - family
        family |= children
        grown = bool(children)
    return sum(used.get(pid, 0) for pid in family) * tick


def ratio(results: dict[str, list[WrkResult]], a: str, b: str, field: str) -> float:
    """The median of the per-run ratios a / b of one wrk field."""
    return float(
        statistics.median(
            getattr(x, field) / getattr(y, field)
            for x, y in zip(results[a], results[b], strict=True)
        )
    )


def run(quick: bool = False) -> list[Row]:
    if shutil.which("wrk") is None:
        return [Row("HTTP: SKIPPED, wrk is not installed (Debian: apt-get install wrk)", 0, "-")]
    seconds, runs, warmup = (1, 3, 1) if quick else (5, 3, 1)  # wrk takes whole seconds
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "var"
        token, memory_id = prepare(Settings(data_dir=data_dir, retention_sweep_seconds=0))
        shutil.copytree(data_dir, tmp / "var2")
        env, env2 = service_env(data_dir), service_env(tmp / "var2")
        script = tmp / "post.lua"
        script.write_text(POST_SCRIPT)
        app_port, app2_port, floor_port = free_port(), free_port(), free_port()
        floor = f"http://127.0.0.1:{floor_port}/v1/users/alice/memories?purpose={PURPOSE}"
        writer_floor = f"http://127.0.0.1:{floor_port}/v1/users/writer/memories"
        objects = f"http://127.0.0.1:{floor_port}/objects/v1/users/alice/memories"
        targets = {
            "floor-list": Target(floor),
            "floor-list-objects": Target(f"{objects}?purpose={PURPOSE}"),
            "floor-write": Target(writer_floor, (), script),
        }
        for suffix, port in (("", app_port), (TWO_WORKERS, app2_port)):
            for name, load in service_targets(port, token, memory_id, script).items():
                targets[name + suffix] = load
        with (
            server(
                service_command(app_port),
                f"http://127.0.0.1:{app_port}/healthz",
                tmp / "app.log",
                env,
            ) as app_pid,
            server(
                service_command(app2_port, 2),
                f"http://127.0.0.1:{app2_port}/healthz",
                tmp / "app2.log",
                env2,
                workers=2,
            ) as app2_pid,
            server(floor_command(floor_port), floor, tmp / "floor.log", env) as floor_pid,
        ):
            sizes = (
                body_size(targets["list"]),
                body_size(targets["floor-list"]),
                body_size(targets["floor-list-objects"]),
            )
            for load in targets.values():  # warm up every path once
                wrk(load, warmup)
            pids = (app_pid, app2_pid, floor_pid)
            results = interleaved(targets, seconds=seconds, runs=runs, servers=pids)
    return _rows(results, seconds, sizes)


def _rows(
    results: dict[str, list[WrkResult]], seconds: int, sizes: tuple[int, int, int]
) -> list[Row]:
    labels = {
        "floor-list": "floor: bare GET, same-size JSON as list 20, sent as bytes",
        "floor-list-objects": "floor: bare GET, the same page as objects FastAPI serialises",
        "floor-write": "floor: bare POST, parses the write's body, 201",
    }
    for suffix, workers in (("", ""), (TWO_WORKERS, ", 2 workers")):
        labels |= {
            f"list{suffix}": f"GET list 20{workers}",
            f"get{suffix}": f"GET one memory{workers}",
            f"write{suffix}": f"POST write one memory{workers}",
        }
    rows: list[Row] = [
        Row("GET list 20: body size, service", sizes[0], "bytes"),
        Row("GET list 20: body size, floor", sizes[1], "bytes", "the same size, by design"),
        Row("GET list 20: body size, floor of objects", sizes[2], "bytes"),
    ]
    for name, label in labels.items():
        runs = results[name]
        rows += [
            Row(
                f"{label}: requests/s", statistics.median(r.requests_per_second for r in runs), "/s"
            ),
            Row(f"{label}: p50", statistics.median(r.p50_ms for r in runs), "ms"),
            Row(f"{label}: p99", statistics.median(r.p99_ms for r in runs), "ms"),
        ]
        rows += _errors(label, runs)
    floors = {"list": "floor-list", "get": "floor-list", "write": "floor-write"}
    goals: dict[str, Any] = {"list": 0.5, "get": None, "write": 0.45}
    for suffix, workers in (("", ""), (TWO_WORKERS, " (2 workers)")):
        for name, goal in goals.items():
            value = ratio(results, name + suffix, floors[name], "requests_per_second")
            note = target(value >= goal, f">= {goal}") if goal is not None and not suffix else ""
            rows.append(Row(f"ratio {name}{workers} / {floors[name]}", value, "x", note))
    for name in ("list", "get"):  # beside the floor that serialises (RESULTS.md: calibration)
        value = ratio(results, name, "floor-list-objects", "requests_per_second")
        rows.append(Row(f"ratio {name} / floor-list-objects", value, "x"))
    for name, floor in floors.items():
        value = ratio(results, name, floor, "p99_ms")
        rows.append(
            Row(
                f"ratio p99 {name} / p99 {floor}, {CONNECTIONS} connections",
                value,
                "x",
                target(value <= P99_GOAL, f"<= {P99_GOAL:g}"),
            )
        )
    for name in goals:  # what the second process buys, run by run
        value = ratio(results, name + TWO_WORKERS, name, "requests_per_second")
        rows.append(Row(f"ratio {name}: 2 workers / 1 worker (SQLite)", value, "x"))
    rows.append(
        Row(
            f"(wrk: {THREADS} threads, {CONNECTIONS} connections, {seconds:g} s per run)",
            len(next(iter(results.values()))),
            "runs",
        )
    )
    return rows


def _errors(label: str, runs: list[WrkResult]) -> list[Row]:
    rows = []
    non_2xx = sum(r.non_2xx for r in runs)
    if non_2xx:
        rows.append(Row(f"{label}: non-2xx answers, all runs", non_2xx, "", "CHECK"))
    socket_errors = sum(r.socket_errors for r in runs)
    if socket_errors:
        rows.append(Row(f"{label}: socket errors, all runs", socket_errors, "", "CHECK"))
    return rows

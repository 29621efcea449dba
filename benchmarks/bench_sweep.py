"""GET list 20 over HTTP at 1, 8, 32 and 128 connections: the floor, memory-store, the peer.

Three servers side by side, each one uvicorn worker on uvloop and httptools: the floor
(http_floor.py: the same-size JSON, built once), memory-store (`memory-store serve`, alice's
200 memories, a real assistant token) and the peer (http_peer.py: LangGraph's SqliteStore
behind a tiny FastAPI app, WAL and synchronous=FULL, the same 200 memories in plaintext).
wrk (2 threads, or 1 at one connection) drives each in turn at each concurrency, interleaved
and rotated run by run; requests/s and p99 are medians over the runs. The figures feed the
plot (plot.py). No targets here: bench_http holds the 32-connection ones.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks import peer
from benchmarks.bench_http import (
    MEMORIES,
    PURPOSE,
    Target,
    WrkResult,
    floor_command,
    free_port,
    prepare,
    server,
    service_command,
    service_env,
    wrk,
)
from benchmarks.common import PLOT, Row
from memory_store.config import Settings

CONCURRENCY = (1, 8, 32, 128)
SERVERS = ("floor", "memory-store", "LangGraph peer")


def _peer_database(path: Path) -> None:
    """alice's memories as bench_http writes them, in the peer's store (set-up, not timed)."""
    store = peer.LangGraphPeer(path)
    try:
        store.load(
            "alice",
            (
                (f"mem_{i:022d}", {"content": f"fact {i}: likes tea", "category": "preferences"})
                for i in range(MEMORIES)
            ),
        )
    finally:
        store.close()


def run(quick: bool = False) -> list[Row]:
    if shutil.which("wrk") is None:
        return [Row("sweep: SKIPPED, wrk is not installed (Debian: apt-get install wrk)", 0, "-")]
    seconds, runs = (1, 1) if quick else (3, 3)
    with_peer = peer.available()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "var"
        token, _ = prepare(Settings(data_dir=data_dir, retention_sweep_seconds=0))
        env = service_env(data_dir)
        ports = {name: free_port() for name in SERVERS}
        path = f"/v1/users/alice/memories?purpose={PURPOSE}"
        targets = {
            "floor": Target(f"http://127.0.0.1:{ports['floor']}{path}"),
            "memory-store": Target(
                f"http://127.0.0.1:{ports['memory-store']}{path}",
                (f"Authorization: Bearer {token}",),
            ),
        }
        with contextlib.ExitStack() as servers:
            servers.enter_context(
                server(floor_command(ports["floor"]), targets["floor"].url, tmp / "floor.log", env)
            )
            servers.enter_context(
                server(
                    service_command(ports["memory-store"]),
                    f"http://127.0.0.1:{ports['memory-store']}/healthz",
                    tmp / "app.log",
                    env,
                )
            )
            if with_peer:
                _peer_database(tmp / "peer.db")
                port = ports["LangGraph peer"]
                command = [sys.executable, "-m", "benchmarks.http_peer", "--port", str(port)]
                targets["LangGraph peer"] = Target(f"http://127.0.0.1:{port}{path}")
                servers.enter_context(
                    server(
                        [*command, "--db", str(tmp / "peer.db")],
                        targets["LangGraph peer"].url,
                        tmp / "peer.log",
                        env,
                    )
                )
            results: dict[tuple[str, int], list[WrkResult]] = {
                (name, c): [] for name in targets for c in CONCURRENCY
            }
            names = list(targets)
            for load in targets.values():  # warm up every server once
                wrk(load, 1, 8)
            for run_number in range(runs):  # interleaved, and the order rotates run by run
                for connections in CONCURRENCY:
                    shift = run_number % len(names)
                    for name in names[shift:] + names[:shift]:
                        outcome = wrk(targets[name], seconds, connections)
                        results[(name, connections)].append(outcome)
    rows: list[Row] = []
    for name in targets:
        points = PLOT.sweep.setdefault(name, {})
        for connections in CONCURRENCY:
            done = results[(name, connections)]
            rps = statistics.median(r.requests_per_second for r in done)
            p99 = statistics.median(r.p99_ms for r in done)
            points[connections] = (rps, p99)
            errors = sum(r.non_2xx + r.socket_errors for r in done)
            note = f"CHECK: {errors} errors" if errors else ""
            rows.append(Row(f"{name}, {connections} connections: requests/s", rps, "/s", note))
            rows.append(Row(f"{name}, {connections} connections: p99", p99, "ms"))
    if with_peer:
        for connections in CONCURRENCY:
            mine, theirs = (
                results[("memory-store", connections)],
                results[("LangGraph peer", connections)],
            )
            value = statistics.median(
                a.requests_per_second / b.requests_per_second
                for a, b in zip(mine, theirs, strict=True)
            )
            rows.append(Row(f"ratio memory-store / peer, {connections} connections", value, "x"))
    else:
        rows.append(Row("LangGraph peer: SKIPPED (pip install -e '.[bench]')", 0, "-"))
    rows.append(Row(f"(wrk: GET list 20, {seconds} s per point)", runs, "runs"))
    return rows

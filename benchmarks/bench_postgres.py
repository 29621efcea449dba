"""The service on PostgreSQL, beside LangGraph's PostgresStore on the same throwaway cluster.

A cluster is started from the installed binaries (tests/postgres.py's, but durable: fsync,
synchronous_commit and full_page_writes left on, as a deployment runs), and stopped at the
end whatever happens. Without PostgreSQL binaries this module is skipped, and says so.

1. In-process: memory-store (open_runtime on three schemas: memories, key store, audit
   trail) and the peer (langgraph-checkpoint-postgres's PostgresStore in a database of its
   own, a pool of 8 connections) write one memory (to 100 users in turn) and list alice's 20
   newest of 200, with one caller and with 8 callers, interleaved and rotated run by run;
   each ratio is the median of the per-run ratios. Target (issue 14): >= 1.0 for each.
2. Over HTTP: `serve` with one worker and `serve --workers 2` on the same schemas, wrk at 32
   connections on list 20 and write, interleaved. Target: 2 workers / 1 worker >= 1.6.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from benchmarks.bench_http import (
    POST_SCRIPT,
    Target,
    free_port,
    interleaved,
    prepare,
    ratio,
    server,
    service_command,
    service_env,
    service_targets,
    wrk,
)
from benchmarks.bench_inprocess import (
    ASSISTANT,
    CALLERS,
    CATEGORIES,
    PURPOSE,
    WRITERS,
    _write,
    _write_many,
)
from benchmarks.common import Row, per_second, per_second_concurrent, target
from memory_store.config import Settings
from memory_store.runtime import open_runtime
from memory_store.services.memories import ListQuery
from tests.postgres import Cluster, binaries

try:
    from langgraph.store.base import PutOp
    from langgraph.store.postgres import PostgresStore
except ImportError:  # the bench extra is not installed
    PostgresStore = None  # type: ignore[misc,assignment,unused-ignore]

MEMORIES = 200
TWO_WORKERS_GOAL = 1.6


class DurableCluster(Cluster):
    """tests/postgres.py's throwaway cluster with its durability left on: the tests turn
    fsync off to run fast, a benchmark of commits must not."""

    def start(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-A", "trust", "-U", "postgres", "--no-sync")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300"
        )
        log = str(self.root / "log")
        self._run("pg_ctl", "-D", str(self.datadir), "-o", f"'{options}'", "-w", "-l", log, "start")
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
                    conn.execute("CREATE DATABASE memory_store")
                    conn.execute("CREATE DATABASE langgraph")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


@contextmanager
def durable_cluster(bindir: Path) -> Iterator[Cluster]:
    """A durable cluster, run as the `postgres` user when we are root (as tests/postgres.py)."""
    as_postgres = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="memory-store-bench-pg-"))
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    cluster = DurableCluster(bindir=bindir, root=root, port=free_port(), as_postgres=as_postgres)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()  # also removes its folder


def _settings(data_dir: Path, urls: dict[str, str]) -> Settings:
    return Settings(
        data_dir=data_dir,
        retention_sweep_seconds=0,
        database_url=urls["database"],
        keystore_url=urls["keystore"],
        audit_database_url=urls["audit"],
    )


def _in_process(cluster: Cluster, tmp: Path, seconds: float, runs: int) -> list[Row]:
    runtime = open_runtime(_settings(tmp / "inprocess", cluster.fresh_urls()))
    counter = itertools.count()
    page = ListQuery(limit=20)
    try:
        contents = [(f"fact {i}: likes tea", CATEGORIES[i % len(CATEGORIES)]) for i in range(200)]
        ids = _write_many(runtime, "alice", contents)
        for n in range(WRITERS):  # the writers' keys exist: writes measure the steady state
            _write(runtime, f"writer-{n}", "likes tea", CATEGORIES[0])

        def service_write() -> object:
            n = next(counter)
            user_id = f"writer-{n % WRITERS}"
            return _write(runtime, user_id, f"bench write {n}: prefers aisle seats", CATEGORIES[0])

        operations: dict[tuple[str, str], Callable[[], object]] = {
            ("write", "memory-store"): service_write,
            ("list 20", "memory-store"): lambda: runtime.memories.list_for_purpose(
                ASSISTANT, "alice", PURPOSE, page
            ),
        }
        with PostgresStore.from_conn_string(
            cluster.dsn("langgraph"), pool_config={"min_size": CALLERS, "max_size": CALLERS}
        ) as store:
            store.setup()
            store.batch(
                [
                    PutOp(("memories", "alice"), memory_id, {"content": c, "category": k})
                    for memory_id, (c, k) in zip(ids, contents, strict=True)
                ]
            )

            def peer_write() -> None:
                n = next(counter)
                value = {"content": f"bench write {n}: prefers aisle seats", "category": "c"}
                key = "mem_" + secrets.token_urlsafe(16)
                store.put(("memories", f"writer-{n % WRITERS}"), key, value)

            operations[("write", "PostgresStore")] = peer_write
            operations[("list 20", "PostgresStore")] = lambda: store.search(
                ("memories", "alice"), limit=20
            )
            assert len(operations[("list 20", "PostgresStore")]()) == 20  # type: ignore[arg-type]
            rates = _measure(operations, seconds, runs)
    finally:
        runtime.close()
    rows = [Row(f"(cluster: {_durability(cluster)})", 0, "-")]
    for op in ("write", "list 20"):
        for callers in (1, CALLERS):
            name = f"{op} x{callers}"
            label = f"{op}, {callers} caller{'s' if callers > 1 else ''}"
            mine, theirs = rates[(name, "memory-store")], rates[(name, "PostgresStore")]
            rows.append(Row(f"{label}: memory-store", statistics.median(mine), "/s"))
            rows.append(Row(f"{label}: LangGraph PostgresStore", statistics.median(theirs), "/s"))
            value = statistics.median(a / b for a, b in zip(mine, theirs, strict=True))
            rows.append(
                Row(
                    f"ratio {label}: memory-store / PostgresStore",
                    value,
                    "x",
                    target(value >= 1.0, ">= 1.0"),
                )
            )
    return rows


def _durability(cluster: Cluster) -> str:
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        shown = [
            f"{name}={conn.execute(f'SHOW {name}').fetchone()[0]}"  # type: ignore[index]
            for name in ("server_version", "fsync", "synchronous_commit", "full_page_writes")
        ]
    return "PostgreSQL " + ", ".join(shown).removeprefix("server_version=")


def _measure(
    operations: dict[tuple[str, str], Callable[[], object]], seconds: float, runs: int
) -> dict[tuple[str, str], list[float]]:
    """Each operation with one caller and with CALLERS, interleaved and rotated run by run."""
    measures: dict[tuple[str, str], Callable[[], float]] = {}
    for (op, who), fn in operations.items():
        measures[(f"{op} x1", who)] = lambda fn=fn: per_second(fn, seconds=seconds)  # type: ignore[misc]
        measures[(f"{op} x{CALLERS}", who)] = lambda fn=fn: per_second_concurrent(  # type: ignore[misc]
            fn, callers=CALLERS, seconds=seconds
        )
    rates: dict[tuple[str, str], list[float]] = {name: [] for name in measures}
    names = list(measures)
    for run in range(runs):
        shift = run * 3 % len(names)
        for name in names[shift:] + names[:shift]:
            rates[name].append(measures[name]())
    return rates


def _workers(cluster: Cluster, tmp: Path, seconds: int, runs: int) -> list[Row]:
    """`serve` with one and with two workers, on the same three schemas."""
    urls = cluster.fresh_urls()
    data_dir = tmp / "http"
    token, memory_id = prepare(_settings(data_dir, urls))
    env = service_env(
        data_dir,
        MEMORY_STORE_DATABASE_URL=urls["database"],
        MEMORY_STORE_KEYSTORE_URL=urls["keystore"],
        MEMORY_STORE_AUDIT_DATABASE_URL=urls["audit"],
    )
    script = tmp / "post.lua"
    script.write_text(POST_SCRIPT)
    one, two = free_port(), free_port()
    targets: dict[str, Target] = {}
    for suffix, port in (("", one), ("-2w", two)):
        loads = service_targets(port, token, memory_id, script)
        targets |= {f"list{suffix}": loads["list"], f"write{suffix}": loads["write"]}
    with (
        server(
            service_command(one), f"http://127.0.0.1:{one}/healthz", tmp / "one.log", env
        ) as one_pid,
        server(
            service_command(two, 2),
            f"http://127.0.0.1:{two}/healthz",
            tmp / "two.log",
            env,
            workers=2,
        ) as two_pid,
    ):
        for load in targets.values():
            wrk(load, 1)
        results = interleaved(targets, seconds=seconds, runs=runs, servers=(one_pid, two_pid))
    rows = []
    for name in ("list 20", "write"):
        for suffix, label in (("", "1 worker"), ("-2w", "2 workers")):
            done = results[name.split()[0] + suffix]
            rps = statistics.median(r.requests_per_second for r in done)
            errors = sum(r.non_2xx + r.socket_errors for r in done)
            note = f"CHECK: {errors} errors" if errors else ""
            rows.append(Row(f"HTTP {name}, {label}: requests/s", rps, "/s", note))
        key = name.split()[0]
        value = ratio(results, key + "-2w", key, "requests_per_second")
        goal = TWO_WORKERS_GOAL
        rows.append(
            Row(
                f"ratio HTTP {name}: 2 workers / 1 worker",
                value,
                "x",
                target(value >= goal, f">= {goal}"),
            )
        )
    rows.append(Row(f"(wrk: 32 connections, {seconds} s per run)", runs, "runs"))
    return rows


def run(quick: bool = False) -> list[Row]:
    bindir = binaries()
    if bindir is None:
        return [Row("postgres: SKIPPED, no PostgreSQL binaries (Debian: postgresql)", 0, "-")]
    if PostgresStore is None:
        return [Row("postgres: SKIPPED, no PostgresStore (pip install -e '.[bench]')", 0, "-")]
    seconds, runs = (0.2, 3) if quick else (0.6, 5)
    wrk_seconds, wrk_runs = (1, 2) if quick else (5, 3)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as name, durable_cluster(bindir) as cluster:
        tmp = Path(name)
        rows += _in_process(cluster, tmp, seconds, runs)
        if shutil.which("wrk") is None:
            rows.append(Row("HTTP workers: SKIPPED, wrk is not installed", 0, "-"))
        else:
            rows += _workers(cluster, tmp, wrk_seconds, wrk_runs)
    return rows

"""One commit per batch: the audit trail apart (its own database, the default) against the
trail beside the memories (MEMORY_STORE_AUDIT_DATABASE_URL = the memory database's URL, so a
write's record and row commit in one transaction). In-process, on SQLite (synchronous=FULL)
and on a durable throwaway PostgreSQL cluster (bench_postgres.py's) when one can be started.

Two loads, each run on both layouts, interleaved, the order rotating: 8 writers alone; 8
writers beside 8 callers listing 20. A write waits for its item key's commit (the key store)
and then, apart, for its record's and its row's commits (two databases, pipelined by their
writer threads), beside, for the one commit holding both. A read's record, beside, waits for
the memory database's write lock, which writes hold too.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from benchmarks.bench_postgres import durable_cluster
from benchmarks.common import Row
from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.runtime import open_runtime
from memory_store.schemas import MemoryCreate
from memory_store.services.memories import ListQuery
from tests.postgres import Cluster, binaries

CALLERS = 8
PURPOSE = "personalization"


def _settings(directory: Path, urls: dict[str, str] | None, *, beside: bool) -> Settings:
    """SQLite files under `directory` (urls None), or the cluster's fresh schemas."""
    given: dict[str, Any] = (
        {} if urls is None else {"database_url": urls["database"], "keystore_url": urls["keystore"]}
    )
    settings = Settings(data_dir=directory, retention_sweep_seconds=0, kek_rotate_every=0, **given)
    trail = settings.resolved_database_url() if beside else None
    if trail is None and urls is not None:
        trail = urls["audit"]
    return settings.model_copy(update={"audit_database_url": SecretStr(trail)} if trail else {})


def _run(settings: Settings, *, seconds: float, readers: int) -> tuple[float, float]:
    """(writes/s, lists/s) of CALLERS writers and `readers` listers for `seconds`."""
    runtime = open_runtime(settings)
    try:
        token = runtime.tokens.issue(role=Role.assistant, name="bench").token
        caller = runtime.tokens.authenticate(f"Bearer {token}")
        memories = runtime.memories

        def write(user_id: str, content: str) -> None:
            body = MemoryCreate(content=content, category="preferences")
            memories.write(caller, user_id, PURPOSE, body)

        for n in range(40):  # alice's page, and each writer's key, exist before timing
            write("alice", f"fact {n}: likes tea")
        for k in range(CALLERS):
            write(f"writer-{k}", "first")
        stop = time.monotonic() + seconds
        done = {"writes": 0, "lists": 0}
        lock = threading.Lock()

        def writer(k: int) -> None:
            n = 0
            while time.monotonic() < stop:
                write(f"writer-{k}", f"fact {n}: prefers aisle seats")
                n += 1
            with lock:
                done["writes"] += n

        def lister(_k: int) -> None:
            n = 0
            while time.monotonic() < stop:
                memories.list_for_purpose(caller, "alice", PURPOSE, ListQuery(limit=20))
                n += 1
            with lock:
                done["lists"] += n

        with ThreadPoolExecutor(CALLERS + readers) as pool:
            jobs = [pool.submit(writer, k) for k in range(CALLERS)]
            jobs += [pool.submit(lister, k) for k in range(readers)]
            for job in jobs:
                job.result()
        return done["writes"] / seconds, done["lists"] / seconds
    finally:
        runtime.close()


def _compare(
    tmp: Path, database: str, cluster: Cluster | None, seconds: float, runs: int
) -> list[Row]:
    rows: list[Row] = []
    for load, readers in (("8 writers", 0), ("8 writers + 8 listers", CALLERS)):
        results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for n in range(runs):
            for beside in (False, True) if n % 2 == 0 else (True, False):
                where = tmp / f"{database}-{load}-{n}-{'beside' if beside else 'apart'}"
                urls = cluster.fresh_urls() if cluster is not None else None
                settings = _settings(where, urls, beside=beside)
                results[beside].append(_run(settings, seconds=seconds, readers=readers))
        for beside in (False, True):
            label = f"{database}, {load}, trail {'beside memories' if beside else 'apart'}"
            rows.append(
                Row(f"{label}: writes", statistics.median(w for w, _ in results[beside]), "/s")
            )
            if readers:
                lists = statistics.median(n for _, n in results[beside])
                rows.append(Row(f"{label}: lists 20", lists, "/s"))
        ratios = [b[0] / a[0] for a, b in zip(results[False], results[True], strict=True)]
        rows.append(
            Row(f"{database}, {load}: writes beside / apart", statistics.median(ratios), "x")
        )
    return rows


def run(quick: bool = False) -> list[Row]:
    seconds, runs = (1.0, 2) if quick else (3.0, 4)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        rows += _compare(tmp, "SQLite", None, seconds, runs)
        bindir = binaries()
        if bindir is None:
            rows.append(Row("PostgreSQL: SKIPPED, no PostgreSQL binaries", 0, "-"))
            return rows
        with durable_cluster(bindir) as cluster:
            rows += _compare(tmp, "PostgreSQL", cluster, seconds, runs)
    return rows

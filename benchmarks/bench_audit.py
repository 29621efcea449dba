"""The audited read path against the same reads with a no-op audit writer, in one run.

32 reader threads each get memories through the service (policy, audit, decrypt) as fast as
they can. With the real trail each read waits for the group commit that holds its record
(SQLite, synchronous=FULL); with the no-op writer it does not wait at all. Group commit
should keep the audited rate above half the unaudited one.

Then one caller appending alone (each batch one record), against a floor measured in the same
run: the writer's transaction (BEGIN IMMEDIATE, move the head, insert a row, commit) in plain
sqlite3 with the same pragmas.

Last, a refused request about a known id against the same about unknown ids: it makes no key
for a stranger, and takes as long.
"""

from __future__ import annotations

import itertools
import sqlite3
import statistics
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from audit import AuditRecord
from benchmarks.common import Row, median_us
from memory_store.config import Settings
from memory_store.domain import AuditAction, Principal, Role
from memory_store.errors import ConsentRequired
from memory_store.runtime import Runtime, open_runtime
from memory_store.schemas import MemoryCreate
from memory_store.storage.audit_writer import Changed
from memory_store.storage.group_commit import Job
from memory_store.trail.recorder import Auditor

ASSISTANT = Principal(token_id="bench", name="bench", role=Role.assistant, user_id=None)
READERS = 32
USERS = 8


class NoopAuditSink:
    """Accepts every record at once and keeps none: the floor the real trail is set against."""

    beside_memories = False  # so never asked to `begin_change`

    def append(self, record: AuditRecord) -> AuditRecord:
        return record

    def begin_append(self, record: AuditRecord) -> Future[AuditRecord]:
        done: Future[AuditRecord] = Future()
        done.set_result(record)
        return done

    def begin_change(self, record: AuditRecord, change: Job[Any]) -> Future[Changed]:
        raise NotImplementedError("the no-op trail is never beside the memories")

    def result(self, done: Future[Any]) -> Any:
        return done.result()


def _prepare(runtime: Runtime) -> list[tuple[str, str]]:
    targets = []
    for u in range(USERS):
        for i in range(20):
            memory = runtime.memories.write(
                ASSISTANT,
                f"user-{u}",
                "personalization",
                MemoryCreate(content=f"fact {i} about user {u}", category="preferences"),
            )
            targets.append((f"user-{u}", memory.id))
    return targets


def _reads_per_second(runtime: Runtime, targets: list[tuple[str, str]], seconds: float) -> float:
    done = [0] * READERS
    stop = threading.Event()

    def reader(slot: int) -> None:
        i = slot
        while not stop.is_set():
            user_id, memory_id = targets[i % len(targets)]
            runtime.memories.get_for_purpose(ASSISTANT, user_id, memory_id, "personalization")
            done[slot] += 1
            i += READERS

    threads = [threading.Thread(target=reader, args=(slot,)) for slot in range(READERS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - started)


def _sqlite_floor(path: Path) -> sqlite3.Connection:
    """A head row and a table of 15 columns with the trail's three indexes, under the audit
    database's pragmas."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in (
        "journal_mode=WAL",
        "synchronous=FULL",
        "busy_timeout=30000",
        "secure_delete=ON",
    ):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("CREATE TABLE head (id INTEGER PRIMARY KEY, seq INTEGER, hash TEXT)")
    conn.execute("INSERT INTO head VALUES (1, 0, '')")
    columns = ", ".join(f"c{i} TEXT" for i in range(14))
    conn.execute(f"CREATE TABLE records (seq INTEGER PRIMARY KEY, {columns})")
    for index in ("c6, seq", "c0", "c1, seq"):  # subject, at, actor
        conn.execute(f"CREATE INDEX ix_{index[:2]} ON records ({index})")
    return conn


def _append_rows(runtime: Runtime, tmp: Path, runs: int, calls: int) -> list[Row]:
    floor = _sqlite_floor(tmp / "floor.db")
    seq = 0

    def floor_append() -> None:
        nonlocal seq
        seq += 1
        floor.execute("BEGIN IMMEDIATE")
        floor.execute(
            "UPDATE head SET seq = ?, hash = ? WHERE id = 1 AND seq = ?", (seq, "h" * 64, seq - 1)
        )
        floor.execute(f"INSERT INTO records VALUES (?{', ?' * 14})", (seq, *["x" * 20] * 14))
        floor.execute("COMMIT")

    def append() -> None:
        runtime.auditor.record(ASSISTANT, AuditAction.memory_read, purpose="personalization")

    appended, floors, ratios = [], [], []
    for _ in range(runs):  # interleaved, as above
        appended.append(median_us(append, calls=calls, runs=1))
        floors.append(median_us(floor_append, calls=calls, runs=1))
        ratios.append(appended[-1] / floors[-1])
    floor.close()
    return [
        Row("audit append, one caller", statistics.median(appended), "us"),
        Row("floor: the same transaction in plain sqlite3", statistics.median(floors), "us"),
        Row("ratio append / floor", statistics.median(ratios), "x"),
    ]


def _probe_rows(runtime: Runtime, runs: int, calls: int) -> list[Row]:
    """A refused write (no opt-in for a sensitive category) about a user the service knows,
    against the same about ids it has never seen: no key is made for those, and the answer
    must not tell the two apart by its time."""
    body = MemoryCreate(content="a probe", category="health")
    strangers = (f"stranger-{n}" for n in itertools.count())

    def refused(user_id: str) -> None:
        try:
            runtime.memories.write(ASSISTANT, user_id, "personalization", body)
        except ConsentRequired:
            return
        raise AssertionError("the probe was not refused")

    keys_before = runtime.keyring.count_by_version()
    known, unknown, ratios = [], [], []
    for _ in range(runs):  # interleaved, as above
        known.append(median_us(lambda: refused("user-0"), calls=calls, runs=1))
        unknown.append(median_us(lambda: refused(next(strangers)), calls=calls, runs=1))
        ratios.append(unknown[-1] / known[-1])
    assert runtime.keyring.count_by_version() == keys_before, "a probe made a key"
    return [
        Row("refused write about a known id", statistics.median(known), "us"),
        Row("refused write about an unknown id", statistics.median(unknown), "us", "no key made"),
        Row("ratio unknown / known", statistics.median(ratios), "x", "~1 = indistinguishable"),
    ]


def run(quick: bool = False) -> list[Row]:
    seconds, runs = (1.0, 3) if quick else (3.0, 5)
    with tempfile.TemporaryDirectory() as tmp:
        runtime = open_runtime(Settings(data_dir=Path(tmp) / "var", retention_sweep_seconds=0))
        try:
            targets = _prepare(runtime)
            audited_service = runtime.memories
            real_auditor = runtime.auditor
            noop_auditor = Auditor(NoopAuditSink(), runtime.keyring, b"bench" * 8)
            audited, unaudited, ratios = [], [], []
            for _ in range(runs):  # interleaved, so machine noise falls on both alike
                audited_service._auditor = real_auditor
                with_trail = _reads_per_second(runtime, targets, seconds)
                audited_service._auditor = noop_auditor
                without = _reads_per_second(runtime, targets, seconds)
                audited.append(with_trail)
                unaudited.append(without)
                ratios.append(with_trail / without)
            audited_service._auditor = real_auditor
            appends = _append_rows(runtime, Path(tmp), runs, 200 if quick else 1000)
            probes = _probe_rows(runtime, runs, 200 if quick else 1000)
        finally:
            runtime.close()
    return [
        Row(f"get, audited, {READERS} readers", statistics.median(audited), "/s"),
        Row(f"get, no-op audit writer, {READERS} readers", statistics.median(unaudited), "/s"),
        Row("ratio audited / no-op", statistics.median(ratios), "x", "target > 0.5"),
        *appends,
        *probes,
    ]

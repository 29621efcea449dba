"""The service in-process, one caller at a time, beside a storage floor and a peer.

1. Hot paths: write (one memory: policy, quota, key, AES-GCM, audit record, insert; to 100
   users in turn, each holding a few memories), get, list 20,
   and keyword search over a user's 1,000 memories. Each beside the sqlite3 floor (floor.py:
   one row per committed transaction, same durability) and LangGraph's SqliteStore
   (peer.py: plaintext, no policy, no audit), on the same data, interleaved run by run; each
   ratio is the median of the per-run ratios. Targets (issue 14): write and list 20 with 8
   callers >= 1.0 of the peer with 8 callers, with one caller >= 0.5.
2. Forget everything for a user holding 10,000 memories (and 10,000 item keys), scattered
   among others' rows as months of writes leave them (keys destroyed, rows deleted with
   secure_delete, both WALs truncated), with the time until the key is gone and the row
   deletion apart. Target <= 100 ms.
3. List latency with 1,000,000 memories stored (10,000 users) against 10,000 stored (and
   100,000, for the plot): the measured user's 200 rows are real writes, scattered among the
   filler rows (bulk-inserted with sqlite3; their ciphertexts are never read). Target ratio
   <= 1.5. Then the server's resident memory (rss.py) serving the 10,000 and the 1,000,000
   databases (one worker, after a few seconds of wrk listing that user).
4. `audit verify` of a 1,000,000-record trail (sealed with audit.seal, bulk-inserted, signed
   tlog-checkpoints every 1,000 records, published to the witness directory), through the
   compliance API's path: the chain, the Merkle root at each of the 2,000 checkpoints (the
   database's and the witness's), the anchored range. The trail is built
   in a process of its own while the databases of 3. fill: set-up beside set-up, on the two
   cores, never beside a measurement.

--quick shrinks the sizes (the row names say which were used).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import multiprocessing
import os
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from audit import AuditRecord, Frontier, SigningKey, seal
from benchmarks import peer, rss
from benchmarks.common import PLOT, Row, per_second, per_second_concurrent, target
from benchmarks.floor import SqliteFloor
from memory_store.app import freeze_startup_heap
from memory_store.config import Settings
from memory_store.domain import Principal, Role
from memory_store.keys.envelope import new_item_key
from memory_store.runtime import Runtime, open_runtime
from memory_store.schemas import MemoryCreate
from memory_store.services.memories import ListQuery
from memory_store.storage.audit_trail import INSERT_RECORD, record_row
from memory_store.trail.times import format_time
from memory_store.trail.witness import WitnessDirectory

ASSISTANT = Principal(token_id="bench", name="bench", role=Role.assistant, user_id=None)
AUDITOR = Principal(token_id="bench-audit", name="auditor", role=Role.compliance, user_id=None)
PURPOSE = "personalization"
CATEGORIES = ("preferences", "profile", "work", "relationships", "interests", "location")
# Writes go round-robin to this many users: none nears the per-user quota (10,000), whose
# check counts the user's memories on every write.
WRITERS = 100
CALLERS = 8  # concurrent callers in the "under load" rows
KEYWORD = "kiwi"  # in one memory in a hundred: a search scans all of them, finds a few
# Filler rows are never decrypted: any bytes of a real ciphertext's length will do.
FILLER_CIPHERTEXT = b"\x01" + bytes(range(95))


@dataclass(frozen=True)
class Sizes:
    seconds: float  # per measurement
    runs: int
    search_memories: int
    forget_memories: int
    forget_runs: int
    scale_small: int
    scale_mid: int
    scale_large: int
    scale_user_memories: int
    trail_records: int
    verify_runs: int


FULL = Sizes(0.6, 5, 1000, 10_000, 5, 10_000, 100_000, 1_000_000, 200, 1_000_000, 3)
QUICK = Sizes(0.15, 3, 300, 10_000, 3, 10_000, 20_000, 50_000, 50, 10_000, 3)


def _db_time(moment: datetime) -> str:
    """A timestamp as the service's UTCDateTime stores it in SQLite."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _write(runtime: Runtime, user_id: str, content: str, category: str) -> str:
    body = MemoryCreate(content=content, category=category)
    return runtime.memories.write(ASSISTANT, user_id, PURPOSE, body).id


def _write_many(runtime: Runtime, user_id: str, contents: list[tuple[str, str]]) -> list[str]:
    """Real writes (set-up, not timed), eight at a time so that the audit group-commits."""
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda item: _write(runtime, user_id, *item), contents))


def _open(directory: Path) -> Runtime:
    """A runtime, its start-up heap then frozen as `memory-store serve` freezes it
    (app.freeze_startup_heap): otherwise a full collection, walking every object of the
    recall model and of the peer's imports (80 ms here), lands in whichever call is being
    timed, the peer's as well as ours."""
    runtime = open_runtime(Settings(data_dir=directory, retention_sweep_seconds=0))
    freeze_startup_heap()
    return runtime


# -- 1. hot paths, beside the floor and the peer ------------------------------------------------


def _hot_paths(tmp: Path, sizes: Sizes) -> list[Row]:
    runtime = _open(tmp / "service")
    floor = SqliteFloor(tmp / "floor.db")
    lang = peer.LangGraphPeer(tmp / "peer.db") if peer.available() else None
    try:
        contents = [
            (
                f"fact {i}: " + (f"loves {KEYWORD} sorbet" if i % 100 == 7 else "likes tea"),
                CATEGORIES[i % len(CATEGORIES)],
            )
            for i in range(sizes.search_memories)
        ]
        ids = _write_many(runtime, "alice", contents)
        for n in range(WRITERS):  # the writers' keys exist: writes measure the steady state
            _write(runtime, f"writer-{n}", "likes tea", CATEGORIES[0])
        now = datetime.now(UTC)
        floor.load(
            (memory_id, "alice", category, FILLER_CIPHERTEXT, _db_time(now))
            for memory_id, (_, category) in zip(ids, contents, strict=True)
        )
        if lang is not None:
            lang.load(
                "alice",
                (
                    (memory_id, {"content": content, "category": category, "source": None})
                    for memory_id, (content, category) in zip(ids, contents, strict=True)
                ),
            )
        counter = itertools.count()
        page = ListQuery(limit=20)
        search = ListQuery(q=KEYWORD, limit=20)

        def next_id() -> str:
            return ids[next(counter) % len(ids)]

        def service_write() -> object:
            n = next(counter)
            user_id = f"writer-{n % WRITERS}"
            return _write(runtime, user_id, f"bench write {n}: prefers aisle seats", CATEGORIES[0])

        def floor_write() -> None:
            n = next(counter)
            memory_id = "mem_" + secrets.token_urlsafe(16)
            user_id = f"writer-{n % WRITERS}"
            row = (memory_id, user_id, "c", FILLER_CIPHERTEXT, _db_time(datetime.now(UTC)))
            floor.insert(row)

        operations: dict[tuple[str, str], Callable[[], object]] = {
            ("write", "memory-store"): service_write,
            ("write", "sqlite3 floor"): floor_write,
            ("get", "memory-store"): lambda: runtime.memories.get_for_purpose(
                ASSISTANT, "alice", next_id(), PURPOSE
            ),
            ("get", "sqlite3 floor"): lambda: floor.get("alice", next_id()),
            ("list 20", "memory-store"): lambda: runtime.memories.list_for_purpose(
                ASSISTANT, "alice", PURPOSE, page
            ),
            ("list 20", "sqlite3 floor"): lambda: floor.page("alice", 20),
            ("search", "memory-store"): lambda: runtime.memories.list_for_purpose(
                ASSISTANT, "alice", PURPOSE, search
            ),
        }
        if lang is not None:

            def peer_write() -> None:
                n = next(counter)
                value = {"content": f"bench write {n}: prefers aisle seats", "category": "c"}
                lang.put(f"writer-{n % WRITERS}", "mem_" + secrets.token_urlsafe(16), value)

            operations[("write", "LangGraph")] = peer_write
            operations[("get", "LangGraph")] = lambda: lang.get("alice", next_id())
            operations[("list 20", "LangGraph")] = lambda: lang.list("alice", 20)

        found = operations[("search", "memory-store")]()
        assert len(found.items) == sizes.search_memories // 100  # type: ignore[attr-defined]
        measures: dict[tuple[str, str], Callable[[], float]] = {
            name: (lambda op=op: per_second(op, seconds=sizes.seconds))  # type: ignore[misc]
            for name, op in operations.items()
        }
        # The same operations from CALLERS threads at once: a service's load, where the
        # audit trail's group commit shares one fsync among concurrent requests. The peer
        # gets the same callers (SqliteStore serialises them on its connection).
        for op in ("write", "list 20"):
            for who in ("memory-store", "LangGraph"):
                if (op, who) in operations:
                    measures[(f"{op} x{CALLERS}", who)] = lambda fn=operations[(op, who)]: (
                        per_second_concurrent(  # type: ignore[misc]
                            fn, callers=CALLERS, seconds=sizes.seconds
                        )
                    )
        rates: dict[tuple[str, str], list[float]] = {name: [] for name in measures}
        names = list(measures)
        for run in range(sizes.runs):  # interleaved, and the order rotates run by run
            shift = run * 3 % len(names)
            for name in names[shift:] + names[:shift]:
                rates[name].append(measures[name]())
    finally:
        runtime.close()
        floor.close()
        if lang is not None:
            lang.close()

    rows: list[Row] = []
    labels = {
        "write": "write (policy, quota, key, AES-GCM, audit, insert)",
        "get": "get one",
        "list 20": "list 20 by user",
    }
    for op in ("write", "list 20"):
        loaded = f"{op} x{CALLERS}"
        rows.append(
            Row(
                f"{labels[op]}, {CALLERS} callers: memory-store",
                statistics.median(rates[(loaded, "memory-store")]),
                "/s",
            )
        )
        if lang is not None:
            rows.append(
                Row(
                    f"{labels[op]}, {CALLERS} callers: LangGraph SqliteStore",
                    statistics.median(rates[(loaded, "LangGraph")]),
                    "/s",
                )
            )
            ratio = _ratio(rates[(loaded, "memory-store")], rates[(loaded, "LangGraph")])
            rows.append(
                Row(
                    f"ratio {op}, {CALLERS} callers: memory-store / LangGraph",
                    ratio,
                    "x",
                    target(ratio >= 1.0, ">= 1.0"),
                )
            )
    for op, label in labels.items():
        rows.append(
            Row(f"{label}: memory-store", statistics.median(rates[(op, "memory-store")]), "/s")
        )
        if lang is not None:
            rows.append(
                Row(
                    f"{label}: LangGraph SqliteStore",
                    statistics.median(rates[(op, "LangGraph")]),
                    "/s",
                )
            )
        rows.append(
            Row(f"{label}: sqlite3 floor", statistics.median(rates[(op, "sqlite3 floor")]), "/s")
        )
    rows.append(
        Row(
            f"keyword search q=, {sizes.search_memories:,} memories, "
            f"{sizes.search_memories // 100} hits: memory-store",
            statistics.median(rates[("search", "memory-store")]),
            "/s",
            "peer: none (SqliteStore ignores `query` without an embedding index)",
        )
    )
    for op in labels:
        service = rates[(op, "memory-store")]
        if lang is not None:
            # Issue 14: one caller's write and list 20 at >= 0.5 of the peer (get: no target).
            ratio = _ratio(service, rates[(op, "LangGraph")])
            note = target(ratio >= 0.5, ">= 0.5") if op != "get" else ""
            rows.append(Row(f"ratio {op}, 1 caller: memory-store / LangGraph", ratio, "x", note))
        rows.append(
            Row(
                f"ratio {op}: memory-store / sqlite3 floor",
                _ratio(service, rates[(op, "sqlite3 floor")]),
                "x",
            )
        )
    if lang is None:
        rows.append(Row("LangGraph peer: SKIPPED (pip install -e '.[bench]')", 0, "-"))
    return rows


def _ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median of the per-run ratios (each pair measured side by side)."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


# -- bulk set-up straight into SQLite -------------------------------------------------------------


@contextlib.contextmanager
def _sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection for bulk set-up (the service's own writes stay synchronous=FULL)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA cache_size=-262144")  # 256 MiB: a million rows' indexes fit
        yield conn
    finally:
        conn.close()


_INSERT_MEMORY = (
    "INSERT INTO memories (id, user_id, category, key_id, ciphertext, version, created_at, "
    "updated_at, expires_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)"
)


def _filler(user_ids: Iterator[str], count: int, start: datetime) -> Iterator[tuple[object, ...]]:
    """`count` memory rows of other users, created over the year before `start`."""
    expires = _db_time(start + timedelta(days=700))
    moments = [_db_time(start - timedelta(days=365 * (1 - i / 4096))) for i in range(4096)]
    for n in range(count):
        created = moments[n * 4096 // count]
        yield (
            "mem_" + secrets.token_urlsafe(16),
            next(user_ids),
            CATEGORIES[n % len(CATEGORIES)],
            "0123456789abcdef",
            FILLER_CIPHERTEXT,
            created,
            created,
            expires,
        )


# -- 2. forget everything -------------------------------------------------------------------------


def _item_keys(runtime: Runtime, user_id: str, count: int) -> None:
    """`count` item keys of the user in the key store, as `count` writes would leave them."""
    key = runtime.keyring.key_for_read(user_id)
    assert key is not None
    for start in range(0, count, 1000):
        memory_ids = ["mem_" + secrets.token_urlsafe(16) for _ in range(min(1000, count - start))]
        runtime.keyring.store_item_keys(key, [new_item_key(key, m, 1) for m in memory_ids])


def _forget(tmp: Path, sizes: Sizes) -> list[Row]:
    """Each run forgets a fresh user whose memories were written among everyone else's (one
    row in five is theirs), as they would be over months: their rows are scattered."""
    runtime = _open(tmp / "forget")
    database = tmp / "forget" / "memory.db"
    times, erased = [], set()
    # Where the time goes: when the key is gone (the crypto-shred), and when the last row is.
    marks: dict[str, float] = {}
    shred = runtime.keyring.shred

    def timed_shred(user_id: str) -> bool:
        done = shred(user_id)
        marks.setdefault("key destroyed", time.perf_counter())
        return done

    runtime.keyring.shred = timed_shred  # type: ignore[method-assign]
    phases: dict[str, list[float]] = {"key": [], "rows": []}
    try:
        for run in range(sizes.forget_runs):
            user_id = f"erin-{run}"
            _write(runtime, user_id, "likes tea", CATEGORIES[0])  # their key, for real
            _item_keys(runtime, user_id, sizes.forget_memories - 1)  # one per memory
            others = (f"other-{n % 1000}" for n in itertools.count())
            owners = (
                user_id if n % 5 == 0 else next(others)
                for n in range(5 * (sizes.forget_memories - 1))
            )
            with _sqlite(database) as conn:
                conn.execute("BEGIN")
                conn.executemany(
                    _INSERT_MEMORY,
                    _filler(owners, 5 * (sizes.forget_memories - 1), datetime.now(UTC)),
                )
                conn.execute("COMMIT")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as after an auto-checkpoint
            user = Principal(
                token_id=f"tok-{user_id}", name=user_id, role=Role.user, user_id=user_id
            )
            marks.clear()
            started = time.perf_counter()
            receipt = runtime.rights.forget(user)
            answered = time.perf_counter()
            runtime.eraser.drain()  # with the eraser thread: every row deleted
            gone = time.perf_counter()
            with _sqlite(database) as conn:
                left = conn.execute(
                    "SELECT count(*) FROM memories WHERE user_id = ?", (user_id,)
                ).fetchone()[0]
            assert left == 0, f"{left} rows of {user_id} left after the eraser"
            times.append((answered - started) * 1000)
            phases["key"].append((marks["key destroyed"] - started) * 1000)
            phases["rows"].append((gone - started) * 1000)
            erased.add(receipt.memories)
    finally:
        runtime.close()
    assert erased == {sizes.forget_memories}, erased
    ms = statistics.median(times)
    n = sizes.forget_memories
    return [
        Row(
            f"forget everything, {n:,} memories: answered",
            ms,
            "ms",
            target(ms <= 100, "<= 100 ms"),
        ),
        Row("  of which: until the data key is destroyed", statistics.median(phases["key"]), "ms"),
        Row(
            "  every row deleted (the eraser, after the answer)",
            statistics.median(phases["rows"]),
            "ms",
            "from the call",
        ),
    ]


# -- 3. list at scale -----------------------------------------------------------------------------


def _stored(directory: Path, total: int, own: int, groups: int = 10) -> Runtime:
    """A runtime holding `total` memories: `own` real writes for "dana", in `groups` runs
    scattered among the filler rows of total/100 other users."""
    runtime = _open(directory)
    users = max(1, (total - own) // 100)
    others = (f"user-{n % users}" for n in itertools.count())
    start = datetime.now(UTC)
    with _sqlite(directory / "memory.db") as conn:
        conn.execute("PRAGMA wal_autocheckpoint=0")
        for group in range(groups):
            conn.execute("BEGIN")
            conn.executemany(_INSERT_MEMORY, _filler(others, (total - own) // groups, start))
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for i in range(group * own // groups, (group + 1) * own // groups):
                _write(runtime, "dana", f"fact {i}: likes tea", CATEGORIES[i % len(CATEGORIES)])
        conn.execute("BEGIN")
        conn.executemany(_INSERT_MEMORY, _filler(others, (total - own) % groups, start))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stored = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
    assert stored == total, (stored, total)
    return runtime


def _scale(runtimes: dict[int, Runtime], sizes: Sizes) -> list[Row]:
    small, large = sizes.scale_small, sizes.scale_large
    page = ListQuery(limit=20)
    latency: dict[int, list[float]] = {total: [] for total in runtimes}
    try:
        for _ in range(sizes.runs):
            for total, runtime in runtimes.items():

                def listing(runtime: Runtime = runtime) -> object:
                    return runtime.memories.list_for_purpose(ASSISTANT, "dana", PURPOSE, page)

                latency[total].append(1e6 / per_second(listing, seconds=sizes.seconds))
    finally:
        for runtime in runtimes.values():
            runtime.close()
    ratio = _ratio(latency[large], latency[small])
    rows = []
    for total in sorted(latency):
        PLOT.scale[total] = statistics.median(latency[total])
        rows.append(Row(f"list 20, {total:,} memories stored", PLOT.scale[total], "us"))
    rows.append(
        Row(f"list ratio {large:,} / {small:,}", ratio, "x", target(ratio <= 1.5, "<= 1.5"))
    )
    return rows


def _resident(tmp: Path, tokens: dict[int, str], quick: bool) -> list[Row]:
    """The server's resident memory on the smallest and the largest database."""
    rows = []
    for total in (min(tokens), max(tokens)):
        mib = rss.serving_rss(tmp / f"scale-{total}", tokens[total], "dana", 1 if quick else 3)
        if mib is None:
            return [Row("server resident memory: SKIPPED (needs wrk and /proc)", 0, "-")]
        rows.append(
            Row(
                f"server resident memory, {total:,} memories stored",
                mib,
                "MiB",
                "1 worker, after wrk listed 20 at 8 connections",
            )
        )
    return rows


# -- 4. audit verify ------------------------------------------------------------------------------


def _build_trail(data_dir: Path, records: int) -> tuple[int, float]:
    """Append `records` sealed records after the current head, extending the head's Merkle
    frontier, and a signed checkpoint every 1,000 (stored, and published to the witness
    directory as the service does), straight into the audit database of `data_dir`. Runs in
    a process of its own (set-up overlapped with other set-up, never with a measurement).
    Returns the new head's sequence number and the seconds it took."""
    started = time.perf_counter()
    signing_key = SigningKey.load_or_create(data_dir / "audit-signing.key", create=False)
    witness = WitnessDirectory(data_dir / "audit-witness")
    at = format_time(datetime.now(UTC))
    with _sqlite(data_dir / "audit.db") as conn:
        seq, prev, stored = conn.execute(
            "SELECT seq, hash, frontier FROM audit_head WHERE id = 1"
        ).fetchone()
        frontier = Frontier.decode(seq, stored)
        conn.execute("BEGIN IMMEDIATE")
        for first in range(0, records, 50_000):
            rows, checkpoints = [], []
            for n in range(first, min(records, first + 50_000)):
                record = seal(
                    AuditRecord(
                        at=at,
                        actor_id="tok_0123456789abcdef",
                        actor_role="assistant",
                        request_id=f"req_{n:024x}",
                        action="memory.read",
                        outcome="allowed",
                        subject="ps_" + f"{n % 10_000:032x}",
                        memory_ids=(f"mem_{n:022d}",),
                        purpose=PURPOSE,
                        result_count=1,
                    ),
                    seq=seq + 1,
                    prev=prev,
                )
                seq, prev = record.seq, record.hash
                frontier.append(bytes.fromhex(prev))
                rows.append(record_row(record))
                if seq % 1000 == 0:
                    signed = signing_key.sign_tree(seq, frontier.root())
                    witness.publish(signed)
                    line = signed.signatures[0]
                    checkpoints.append(
                        (
                            seq,
                            signed.root.hex(),
                            at,
                            line.key_id.hex(),
                            base64.b64encode(line.key_id + line.signature).decode(),
                            signed.note,
                            frontier.encode(),
                        )
                    )
            conn.executemany(INSERT_RECORD, rows)
            conn.executemany(
                "INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature, note, frontier) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                checkpoints,
            )
        conn.execute(
            "UPDATE audit_head SET seq = ?, hash = ?, frontier = ? WHERE id = 1",
            (seq, prev, frontier.encode()),
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return int(seq), time.perf_counter() - started


def _verify(runtime: Runtime, records: int, head: int, built: float, sizes: Sizes) -> list[Row]:
    seconds = []
    for _ in range(sizes.verify_runs):
        started = time.perf_counter()
        result = runtime.audit.verify(AUDITOR)
        seconds.append(time.perf_counter() - started)
        assert result.ok and result.records >= head, result.to_dict()
    median = statistics.median(seconds)
    return [
        Row(f"audit verify, {records:,} records", median, "s"),
        Row(f"audit verify, {records:,} records: rate", records / median, "rec/s"),
        Row(f"(set-up: seal and insert {records:,} records)", built, "s", "not a measure"),
    ]


def run(quick: bool = False) -> list[Row]:
    sizes = QUICK if quick else FULL
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMPDIR")) as name:
        tmp = Path(name)
        rows += _hot_paths(tmp, sizes)
        rows += _forget(tmp, sizes)
        # The trail is sealed in another process while the scale databases fill (two set-ups
        # side by side, on two cores); only then is anything measured.
        trail = _open(tmp / "trail")
        try:
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                building = pool.submit(_build_trail, tmp / "trail", sizes.trail_records)
                totals = (sizes.scale_small, sizes.scale_mid, sizes.scale_large)
                stored = {
                    total: _stored(tmp / f"scale-{total}", total, sizes.scale_user_memories)
                    for total in totals
                }
                head, built = building.result()
            # A token in each database, for the resident-memory server.
            tokens = {
                total: runtime.tokens.issue(role=Role.assistant, name="bench").token
                for total, runtime in stored.items()
            }
            rows += _scale(stored, sizes)
            rows += _resident(tmp, tokens, quick)
            rows += _verify(trail, sizes.trail_records, head, built, sizes)
        finally:
            trail.close()
    return rows

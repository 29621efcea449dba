"""Where the time goes on the hot paths: `python -m benchmarks.profile_paths [--calls N]`.

Profiles (cProfile) N in-process calls each of get, write and list 20 (and N/10 keyword
searches over 200 memories), one caller at a time,
with the audit writer thread profiled too (its work is what the caller waits for). Prints,
per operation, the time per call split by where it is spent (own time, grouped by package),
then the functions with the most own time. Not part of `make bench`: a diagnostic.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sqlite3
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.bench_inprocess import ASSISTANT, CATEGORIES, PURPOSE, _open, _write_many
from benchmarks.common import per_second
from memory_store.domain import AuditAction
from memory_store.keys.envelope import pseudonym
from memory_store.logging import configure_logging
from memory_store.policy import AccessRequest, Action
from memory_store.runtime import Runtime
from memory_store.schemas import MemoryCreate
from memory_store.services.memories import ListQuery
from memory_store.services.memory_access import reveal as _reveal

Stats = dict[tuple[str, int, str], tuple[Any, ...]]


# Shown relative to the checkout, wherever it is.
_CHECKOUT = str(Path(__file__).resolve().parents[1]) + "/"


def _bucket(filename: str, function: str) -> str:
    if filename == "~":
        if "sqlite3" in function:
            return "sqlite3 C calls (SQL, commit + fsync)"
        if "acquire" in function and "lock" in function:
            return "waiting on a lock (the audit commit)"
        if "cryptography" in function or "AESGCM" in function or "HKDF" in function:
            return "cryptography (C)"
        return "other builtins"
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/", maxsplit=1)[0]
    for package in ("memory_store", "audit", "benchmarks"):
        if f"/{package}/" in filename:
            return package
    return "stdlib"


def _breakdown(stats: Stats, calls: int) -> dict[str, float]:
    """Own time per call (us) by bucket."""
    buckets: dict[str, float] = defaultdict(float)
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        buckets[_bucket(filename, function)] += tottime / calls * 1e6
    return dict(buckets)


def _profile(runtime: Runtime, name: str, operation: Callable[[], object], calls: int) -> None:
    log = runtime.audit_log.writer
    writer = cProfile.Profile()
    commit = log._commit_batch

    def profiled_commit(batch: list[Any]) -> None:
        writer.enable()  # cProfile profiles the thread that enables it: the writer
        try:
            commit(batch)
        finally:
            writer.disable()

    log._commit_batch = profiled_commit  # type: ignore[method-assign]
    caller = cProfile.Profile()
    started = time.perf_counter()
    caller.enable()
    for _ in range(calls):
        operation()
    caller.disable()
    wall = (time.perf_counter() - started) / calls * 1e6
    log._commit_batch = commit  # type: ignore[method-assign]

    caller_stats: Stats = pstats.Stats(caller).stats  # type: ignore[attr-defined]
    writer_stats: Stats = pstats.Stats(writer).stats  # type: ignore[attr-defined]
    print(f"\n== {name}: {wall:,.0f} us per call under the profiler ({calls} calls)")
    for title, stats in (("caller thread", caller_stats), ("audit writer thread", writer_stats)):
        buckets = _breakdown(stats, calls)
        total = sum(buckets.values())
        print(f"  {title}: {total:,.0f} us per call of own time")
        for bucket, us in sorted(buckets.items(), key=lambda item: -item[1]):
            if us >= total * 0.01:
                print(f"    {us:>9,.0f} us  {us / total:>5.0%}  {bucket}")
    print("  top functions by own time, caller thread (us per call, cumulative us per call):")
    ranked = sorted(caller_stats.items(), key=lambda item: -item[1][2])[:15]
    for (filename, line, function), (_cc, ncalls, tottime, cumtime, _callers) in ranked:
        where = filename.split("site-packages/")[-1].removeprefix(_CHECKOUT)
        print(
            f"    {tottime / calls * 1e6:>8,.0f} {cumtime / calls * 1e6:>8,.0f}  "
            f"{ncalls / calls:>5.1f}x  {function}  {where}:{line}"
        )


def _components(runtime: Runtime, memory_id: str) -> None:
    """Each step a get takes, timed alone without the profiler (median of 5 interleaved
    runs), beside the same lookup in plain sqlite3."""
    repository = runtime.memories._memories
    principal = ASSISTANT
    key = runtime.keyring.key_for_read("alice")
    row = repository.get("alice", memory_id)
    raw = sqlite3.connect(runtime.settings.data_dir / "memory.db", check_same_thread=False)
    categories = list(runtime.catalogue.categories)
    facts = runtime.consents_repository.facts("alice")
    request = AccessRequest(principal, Action.memory_read, "alice", PURPOSE)
    row_request = replace(request, facts=facts, category=row.category)  # type: ignore[union-attr]

    def decide() -> None:
        runtime.policy.check_role(request, categories)
        runtime.policy.check(row_request)

    steps: dict[str, Callable[[], object]] = {
        "whole get_for_purpose": lambda: runtime.memories.get_for_purpose(
            principal, "alice", memory_id, PURPOSE
        ),
        "audit record appended (Auditor.record, one caller)": lambda: runtime.auditor.record(
            principal,
            AuditAction.memory_read,
            subject_user_id="alice",
            subject_key=key,
            purpose=PURPOSE,
        ),
        "row by id (MemoryRepository.get)": lambda: repository.get("alice", memory_id),
        "row by id, plain sqlite3": lambda: raw.execute(
            "SELECT * FROM memories WHERE user_id = ? AND id = ?", ("alice", memory_id)
        ).fetchone(),
        "consent facts (ConsentRepository.facts)": lambda: runtime.consents_repository.facts(
            "alice"
        ),
        "data key (DataKeyring.key_for_read, cached unwrap)": lambda: runtime.keyring.key_for_read(
            "alice"
        ),
        "policy: role gate + row decision (cached)": decide,
        "pseudonym (HKDF + HMAC)": lambda: pseudonym(key),  # type: ignore[arg-type]
        # The row's item key, as a read fetches it (one key-store query, one unwrap).
        "item key + decrypt + MemoryPublic (_reveal)": lambda: _reveal(
            runtime.keyring.item_keys(key, [memory_id]),
            row,  # type: ignore[arg-type]
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(5):
        for name, step in steps.items():
            times[name].append(1e6 / per_second(step, seconds=0.3))
    raw.close()
    print("\n== the steps of one get, each timed alone (us, median of 5 runs)")
    for name, values in times.items():
        print(f"  {statistics.median(values):>9,.0f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_paths")
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory() as tmp:
        runtime = _open(Path(tmp) / "var")
        try:
            contents = [(f"fact {i}: likes tea", CATEGORIES[i % 6]) for i in range(200)]
            ids = _write_many(runtime, "alice", contents)
            counter = iter(range(10**9))

            def write() -> object:
                body = MemoryCreate(content=f"fact {next(counter)}", category=CATEGORIES[0])
                return runtime.memories.write(ASSISTANT, f"bob-{next(counter) % 10}", PURPOSE, body)

            def get() -> object:
                memory_id = ids[next(counter) % len(ids)]
                return runtime.memories.get_for_purpose(ASSISTANT, "alice", memory_id, PURPOSE)

            def listing() -> object:
                return runtime.memories.list_for_purpose(
                    ASSISTANT, "alice", PURPOSE, ListQuery(limit=20)
                )

            def search() -> object:
                return runtime.memories.list_for_purpose(
                    ASSISTANT, "alice", PURPOSE, ListQuery(q="kiwi", limit=20)
                )

            operations = (("get", get), ("write", write), ("list 20", listing), ("search", search))
            _components(runtime, ids[0])
            for name, operation in operations:
                for _ in range(20):  # warm caches (keys, decisions, statements)
                    operation()
                _profile(
                    runtime, name, operation, args.calls // 10 if name == "search" else args.calls
                )
        finally:
            runtime.close()


if __name__ == "__main__":
    main()

"""Where the time goes on the hot paths: `python -m benchmarks.profile_paths [--calls N]`.

Profiles (cProfile) N in-process calls each of get, write and list 20, one caller at a time,
with the audit writer thread profiled too (its work is what the caller waits for). Prints,
per operation, the time per call split by where it is spent (own time, grouped by package),
then the functions with the most own time. Not part of `make bench`: a diagnostic.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.bench_inprocess import ASSISTANT, CATEGORIES, PURPOSE, _open, _write_many
from memory_store.logging import configure_logging
from memory_store.runtime import Runtime
from memory_store.schemas import MemoryCreate
from memory_store.service import ListQuery

Stats = dict[tuple[str, int, str], tuple[Any, ...]]


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
    log = runtime.audit_log
    writer = cProfile.Profile()
    commit = log._commit

    def profiled_commit(batch: list[Any]) -> None:
        writer.enable()  # cProfile profiles the thread that enables it: the writer
        try:
            commit(batch)
        finally:
            writer.disable()

    log._commit = profiled_commit  # type: ignore[method-assign]
    caller = cProfile.Profile()
    started = time.perf_counter()
    caller.enable()
    for _ in range(calls):
        operation()
    caller.disable()
    wall = (time.perf_counter() - started) / calls * 1e6
    log._commit = commit  # type: ignore[method-assign]

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
        where = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        print(
            f"    {tottime / calls * 1e6:>8,.0f} {cumtime / calls * 1e6:>8,.0f}  "
            f"{ncalls / calls:>5.1f}x  {function}  {where}:{line}"
        )


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
                return runtime.memories.write(ASSISTANT, "bob", PURPOSE, body)

            def get() -> object:
                memory_id = ids[next(counter) % len(ids)]
                return runtime.memories.get_for_purpose(ASSISTANT, "alice", memory_id, PURPOSE)

            def listing() -> object:
                return runtime.memories.list_for_purpose(
                    ASSISTANT, "alice", PURPOSE, ListQuery(limit=20)
                )

            for name, operation in (("get", get), ("write", write), ("list 20", listing)):
                for _ in range(20):  # warm caches (keys, decisions, statements)
                    operation()
                _profile(runtime, name, operation, args.calls)
        finally:
            runtime.close()


if __name__ == "__main__":
    main()

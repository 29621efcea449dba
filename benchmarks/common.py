"""Small helpers shared by the benchmarks: timing, medians and the result table."""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Row:
    name: str
    value: float
    unit: str
    note: str = ""


def median_us(operation: Callable[[], object], *, calls: int, runs: int) -> float:
    """The median, over `runs` runs, of the mean time of one call in microseconds."""
    means = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(calls):
            operation()
        means.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(means)


def print_table(title: str, rows: list[Row]) -> None:
    width = max(len(row.name) for row in rows)
    print(f"\n{title}")
    print(f"{'measure':<{width}}  {'value':>12}  unit   note")
    for row in rows:
        digits = 4 if 0 < abs(row.value) < 0.1 else 2  # small ratios keep their digits
        print(f"{row.name:<{width}}  {row.value:>12.{digits}f}  {row.unit:<5}  {row.note}")
    sys.stdout.flush()  # each table as soon as it is done, even into a file


def per_second(operation: Callable[[], object], *, seconds: float, min_calls: int = 3) -> float:
    """How many calls of `operation` one caller completes per second, timed over at least
    `seconds` and `min_calls` calls (so that fast and slow operations are timed alike)."""
    calls = 0
    started = time.perf_counter()
    while True:
        operation()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and calls >= min_calls:
            return calls / elapsed


def target(met: bool, goal: str) -> str:
    """The note of a row that has a target: whether this run met it."""
    return f"target {goal}: {'met' if met else 'MISSED'}"


def per_second_concurrent(
    operation: Callable[[], object], *, callers: int, seconds: float
) -> float:
    """How many calls of `operation` `callers` threads complete per second together: the
    throughput of a service under concurrent load, where commits can be shared."""
    deadline = time.perf_counter() + seconds
    counts = [0] * callers
    barrier = threading.Barrier(callers + 1)

    def caller(slot: int) -> None:
        barrier.wait()
        while time.perf_counter() < deadline:
            operation()
            counts[slot] += 1

    threads = [threading.Thread(target=caller, args=(slot,)) for slot in range(callers)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline = started + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


@dataclass
class PlotData:
    """What the plot (plot.py) draws, filled by the modules that measure it in this run."""

    # server -> connections -> (requests/s, p99 ms), from bench_sweep
    sweep: dict[str, dict[int, tuple[float, float]]] = field(default_factory=dict)
    # memories stored -> list 20 latency (us), from bench_inprocess
    scale: dict[int, float] = field(default_factory=dict)


PLOT = PlotData()

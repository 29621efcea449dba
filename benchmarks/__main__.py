"""`python -m benchmarks [--quick] [name ...]`: run the benchmarks and print one table each."""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from benchmarks import (
    bench_audit,
    bench_cli,
    bench_commits,
    bench_http,
    bench_inprocess,
    bench_keys,
    bench_policy,
    bench_postgres,
    bench_recall,
    bench_sweep,
)
from benchmarks.common import PLOT, print_table
from benchmarks.plot import write_plot
from memory_store.logging import configure_logging

BENCHMARKS = {
    "policy": bench_policy,
    "audit": bench_audit,
    "inprocess": bench_inprocess,
    "commits": bench_commits,
    "keys": bench_keys,
    "http": bench_http,
    "sweep": bench_sweep,
    "postgres": bench_postgres,
    "cli": bench_cli,
    "recall": bench_recall,
}
# A whole run's plot is a result (committed beside RESULTS.md); a quick or partial run's is
# not, and must not overwrite it.
PLOT_FILE, PARTIAL_PLOT_FILE = "latency.png", "latency-partial.png"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="default: all")
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    args = parser.parse_args()
    configure_logging("console", "warning")  # the table is the output; keep the logs quiet
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"memory-store benchmarks, {stamp}{' (--quick)' if args.quick else ''}")
    print(
        f"machine: {_cpu_model()}, {os.cpu_count()} cores, {platform.machine()}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    for name in args.names or list(BENCHMARKS):
        started = time.perf_counter()
        rows = BENCHMARKS[name].run(quick=args.quick)
        print_table(f"{name} ({time.perf_counter() - started:.0f} s)", rows)
    whole = not args.quick and not args.names
    plot = Path(__file__).resolve().parent / (PLOT_FILE if whole else PARTIAL_PLOT_FILE)
    print("\n" + write_plot(PLOT, plot, f"memory-store benchmarks, {stamp}, {_cpu_model()}"))


if __name__ == "__main__":
    main()

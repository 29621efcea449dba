"""`python -m benchmarks [--quick] [name ...]`: run the benchmarks and print one table each."""

from __future__ import annotations

import argparse
import platform
import time

from benchmarks import bench_audit, bench_policy
from benchmarks.common import print_table
from memory_store.logging import configure_logging

BENCHMARKS = {"policy": bench_policy, "audit": bench_audit}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="default: all")
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    args = parser.parse_args()
    configure_logging("console", "warning")  # the table is the output; keep the logs quiet
    print(f"memory-store benchmarks, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()} {platform.release()}"
    )
    for name in args.names or list(BENCHMARKS):
        print_table(name, BENCHMARKS[name].run(quick=args.quick))


if __name__ == "__main__":
    main()

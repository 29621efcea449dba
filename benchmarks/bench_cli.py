"""How long the `memory-store` command takes to answer, as a person types it: `--help`,
`--version`, and `tokens list` on an up-to-date store (each a fresh process, median of runs).
No target: the issue's bound for --help is 0.5 s; `python -m benchmarks cli` prints the figures.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Row

ROOT = Path(__file__).resolve().parents[1]


def _seconds(args: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "memory_store", *args],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(quick: bool = False) -> list[Row]:
    runs = 3 if quick else 7
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MEMORY_STORE_")},
            "MEMORY_STORE_DATA_DIR": str(Path(folder) / "store"),
            "PYTHONPATH": str(ROOT),
        }
        _seconds(["tokens", "create", "--role", "admin"], env, 1)  # the store, made once
        return [
            Row("memory-store --help", _seconds(["--help"], env, runs), "s", "bound: 0.5 s"),
            Row("memory-store --version", _seconds(["--version"], env, runs), "s"),
            Row(
                "memory-store tokens list",
                _seconds(["tokens", "list"], env, runs),
                "s",
                "opens the store",
            ),
        ]

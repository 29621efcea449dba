"""The server's resident memory: `memory-store serve` on a data directory, after a load.

The resident set (VmRSS in /proc/<pid>/status) of the serving process plus every process
under it (uvicorn's workers, when there are several), read after wrk has listed one user's
memories for a few seconds, so that the caches a request fills are counted.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from benchmarks.bench_http import (
    PURPOSE,
    Target,
    free_port,
    server,
    service_command,
    service_env,
    wrk,
)


def _descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found += _descendants(int(child))
    return found


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def resident_mib(pid: int) -> float:
    """The resident memory of `pid` and the processes under it, in MiB."""
    total = 0
    for process in _descendants(pid):
        try:
            total += _rss_kib(process)
        except OSError:  # ended between the listing and the read
            continue
    return total / 1024


def serving_rss(data_dir: Path, token: str, user_id: str, seconds: int) -> float | None:
    """Serve `data_dir` with one worker, list `user_id`'s memories with wrk for `seconds`,
    and return the server's resident memory in MiB (None without wrk or /proc)."""
    if shutil.which("wrk") is None or not Path("/proc/self/status").exists():
        return None
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    listing = Target(
        f"{base}/v1/users/{user_id}/memories?purpose={PURPOSE}", (f"Authorization: Bearer {token}",)
    )
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with server(service_command(port), f"{base}/healthz", log, service_env(data_dir)) as pid:
            outcome = wrk(listing, seconds, 8)
            if outcome.non_2xx or outcome.socket_errors:
                raise RuntimeError(f"listing {data_dir.name} failed: {outcome}")
            return resident_mib(pid)

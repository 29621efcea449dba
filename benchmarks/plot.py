"""The plot of a benchmark run (benchmarks/latency.png): requests/s and p99 against
concurrency for the floor, memory-store and the peer, and list latency against memories
stored. Drawn with matplotlib's Agg backend (no display); skipped when matplotlib is missing."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import PlotData

COLOURS = {"floor": "tab:gray", "memory-store": "tab:blue", "LangGraph peer": "tab:orange"}


def write_plot(data: PlotData, path: Path, title: str) -> str:
    """Draw what `data` holds into `path`; returns what was done, for the run's output."""
    if not data.sweep and not data.scale:
        return "plot: nothing to draw (run the sweep or inprocess module)"
    try:
        import matplotlib  # noqa: PLC0415 - optional: only the bench extra brings it

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return "plot: SKIPPED, matplotlib is not installed (pip install -e '.[bench]')"
    panels = (2 if data.sweep else 0) + (1 if data.scale else 0)
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 4.2), squeeze=False)
    column = iter(axes[0])
    if data.sweep:
        throughput, tail = next(column), next(column)
        for server, points in data.sweep.items():
            connections = sorted(points)
            style = {"color": COLOURS.get(server), "marker": "o", "label": server}
            throughput.plot(connections, [points[c][0] for c in connections], **style)
            tail.plot(connections, [points[c][1] for c in connections], **style)
        for axis, label in ((throughput, "requests/s"), (tail, "p99 latency (ms)")):
            axis.set_xscale("log", base=2)
            axis.set_yscale("log")
            axis.set_xticks([1, 8, 32, 128], labels=["1", "8", "32", "128"])
            axis.set_xlabel("concurrent connections (wrk)")
            axis.set_ylabel(label)
            axis.grid(True, which="both", alpha=0.3)
            axis.legend()
        throughput.set_title("GET list 20 over HTTP: throughput")
        tail.set_title("GET list 20 over HTTP: p99")
    if data.scale:
        scale = next(column)
        stored = sorted(data.scale)
        scale.plot(
            stored,
            [data.scale[n] / 1000 for n in stored],
            color=COLOURS["memory-store"],
            marker="o",
            label="memory-store (in-process, one caller)",
        )
        scale.set_xscale("log")
        scale.set_xticks(stored, labels=[_count(n) for n in stored])
        scale.minorticks_off()
        scale.set_ylim(bottom=0)
        scale.set_xlabel("memories stored")
        scale.set_ylabel("list 20 latency (ms)")
        scale.set_title("list 20 against memories stored")
        scale.grid(True, which="both", alpha=0.3)
        scale.legend()
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return f"plot: written to {path.name}"


def _count(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"

"""How the `memory-store` command shows things: tables on standard output, progress bars on
standard error (only on a terminal: a pipe or a log file gets the results alone)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from memory_store.domain import Progress as Advance

# Wide enough that a table never wraps when written to a pipe or a file, where there is no
# terminal to measure: the rows stay one line each, for grep and scripts.
_PIPE_WIDTH = 1000


def _stdout() -> Console:
    terminal = sys.stdout.isatty()
    return Console(file=sys.stdout, width=None if terminal else _PIPE_WIDTH, highlight=False)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns under a header line; on a terminal, the header in bold."""
    from rich.table import Table  # noqa: PLC0415 (only the commands that print tables)

    table = Table(box=box.SIMPLE_HEAD if sys.stdout.isatty() else None, pad_edge=False)
    for header in headers:
        table.add_column(header, no_wrap=True, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console = _stdout()
    if console.is_terminal:
        console.print(table)
        return
    with console.capture() as captured:
        console.print(table)
    # Rich pads every cell to its column's width; a pipe gets no trailing blanks.
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Advance]:
    """A bar for `total` items (a spinner when the total is unknown), on standard error when
    it is a terminal, gone when done. Yields what to call with each number of items done."""
    err = Console(file=sys.stderr)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(description, total=total)
        done = 0
        step = max(1, (total or 0) // 200)  # redraw ~200 times at most, however long

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if done % step < count or done == total:
                bar.update(task, completed=done)

        yield advance

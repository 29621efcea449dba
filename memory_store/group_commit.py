"""Group commit for the memory database's hot write: concurrent writers share one transaction.

A committed SQLite row costs an fsync (synchronous=FULL), and SQLite has one writer at a time:
with every request committing its own insert, concurrent writes queue for the lock and pay
one fsync each. Here one writer thread takes whatever writes are waiting, runs them in one
transaction (each inside its own savepoint, so that one refused write does not undo the
others) and commits once; each caller gets its result only after that commit. The audit
trail's writer does the same for records (audit_store.py), as DESIGN.md section 8 asks.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine

from memory_store.logging import get_logger

_log = get_logger("memory_store.group_commit")

T = TypeVar("T")
Job = Callable[[Any], T]  # runs statements on the cursor it is given; commits nothing


Item = TypeVar("Item")


def take_batch(
    waiting: queue.Queue[Item | None], first: Item | None, batch_max: int
) -> tuple[list[Item], bool]:
    """`first` and whatever else is waiting, up to `batch_max`: one group transaction's worth.
    Also whether the stop mark (None) was among them. Shared with the audit writer."""
    batch: list[Item] = []
    stop = first is None
    if first is not None:
        batch.append(first)
    while not stop and len(batch) < batch_max:
        try:
            item = waiting.get_nowait()
        except queue.Empty:
            break
        if item is None:
            stop = True
        else:
            batch.append(item)
    return batch, stop


class WriteFailed(Exception):
    """The transaction holding a write could not be committed: the write did not happen."""


@dataclass
class _Pending(Generic[T]):
    job: Job[T]
    done: Future[T]


class GroupCommitter:
    def __init__(
        self, engine: Engine, *, name: str, batch_max: int = 256, wait_seconds: float = 30.0
    ) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._batch_max = batch_max
        self._wait_seconds = wait_seconds
        self._queue: queue.Queue[_Pending[Any] | None] = queue.Queue()
        self._conn: Any = None  # the writer thread's own connection
        self._closed = False
        self.batches_committed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def run(self, job: Job[T]) -> T:
        """Run `job` in the next group transaction; return its result once committed.
        An exception the job raises is raised here (its savepoint rolled back, the others
        committed); a failed commit raises WriteFailed."""
        if self._closed:
            raise WriteFailed("the writer is closed")
        pending: _Pending[T] = _Pending(job, Future())
        self._queue.put(pending)
        try:
            return pending.done.result(timeout=self._wait_seconds)
        except TimeoutError:
            raise WriteFailed("the write timed out waiting for its commit") from None

    def close(self) -> None:
        """Commit what is queued, then stop."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=self._wait_seconds)

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            stop = False
            while not stop:
                batch, stop = take_batch(self._queue, self._queue.get(), self._batch_max)
                if batch:
                    self._commit(batch)
        finally:
            self._disconnect()

    def _commit(self, batch: list[_Pending[Any]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn = self._connect()
            cursor = conn.cursor()
            try:
                if self._sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                if len(batch) == 1:  # alone: no savepoint needed, a failure undoes it all
                    try:
                        outcomes.append((True, batch[0].job(cursor)))
                    except Exception as exc:
                        conn.rollback()
                        batch[0].done.set_exception(exc)
                        return
                else:
                    outcomes = [self._one(cursor, pending.job) for pending in batch]
                conn.commit()
                self.batches_committed += 1
            finally:
                cursor.close()
        except Exception as exc:
            _log.error("write_batch_failed", error_type=type(exc).__name__, writes=len(batch))
            self._disconnect()  # the next batch starts on a fresh connection
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_exception(WriteFailed(type(exc).__name__))
            return
        for pending, (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                pending.done.set_result(value)
            else:
                pending.done.set_exception(value)

    @staticmethod
    def _one(cursor: Any, job: Job[Any]) -> tuple[bool, Any]:
        """(True, result) or (False, the exception), the job's statements undone on failure
        (its savepoint), the batch's others kept."""
        cursor.execute("SAVEPOINT group_write")
        try:
            result = job(cursor)
        except Exception as exc:
            cursor.execute("ROLLBACK TO SAVEPOINT group_write")
            cursor.execute("RELEASE SAVEPOINT group_write")
            return False, exc
        cursor.execute("RELEASE SAVEPOINT group_write")
        return True, result

    def _connect(self) -> Any:
        if self._conn is None:
            pooled = self._engine.raw_connection()
            conn: Any = pooled.dbapi_connection
            pooled.detach()  # the writer's own: the pool forgets it
            conn.rollback()
            if self._sqlite:
                conn.isolation_level = None  # the writer says BEGIN itself
            self._conn = conn
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.rollback()
            with contextlib.suppress(Exception):
                conn.close()

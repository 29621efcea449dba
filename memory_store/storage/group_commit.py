"""Group commit: one writer thread per database commits whatever writes are waiting in one
transaction, and each caller gets its answer only once that transaction is committed.

`GroupWriter` is the thread, its queue, its own DB-API connection and the hand-back of each
result; a subclass says what one batch's transaction does. Two subclasses exist: the memory
writer below (each write a job in its own savepoint, so one refused write does not undo the
others) and the audit trail's writer (storage/audit_writer.py: each record chained onto the
last). With synchronous=FULL a commit costs one fsync, however many writes it holds.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Engine

from memory_store.logging import get_logger

_log = get_logger("memory_store.group_commit")

T = TypeVar("T")
Item = TypeVar("Item")
Result = TypeVar("Result")
Job = Callable[[Any], T]  # runs statements on the cursor it is given; commits nothing


class WriteFailed(Exception):
    """The transaction holding a write could not be committed: the write did not happen."""


@dataclass
class Pending(Generic[Item, Result]):
    """One caller's item, and the future its writer answers once the batch is committed."""

    item: Item
    done: Future[Result]


def take_batch(
    waiting: queue.Queue[Item | None], first: Item | None, batch_max: int
) -> tuple[list[Item], bool]:
    """`first` and whatever else is waiting, up to `batch_max`: one group transaction's worth.
    Also whether the stop mark (None) was among them."""
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


class GroupWriter(Generic[Item, Result]):
    """The writer thread. `submit` queues an item and waits for its result; the thread takes
    whatever is waiting (up to `batch_max`) and hands it to `_commit_batch`, which must
    answer every Pending of the batch. `idle_seconds`: call `_idle` after that long without
    work (the audit trail signs checkpoints then)."""

    # What `submit` raises when the writer is closed or the commit does not come in time.
    failure: ClassVar[type[Exception]] = WriteFailed

    def __init__(
        self,
        engine: Engine,
        *,
        name: str,
        batch_max: int,
        wait_seconds: float,
        idle_seconds: float | None = None,
    ) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._batch_max = batch_max
        self._wait_seconds = wait_seconds
        self._idle_seconds = idle_seconds
        self._queue: queue.Queue[Pending[Item, Result] | None] = queue.Queue()
        self._conn: Any = None  # the writer thread's own connection
        self._closed = False
        self.batches_committed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Item) -> Result:
        """Queue `item` for the next group transaction; its result once committed."""
        return self.wait(self.enqueue(item))

    def enqueue(self, item: Item) -> Future[Result]:
        """Queue `item` for the next group transaction, without waiting: `wait` on the
        future for its result (so a caller can do other work while it commits)."""
        if self._closed:
            raise self.failure("the writer is closed")
        pending: Pending[Item, Result] = Pending(item, Future())
        self._queue.put(pending)
        return pending.done

    def wait(self, done: Future[Result]) -> Result:
        """The result of an enqueued item, once its transaction is committed."""
        try:
            return done.result(timeout=self._wait_seconds)
        except TimeoutError:
            raise self.failure("the write timed out waiting for its commit") from None

    def close(self) -> None:
        """Commit what is queued, then stop."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=self._wait_seconds)

    # -- what a subclass says -----------------------------------------------------------------

    def _commit_batch(self, batch: list[Pending[Item, Result]]) -> None:
        raise NotImplementedError

    def _on_connect(self, conn: Any) -> None:
        """Called with each new connection of the writer, before its first batch."""

    def _after_batch(self) -> None:
        """Called in the writer thread after each batch."""

    def _idle(self) -> None:
        """Called in the writer thread after `idle_seconds` without work."""

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            stop = False
            while not stop:
                try:
                    first = self._queue.get(timeout=self._idle_seconds)
                except queue.Empty:
                    self._idle()
                    continue
                batch, stop = take_batch(self._queue, first, self._batch_max)
                if batch:
                    self._commit_batch(batch)
                    self._after_batch()
        finally:
            self._disconnect()

    def _connect(self) -> Any:
        """The writer's own connection, taken out of the engine's pool so that it has the
        engine's settings (SQLite: synchronous, busy_timeout, secure_delete)."""
        if self._conn is None:
            pooled = self._engine.raw_connection()
            conn: Any = pooled.dbapi_connection
            pooled.detach()  # ours now: the pool forgets it and frees its slot
            try:
                conn.rollback()  # whatever the pool's ping began
                if self._sqlite:
                    conn.isolation_level = None  # the writer says BEGIN itself
                self._on_connect(conn)
            except Exception:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.rollback()
            with contextlib.suppress(Exception):
                conn.close()

    def _begin(self, cursor: Any) -> None:
        """Open the batch's transaction: SQLite takes the write lock up front; psycopg opens
        its transaction implicitly."""
        if self._sqlite:
            cursor.execute("BEGIN IMMEDIATE")


class GroupCommitter(GroupWriter[Job[Any], Any]):
    """The memory database's writer: each job runs in its own savepoint of the batch's
    transaction."""

    def __init__(
        self, engine: Engine, *, name: str, batch_max: int = 256, wait_seconds: float = 30.0
    ) -> None:
        super().__init__(engine, name=name, batch_max=batch_max, wait_seconds=wait_seconds)

    def run(self, job: Job[T]) -> T:
        """Run `job` in the next group transaction; return its result once committed.
        An exception the job raises is raised here (its savepoint rolled back, the others
        committed); a failed commit raises WriteFailed."""
        result: T = self.submit(job)
        return result

    def _commit_batch(self, batch: list[Pending[Job[Any], Any]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn = self._connect()
            cursor = conn.cursor()
            try:
                self._begin(cursor)
                if len(batch) == 1:  # alone: no savepoint needed, a failure undoes it all
                    try:
                        outcomes.append((True, batch[0].item(cursor)))
                    except Exception as exc:
                        conn.rollback()
                        batch[0].done.set_exception(exc)
                        return
                else:
                    outcomes = [self.run_one(cursor, pending.item) for pending in batch]
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
    def run_one(cursor: Any, job: Job[Any]) -> tuple[bool, Any]:
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

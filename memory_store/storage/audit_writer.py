"""The audit trail's group-committing writer.

One writer thread takes whatever records are waiting, chains them (audit.seal) and commits
them in one transaction; each caller waits for the commit that holds its record. The writer
keeps the chain's head in memory and moves the head row with a conditional UPDATE (`WHERE
seq = <the head it chained on>`), so several server processes sharing a database still write
one gap-free sequence: a writer that finds the head moved re-reads it and chains again. The
head carries the Merkle tree's frontier, extended by each record (a short hash or two), so
that signing a checkpoint never reads the trail.

When the trail's tables live in the memory database (MEMORY_STORE_AUDIT_DATABASE_URL the
same as MEMORY_STORE_DATABASE_URL), a record can carry the change it records (`Entry.change`,
statements run on the writer's cursor): the change runs in its own savepoint after the batch's
records are inserted, and the one commit holds both. A change never lands without its record;
a change that fails is undone alone, its record (of the attempt) kept with the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Engine

from audit import GENESIS, AuditRecord, Frontier, seal
from memory_store.logging import get_logger
from memory_store.storage.audit_trail import (
    INSERT_RECORD,
    MOVE_HEAD,
    READ_HEAD,
    Head,
    head_of,
    record_row,
)
from memory_store.storage.group_commit import GroupCommitter, GroupWriter, Job, Pending
from memory_store.storage.rawdb import RawDB

_log = get_logger("memory_store.audit")

# How often a batch is chained again after another process moved the head, before it fails.
_MAX_ATTEMPTS = 100
# PostgreSQL's serialization failure and deadlock (a stricter isolation level than the
# default READ COMMITTED reports a moved head this way): chain again, as for a moved head.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})


class AuditAppendError(Exception):
    """The audit record could not be committed; the request that needed it must fail."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One record to chain, and the change it records when that commits with it."""

    record: AuditRecord
    change: Job[Any] | None = None


@dataclass(frozen=True, slots=True)
class Changed:
    """What a change committed with its record gave: its result, or the exception it raised
    (its statements undone, its record kept)."""

    record: AuditRecord
    ok: bool
    value: Any


class _Statements:
    """The writer's fixed SQL in the driver's parameter style."""

    def __init__(self, engine: Engine) -> None:
        style = RawDB(engine).sql
        self.read_head = READ_HEAD
        # Inside a transaction: the head, its row held until the commit (SQLite's BEGIN
        # IMMEDIATE holds the whole database already).
        self.lock_head = READ_HEAD if engine.dialect.name == "sqlite" else READ_HEAD + " FOR UPDATE"
        self.move_head = style(MOVE_HEAD)
        self.insert = style(INSERT_RECORD)


class AuditWriter(GroupWriter[Entry, Any]):
    """Chains and commits records. `tick(head_seq)` is called in the writer thread after
    each batch and after `idle_seconds` without one (the trail signs checkpoints then)."""

    failure: ClassVar[type[Exception]] = AuditAppendError

    def __init__(
        self,
        engine: Engine,
        *,
        tick: Callable[[int], None] | None = None,
        idle_seconds: float = 60.0,
        batch_max: int = 1024,
        wait_seconds: float = 30.0,
    ) -> None:
        self._sql = _Statements(engine)
        self._tick = tick
        # Owned by the writer thread alone: the head as it last saw it.
        self._head = Head(0, GENESIS, Frontier())
        self._commit_sent = False
        super().__init__(
            engine,
            name="audit-writer",
            batch_max=batch_max,
            wait_seconds=wait_seconds,
            idle_seconds=idle_seconds,
        )

    @property
    def head_seq(self) -> int:
        return self._head.seq

    def append(self, record: AuditRecord) -> AuditRecord:
        """Chain and commit `record`; return it as committed. Raises AuditAppendError."""
        committed: AuditRecord = self.result(self.begin_append(record))
        return committed

    def begin_append(self, record: AuditRecord) -> Future[AuditRecord]:
        """Queue `record` to be chained and committed; `result` waits for it (or the
        caller awaits the future: an async request waits on no thread)."""
        return self.enqueue(Entry(record))

    def begin_change(self, record: AuditRecord, change: Job[Any]) -> Future[Changed]:
        """Queue `record` and the change it records, to commit together (the trail's tables
        must be in the database the change writes to)."""
        return self.enqueue(Entry(record, change))

    def result(self, done: Future[Any]) -> Any:
        """The record as committed (a `Changed`, for a record queued with its change), once
        it is. Raises AuditAppendError."""
        try:
            return self.wait(done)
        except AuditAppendError:
            raise
        except Exception as exc:
            raise AuditAppendError(type(exc).__name__) from None

    def _after_batch(self) -> None:
        if self._tick is not None:
            self._tick(self._head.seq)

    _idle = _after_batch

    def _on_connect(self, conn: Any) -> None:
        self._head = self._read_head(conn)

    def _commit_batch(self, batch: list[Pending[Entry, Any]]) -> None:
        try:
            sealed, changed = self._chain(batch)
        except Exception as exc:
            _log.error("audit_append_failed", error_type=type(exc).__name__, records=len(batch))
            for pending in batch:
                pending.done.set_exception(AuditAppendError(type(exc).__name__))
            return
        for pending, record in zip(batch, sealed, strict=True):
            if pending.item.change is None:
                pending.done.set_result(record)
            else:
                ok, value = changed[id(pending)]
                pending.done.set_result(Changed(record, ok, value))

    def _chain(
        self, batch: list[Pending[Entry, Any]]
    ) -> tuple[list[AuditRecord], dict[int, tuple[bool, Any]]]:
        """Seal and commit the batch on the writer's connection. On any failure the
        connection is dropped (the next batch opens a new one and re-reads the head) and the
        error is raised: nobody is told their record is kept unless the commit succeeded."""
        idle = self._conn
        try:
            return self._chain_on(self._connect(), batch)
        except Exception as exc:
            # A connection that went stale while idle (a server restart, an idle timeout)
            # fails before anything is sent for commit: try once more on a new one, as a
            # pool's pre-ping would have. Never after a commit was attempted: it may have
            # landed, and the batch would be written twice.
            stale = idle is not None and not self._commit_sent and self._is_disconnect(exc, idle)
            self._disconnect()
            if not stale:
                raise
        try:
            return self._chain_on(self._connect(), batch)
        except Exception:
            self._disconnect()
            raise

    def _chain_on(
        self, conn: Any, batch: list[Pending[Entry, Any]]
    ) -> tuple[list[AuditRecord], dict[int, tuple[bool, Any]]]:
        """The common case takes no lock before its UPDATE: it chains on the head it last
        saw. If another process moved the head meanwhile, the batch is chained again, and
        from then on with the head's row locked first, so that a writer slower to turn
        around than another cannot lose the race every time."""
        sql = self._sql
        self._commit_sent = False
        lock_head = False
        for _attempt in range(_MAX_ATTEMPTS):
            cursor = conn.cursor()
            try:
                self._begin(cursor)
                if lock_head:
                    cursor.execute(sql.lock_head)
                    self._head = _head_of(cursor.fetchone())
                start_seq, start_hash = seq, prev = self._head.seq, self._head.hash
                # No tree fits the head (records missing below it): the chain goes on alone.
                frontier = self._head.frontier.copy() if self._head.frontier is not None else None
                sealed = []
                changed: dict[int, tuple[bool, Any]] = {}
                for pending in batch:
                    seq += 1
                    record = seal(pending.item.record, seq=seq, prev=prev)
                    prev = record.hash
                    if frontier is not None:
                        frontier.append(bytes.fromhex(prev))
                    sealed.append(record)
                # Moving the head first also locks its row (PostgreSQL) for this transaction.
                tree = frontier.encode() if frontier is not None else ""
                cursor.execute(sql.move_head, (seq, prev, tree, start_seq, start_hash))
                moved = cursor.rowcount == 1
                if moved:
                    cursor.executemany(sql.insert, [record_row(record) for record in sealed])
                    for pending in batch:  # each change after its record, in its savepoint
                        if pending.item.change is not None:
                            changed[id(pending)] = GroupCommitter.run_one(
                                cursor, pending.item.change
                            )
            except Exception as exc:
                if getattr(exc, "sqlstate", None) not in _RETRY_SQLSTATES:
                    raise
                moved = False
            finally:
                cursor.close()
            if not moved:  # another process appended since: chain again on its head
                conn.rollback()
                self._head = self._read_head(conn)
                lock_head = True
                continue
            self._commit_sent = True
            conn.commit()
            self._head = Head(seq, prev, frontier)
            self.batches_committed += 1
            return sealed, changed
        raise AuditAppendError("the chain's head kept moving")

    def _read_head(self, conn: Any) -> Head:
        cursor = conn.cursor()
        try:
            cursor.execute(self._sql.read_head)
            row = cursor.fetchone()
        finally:
            cursor.close()
        conn.rollback()  # no transaction left open while idle
        return _head_of(row)

    def _is_disconnect(self, exc: Exception, conn: Any) -> bool:
        dialect = self._engine.dialect
        if not isinstance(exc, dialect.loaded_dbapi.Error):
            return False
        try:
            return bool(dialect.is_disconnect(exc, conn, None))
        except Exception:
            return False


def _head_of(row: Any) -> Head:
    if row is None:
        raise AuditAppendError("the audit trail has no head row")
    return head_of(row)

"""The audit trail's storage: a group-committing writer and the queries over the trail.

Appends are group-committed: one writer thread takes whatever is waiting, chains it and
commits it in one transaction, and each caller waits for the commit that holds its record.
The writer owns one DB-API connection and keeps the chain's head in memory; each transaction
moves the head row with a conditional UPDATE (`WHERE seq = <the head it chained on>`), so
several server processes sharing a database still write one gap-free sequence: a writer that
finds the head moved re-reads it and chains again. Checkpoints are signed every N records or
T seconds, and when the log closes.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, insert, select
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from audit import GENESIS, AuditRecord, Checkpoint, SigningKey, seal
from memory_store.clock import utc_now
from memory_store.group_commit import take_batch
from memory_store.logging import get_logger
from memory_store.models import AuditCheckpointRow, AuditHead, AuditRow
from memory_store.rawdb import RawDB

_log = get_logger("memory_store.audit")
_records = AuditRow.__table__  # type: ignore[attr-defined]
_head = AuditHead.__table__  # type: ignore[attr-defined]
_checkpoints = AuditCheckpointRow.__table__  # type: ignore[attr-defined]


# Fixed SQL. Columns in AuditRecord's field order, so a row read back builds it positionally.
_READ_HEAD = "SELECT seq, hash FROM audit_head WHERE id = 1"
_MOVE_HEAD = "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1 AND seq = ? AND hash = ?"
_INSERT_RECORD = (
    "INSERT INTO audit_records (at, actor_id, actor_role, request_id, action, outcome, "
    "subject, memory_ids, target, purpose, reason, result_count, seq, prev, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_RECORDS_AFTER = (
    "SELECT at, actor_id, actor_role, request_id, action, outcome, subject, memory_ids, "
    "target, purpose, reason, result_count, seq, prev, hash "
    "FROM audit_records WHERE seq > ? ORDER BY seq LIMIT ?"
)
_SEQ = 12  # where seq is in a row of _RECORDS_AFTER
# How often a batch is chained again after another process moved the head, before it fails.
_MAX_ATTEMPTS = 100
# PostgreSQL's serialization failure and deadlock (a stricter isolation level than the
# default READ COMMITTED reports a moved head this way): chain again, as for a moved head.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})


class _Statements:
    """The fixed SQL of the writer and the verifier, in the driver's parameter style."""

    def __init__(self, engine: Engine) -> None:
        self.sqlite = engine.dialect.name == "sqlite"
        style = RawDB(engine).sql

        # SQLite takes the write lock up front; psycopg opens its transaction implicitly.
        self.begin = "BEGIN IMMEDIATE" if self.sqlite else None
        self.read_head = _READ_HEAD
        self.move_head = style(_MOVE_HEAD)
        self.insert = style(_INSERT_RECORD)
        self.records_after = style(_RECORDS_AFTER)


class AuditAppendError(Exception):
    """The audit record could not be committed; the request that needed it must fail."""


class AuditSink(Protocol):
    def append(self, record: AuditRecord) -> AuditRecord: ...


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ensure_head(engine: Engine) -> None:
    """Create the chain's head row on a new database."""
    with contextlib.suppress(IntegrityError), engine.begin() as conn:  # another process won
        if conn.execute(select(_head.c.id)).first() is None:
            conn.execute(insert(_head).values(id=1, seq=0, hash=GENESIS))


def _to_row(record: AuditRecord) -> tuple[Any, ...]:
    """The parameters of _INSERT_RECORD."""
    return (
        record.at,
        record.actor_id,
        record.actor_role,
        record.request_id,
        record.action,
        record.outcome,
        record.subject,
        json.dumps(list(record.memory_ids)) if record.memory_ids else "[]",
        record.target,
        record.purpose,
        record.reason,
        record.result_count,
        record.seq,
        record.prev,
        record.hash,
    )


def _memory_ids(stored: str) -> tuple[str, ...]:
    return () if stored == "[]" else tuple(json.loads(stored))


def _from_tuple(row: Sequence[Any]) -> AuditRecord:
    """A record from a row of _RECORDS_AFTER."""
    return AuditRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        _memory_ids(row[7]),
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
        row[14],
    )


def _from_row(row: Any) -> AuditRecord:
    return AuditRecord(
        at=row.at,
        actor_id=row.actor_id,
        actor_role=row.actor_role,
        request_id=row.request_id,
        action=row.action,
        outcome=row.outcome,
        subject=row.subject,
        memory_ids=tuple(json.loads(row.memory_ids)),
        target=row.target,
        purpose=row.purpose,
        reason=row.reason,
        result_count=row.result_count,
        seq=row.seq,
        prev=row.prev,
        hash=row.hash,
    )


@dataclass
class _Pending:
    record: AuditRecord
    done: Future[AuditRecord]


class AuditLog:
    """Appends records to the trail through one group-committing writer thread."""

    def __init__(
        self,
        engine: Engine,
        signing_key: SigningKey,
        *,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 60.0,
        batch_max: int = 1024,
        wait_seconds: float = 30.0,
    ) -> None:
        self._engine = engine
        self._signing_key = signing_key
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = timedelta(seconds=checkpoint_seconds)
        self._batch_max = batch_max
        self._wait_seconds = wait_seconds
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._last_checkpoint_seq = 0
        self._last_checkpoint_at = utc_now()
        self._sql = _Statements(engine)
        # Owned by the writer thread alone: its connection and the head as it last saw it.
        self._conn: DBAPIConnection | None = None
        self._head: tuple[int, str] = (0, GENESIS)
        self._batches_committed = 0
        self._commit_sent = False
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._closed = False
        self._thread.start()

    @property
    def signing_key(self) -> SigningKey:
        return self._signing_key

    @property
    def batches_committed(self) -> int:
        """How many append transactions this log has committed (each holds one batch)."""
        return self._batches_committed

    def append(self, record: AuditRecord) -> AuditRecord:
        """Chain and commit `record`; return it as committed. Raises AuditAppendError."""
        if self._closed:
            raise AuditAppendError("the audit log is closed")
        pending = _Pending(record, Future())
        self._queue.put(pending)
        try:
            return pending.done.result(timeout=self._wait_seconds)
        except TimeoutError:
            raise AuditAppendError("the audit append timed out") from None
        except AuditAppendError:
            raise
        except Exception as exc:
            raise AuditAppendError(type(exc).__name__) from None

    def close(self) -> None:
        """Stop the writer after what is queued, and sign a last checkpoint."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=self._wait_seconds)
        try:
            self.checkpoint()
        except Exception as exc:  # closing must not raise; the next start signs again
            _log.error("audit_checkpoint_failed", error_type=type(exc).__name__)

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            self._disconnect()

    def _serve(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=self._checkpoint_interval.total_seconds())
            except queue.Empty:
                self._maybe_checkpoint()
                continue
            batch, stop = take_batch(self._queue, first, self._batch_max)
            if batch:
                self._commit(batch)
                self._maybe_checkpoint()

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            sealed = self._chain(batch)
        except Exception as exc:
            _log.error("audit_append_failed", error_type=type(exc).__name__, records=len(batch))
            for pending in batch:
                pending.done.set_exception(AuditAppendError(type(exc).__name__))
            return
        for pending, record in zip(batch, sealed, strict=True):
            pending.done.set_result(record)

    def _chain(self, batch: list[_Pending]) -> list[AuditRecord]:
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

    def _chain_on(self, conn: DBAPIConnection, batch: list[_Pending]) -> list[AuditRecord]:
        sql = self._sql
        self._commit_sent = False
        for _attempt in range(_MAX_ATTEMPTS):
            start_seq, start_hash = seq, prev = self._head
            sealed = []
            for pending in batch:
                seq += 1
                record = seal(pending.record, seq=seq, prev=prev)
                prev = record.hash
                sealed.append(record)
            cursor = conn.cursor()
            try:
                if sql.begin is not None:
                    cursor.execute(sql.begin)
                # Moving the head first also locks its row (PostgreSQL) for this transaction.
                cursor.execute(sql.move_head, (seq, prev, start_seq, start_hash))
                moved = cursor.rowcount == 1
                if moved:
                    cursor.executemany(sql.insert, [_to_row(record) for record in sealed])
            except Exception as exc:
                if getattr(exc, "sqlstate", None) not in _RETRY_SQLSTATES:
                    raise
                moved = False
            finally:
                cursor.close()
            if not moved:  # another process appended since: chain again on its head
                conn.rollback()
                self._head = self._read_head(conn)
                continue
            self._commit_sent = True
            conn.commit()
            self._head = (seq, prev)
            self._batches_committed += 1
            return sealed
        raise AuditAppendError("the chain's head kept moving")

    def _connect(self) -> DBAPIConnection:
        """The writer's own connection, taken out of the engine's pool so it has the
        engine's settings (SQLite: WAL, synchronous, busy_timeout, secure_delete)."""
        if self._conn is None:
            pooled = self._engine.raw_connection()
            conn = pooled.dbapi_connection
            pooled.detach()  # ours now: the pool forgets it and frees its slot
            assert conn is not None
            try:
                conn.rollback()  # whatever the pool's ping began
                if self._sql.sqlite:
                    conn.isolation_level = None  # the writer says BEGIN itself
                self._head = self._read_head(conn)
            except Exception:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _read_head(self, conn: DBAPIConnection) -> tuple[int, str]:
        cursor = conn.cursor()
        try:
            cursor.execute(self._sql.read_head)
            row = cursor.fetchone()
        finally:
            cursor.close()
        conn.rollback()  # no transaction left open while idle
        if row is None:
            raise AuditAppendError("the audit trail has no head row")
        return int(row[0]), str(row[1])

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.rollback()
            with contextlib.suppress(Exception):
                conn.close()

    def _is_disconnect(self, exc: Exception, conn: DBAPIConnection) -> bool:
        dialect = self._engine.dialect
        if not isinstance(exc, dialect.loaded_dbapi.Error):
            return False
        try:
            return bool(dialect.is_disconnect(exc, conn, None))
        except Exception:
            return False

    def _maybe_checkpoint(self) -> None:
        seq = self._head[0]
        if seq <= self._last_checkpoint_seq:
            return
        due_by_count = seq - self._last_checkpoint_seq >= self._checkpoint_every
        due_by_time = utc_now() - self._last_checkpoint_at >= self._checkpoint_interval
        if due_by_count or due_by_time:
            try:
                self.checkpoint()
            except Exception as exc:  # a missed checkpoint is retried at the next one
                _log.error("audit_checkpoint_failed", error_type=type(exc).__name__)

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current end of the chain (as committed by any process) and store it."""
        with self._engine.connect() as conn:
            head = conn.execute(select(_head.c.seq, _head.c.hash).where(_head.c.id == 1)).one()
        seq, chain_hash = int(head.seq), str(head.hash)
        self._last_checkpoint_at = utc_now()
        if seq == 0:
            return None
        signed = self._signing_key.sign(
            seq=seq, hash=chain_hash, at=format_time(self._last_checkpoint_at)
        )
        self._last_checkpoint_seq = seq
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(_checkpoints).values(**signed.to_dict()))
        except IntegrityError:
            return signed  # another process signed this very point already
        _log.info("audit_checkpoint", seq=seq)
        return signed


@dataclass(frozen=True)
class AuditQuery:
    actor_id: str | None = None
    subject: str | None = None
    action: str | None = None
    actions: Sequence[str] | None = None
    purpose: str | None = None
    outcome: str | None = None
    since: str | None = None
    until: str | None = None


class AuditStore:
    """Reads over the trail: filtered pages, the whole chain in order, checkpoints."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sql = _Statements(engine)

    def page(self, query: AuditQuery, *, limit: int, before_seq: int | None) -> list[AuditRecord]:
        """Matching records, newest first."""
        statement = select(_records)
        conditions = [
            (query.actor_id, _records.c.actor_id),
            (query.subject, _records.c.subject),
            (query.action, _records.c.action),
            (query.purpose, _records.c.purpose),
            (query.outcome, _records.c.outcome),
        ]
        for value, column in conditions:
            if value is not None:
                statement = statement.where(column == value)
        if query.actions is not None:
            statement = statement.where(_records.c.action.in_(list(query.actions)))
        if query.since is not None:
            statement = statement.where(_records.c.at >= query.since)
        if query.until is not None:
            statement = statement.where(_records.c.at < query.until)
        if before_seq is not None:
            statement = statement.where(_records.c.seq < before_seq)
        statement = statement.order_by(col(_records.c.seq).desc()).limit(limit)
        with self._engine.connect() as conn:
            return [_from_row(row) for row in conn.execute(statement)]

    def iter_records(self, *, batch_size: int = 5000) -> Iterator[AuditRecord]:
        """Every record, in sequence order, read in batches (keyset by seq) with plain DB-API
        cursors: the verifier reads the whole trail through here."""
        after = 0
        while True:
            conn = self._engine.raw_connection()  # one per batch: nothing held between them
            try:
                cursor = conn.cursor()
                cursor.execute(self._sql.records_after, (after, batch_size))
                rows = cursor.fetchall()
                cursor.close()
            finally:
                conn.close()
            if not rows:
                return
            for row in rows:
                yield _from_tuple(row)
            after = rows[-1][_SEQ]

    def checkpoints(self) -> list[Checkpoint]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(_checkpoints).order_by(_checkpoints.c.seq)).all()
        return [
            Checkpoint(
                seq=row.seq, hash=row.hash, at=row.at, key_id=row.key_id, signature=row.signature
            )
            for row in rows
        ]

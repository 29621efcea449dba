"""The audit trail's storage: a group-committing writer and the queries over the trail.

Appends are group-committed: one writer thread takes whatever is waiting, chains it and
commits it in one transaction, and each caller waits for the commit that holds its record.
The chain's head is one row, locked by every append, so several server processes sharing a
database still write one gap-free sequence. Checkpoints are signed every N records or T
seconds, and when the log closes.
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

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from audit import GENESIS, AuditRecord, Checkpoint, SigningKey, seal
from memory_store.clock import utc_now
from memory_store.logging import get_logger
from memory_store.models import AuditCheckpointRow, AuditHead, AuditRow

_log = get_logger("memory_store.audit")
_records = AuditRow.__table__  # type: ignore[attr-defined]
_head = AuditHead.__table__  # type: ignore[attr-defined]
_checkpoints = AuditCheckpointRow.__table__  # type: ignore[attr-defined]


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


def _to_row(record: AuditRecord) -> dict[str, Any]:
    row = record.to_dict()
    row["memory_ids"] = json.dumps(list(record.memory_ids))
    return row


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
        self._head: tuple[int, str] = (0, GENESIS)
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._closed = False
        self._thread.start()

    @property
    def signing_key(self) -> SigningKey:
        return self._signing_key

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
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=self._checkpoint_interval.total_seconds())
            except queue.Empty:
                self._maybe_checkpoint()
                continue
            batch: list[_Pending] = []
            if first is None:
                stop = True
            else:
                batch.append(first)
            while len(batch) < self._batch_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
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
        with self._engine.begin() as conn:
            head = conn.execute(
                select(_head.c.seq, _head.c.hash).where(_head.c.id == 1).with_for_update()
            ).one()
            seq, prev = int(head.seq), str(head.hash)
            sealed = []
            for pending in batch:
                seq += 1
                record = seal(pending.record, seq=seq, prev=prev)
                prev = record.hash
                sealed.append(record)
            conn.execute(insert(_records), [_to_row(record) for record in sealed])
            conn.execute(update(_head).where(_head.c.id == 1).values(seq=seq, hash=prev))
        self._head = (seq, prev)
        return sealed

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
        """Every record, in sequence order, read in batches."""
        after = 0
        while True:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(_records)
                    .where(_records.c.seq > after)
                    .order_by(_records.c.seq)
                    .limit(batch_size)
                ).all()
            if not rows:
                return
            for row in rows:
                yield _from_row(row)
            after = rows[-1].seq

    def checkpoints(self) -> list[Checkpoint]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(_checkpoints).order_by(_checkpoints.c.seq)).all()
        return [
            Checkpoint(
                seq=row.seq, hash=row.hash, at=row.at, key_id=row.key_id, signature=row.signature
            )
            for row in rows
        ]

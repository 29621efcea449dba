"""The audit log: appends through the group-committing writer, and signed checkpoints.

A checkpoint is the chain's head (seq, hash) signed with the service's Ed25519 key. One is
cut every N records or T seconds while records arrive, and when the log closes; the writer
thread cuts them (its `tick`), so no request waits for a signature.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from audit import AuditRecord, Checkpoint, SigningKey
from memory_store.clock import utc_now
from memory_store.logging import get_logger
from memory_store.storage.audit_trail import AuditTrailStore
from memory_store.storage.audit_writer import AuditWriter
from memory_store.storage.rawdb import RawDB
from memory_store.trail.times import format_time

_log = get_logger("memory_store.audit")


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
        self._store = AuditTrailStore(RawDB(engine))
        self._signing_key = signing_key
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = timedelta(seconds=checkpoint_seconds)
        self._last_checkpoint_seq = 0
        self._last_checkpoint_at = utc_now()
        self._closed = False
        self.writer = AuditWriter(
            engine,
            tick=self._maybe_checkpoint,
            idle_seconds=checkpoint_seconds,
            batch_max=batch_max,
            wait_seconds=wait_seconds,
        )

    @property
    def signing_key(self) -> SigningKey:
        return self._signing_key

    @property
    def batches_committed(self) -> int:
        """How many append transactions this log has committed (each holds one batch)."""
        return self.writer.batches_committed

    def append(self, record: AuditRecord) -> AuditRecord:
        """Chain and commit `record`; return it as committed. Raises AuditAppendError."""
        return self.writer.append(record)

    def close(self) -> None:
        """Stop the writer after what is queued, and sign a last checkpoint."""
        if self._closed:
            return
        self._closed = True
        self.writer.close()
        try:
            self.checkpoint()
        except Exception as exc:  # closing must not raise; the next start signs again
            _log.error("audit_checkpoint_failed", error_type=type(exc).__name__)

    def _maybe_checkpoint(self, seq: int) -> None:
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
        seq, chain_hash = self._store.head()
        self._last_checkpoint_at = utc_now()
        if seq == 0:
            return None
        signed = self._signing_key.sign(
            seq=seq, hash=chain_hash, at=format_time(self._last_checkpoint_at)
        )
        self._last_checkpoint_seq = seq
        if self._store.add_checkpoint(signed):  # else another process signed this very point
            _log.info("audit_checkpoint", seq=seq)
        return signed

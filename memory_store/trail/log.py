"""The audit log: appends through the group-committing writer, and signed checkpoints.

A checkpoint is a C2SP tlog-checkpoint note: the size and root of the Merkle tree over the
records, signed with the service's Ed25519 key. The root comes from the frontier the writer
keeps in the head row, so cutting one reads no records. One is cut every N records or T seconds
while records arrive, and when the log closes; the writer thread cuts them (its `tick`), so no
request waits for a signature. Each is stored in the database (for the API) and published
outside it (trail/witness.py): the database alone cannot vouch for itself.

The log never signs a checkpoint that contradicts one it published: before signing, it
checks that the trail still extends the last checkpoint signed (the records since are read
and added to that tree's frontier; the result must be the head's). A process starts from the
largest checkpoint in the witness directory, with the frontier stored beside it in the
database, which that checkpoint's signed root proves.
"""

from __future__ import annotations

from concurrent.futures import Future
from datetime import timedelta
from typing import Any, NoReturn

from sqlalchemy import Engine

from audit import AuditRecord, Frontier, SigningKey, TreeCheckpoint
from memory_store.clock import utc_now
from memory_store.logging import get_logger
from memory_store.storage.audit_trail import AuditTrailStore
from memory_store.storage.audit_writer import AuditWriter, Changed
from memory_store.storage.group_commit import Job
from memory_store.storage.rawdb import RawDB
from memory_store.trail.times import format_time
from memory_store.trail.witness import WitnessDirectory, Witnesses

_log = get_logger("memory_store.audit")


class CheckpointRefused(Exception):
    """The trail no longer extends a checkpoint this log signed: it will not sign again."""


class AuditLog:
    """Appends records to the trail through one group-committing writer thread."""

    def __init__(
        self,
        engine: Engine,
        signing_key: SigningKey,
        *,
        witnesses: Witnesses,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 60.0,
        batch_max: int = 1024,
        wait_seconds: float = 30.0,
        beside_memories: bool = False,
    ) -> None:
        self._store = AuditTrailStore(RawDB(engine))
        # The trail's tables are in the memory database: a change commits with its record.
        self.beside_memories = beside_memories
        self._signing_key = signing_key
        self.witnesses = witnesses
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = timedelta(seconds=checkpoint_seconds)
        self._last_checkpoint_seq = 0
        self._last_checkpoint_at = utc_now()
        self._signed: Frontier | None = None  # the tree of the last checkpoint signed here
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
    def witness_directory(self) -> WitnessDirectory:
        return self.witnesses.directory

    @property
    def batches_committed(self) -> int:
        """How many append transactions this log has committed (each holds one batch)."""
        return self.writer.batches_committed

    def append(self, record: AuditRecord) -> AuditRecord:
        """Chain and commit `record`; return it as committed. Raises AuditAppendError."""
        return self.writer.append(record)

    def begin_append(self, record: AuditRecord) -> Future[AuditRecord]:
        """Queue `record`; the future is answered once it is committed."""
        return self.writer.begin_append(record)

    def begin_change(self, record: AuditRecord, change: Job[Any]) -> Future[Changed]:
        """Queue `record` with the change it records, to commit in one transaction (only
        `beside_memories`)."""
        if not self.beside_memories:
            raise ValueError("the trail is not in the memory database")
        return self.writer.begin_change(record, change)

    def result(self, done: Future[Any]) -> Any:
        """Wait for a queued record's commit. Raises AuditAppendError."""
        return self.writer.result(done)

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
        self.witnesses.close()

    def _maybe_checkpoint(self, seq: int) -> None:
        if seq <= self._last_checkpoint_seq:
            return
        due_by_count = seq - self._last_checkpoint_seq >= self._checkpoint_every
        due_by_time = utc_now() - self._last_checkpoint_at >= self._checkpoint_interval
        if due_by_count or due_by_time:
            try:
                self.checkpoint()
            except Exception as exc:  # a missed checkpoint is retried when the next is due
                self._last_checkpoint_seq = seq
                _log.error("audit_checkpoint_failed", error_type=type(exc).__name__)

    def checkpoint(self) -> TreeCheckpoint | None:
        """Sign the tree of the committed trail (by any process), store the note and publish
        it. None when the trail is empty; raises CheckpointRefused (see the module's doc)."""
        head = self._store.head()
        self._last_checkpoint_at = utc_now()
        if head.seq == 0:
            return None
        frontier = head.frontier
        if frontier is None:
            self._refuse(
                head.seq,
                0,
                f"the head holds no Merkle tree of its {head.seq} records: records are missing "
                "below it (`memory-store audit verify` says which)",
            )
        self._check_extends_signed(head.seq, frontier)
        signed = self._signing_key.sign_tree(head.seq, frontier.root())
        self._signed = frontier
        self._last_checkpoint_seq = head.seq
        at = format_time(self._last_checkpoint_at)
        if self._store.add_checkpoint(signed, at=at, frontier=frontier):
            _log.info("audit_checkpoint", seq=head.seq)  # else another process signed it too
        self.witnesses.publish(signed)
        return signed

    def _check_extends_signed(self, seq: int, frontier: Frontier) -> None:
        signed = self._signed if self._signed is not None else self._published()
        if signed is None:
            return
        grown = signed.copy()
        if seq >= signed.size:
            for digest in self._store.hashes(after=signed.size, through=seq):
                grown.append(digest)
        if grown != frontier:
            self._refuse(
                seq,
                signed.size,
                f"the trail of {seq} records does not extend the checkpoint of "
                f"{signed.size} records this service signed: it was rewritten or cut short",
            )

    def _published(self) -> Frontier | None:
        """The tree of the largest checkpoint of this log in the witness directory, from the
        frontier stored with it, proven by its root; None if none was published yet."""
        latest = self.witnesses.directory.latest(self._signing_key.public_key)
        if latest is None:
            return None
        stored = self._store.checkpoint_frontier(latest.size)
        try:
            frontier = Frontier.decode(latest.size, stored) if stored is not None else None
        except ValueError:
            frontier = None
        if frontier is None or frontier.root() != latest.root:
            self._refuse(
                latest.size,
                latest.size,
                f"the database no longer holds the tree of the checkpoint of {latest.size} "
                "records published to the witness directory: it was rewritten",
            )
        return frontier

    def _refuse(self, seq: int, signed_seq: int, reason: str) -> NoReturn:
        _log.error("audit_checkpoint_refused", seq=seq, signed_seq=signed_seq)
        raise CheckpointRefused(reason)

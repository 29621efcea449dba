"""Retention: memories past their expires_at are invisible at once (the policy says so) and
are deleted for good by this sweeper: every N seconds in a thread of the server (or of the
supervisor of `serve --workers N`), or on demand from the CLI."""

from __future__ import annotations

import contextvars
import threading

from memory_store.clock import utc_now
from memory_store.domain import (
    ALL_CATEGORIES,
    RETENTION,
    SWEEPER,
    AuditAction,
    Principal,
    Progress,
)
from memory_store.errors import KeysUnavailable
from memory_store.keys.keyring import DataKeyring
from memory_store.logging import get_logger
from memory_store.policy import AccessRequest, Action, Policy
from memory_store.services.guard import Guard
from memory_store.storage.memories import MemoryRepository
from memory_store.trail.recorder import Auditor

_log = get_logger("memory_store.retention")


BATCH = 1000  # memories purged per step: the write lock is never held for long


class RetentionSweeper:
    def __init__(
        self,
        memories: MemoryRepository,
        keyring: DataKeyring,
        policy: Policy,
        auditor: Auditor,
    ) -> None:
        self._memories = memories
        self._keyring = keyring
        self._auditor = auditor
        self._guard = Guard(policy, auditor)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self, principal: Principal = SWEEPER, progress: Progress | None = None) -> int:
        """Forget every expired memory; return how many. As for any forget, the item keys go
        first (each owner's key re-issued), then the rows. The purge is audited (with its
        count; the ids of what is gone are not kept)."""
        request = AccessRequest(principal, Action.memory_purge, ALL_CATEGORIES, RETENTION)
        self._guard.check(request, AuditAction.memory_purge, subject=None)
        now = utc_now()
        purged = 0
        while batch := self._memories.expired(now=now, limit=BATCH):
            owners: dict[str, list[str]] = {}
            for user_id, memory_id in batch:
                owners.setdefault(user_id, []).append(memory_id)
            expired = []
            for user_id, memory_ids in owners.items():
                try:
                    self._keyring.forget_items(user_id, memory_ids)
                except KeysUnavailable:  # their rows stay (invisible) until their key opens
                    _log.error("retention_keys_unavailable", memories=len(memory_ids))
                    continue
                expired += memory_ids
            deleted = self._memories.delete_expired(expired, now=now)
            if not deleted:  # changed under us (another sweeper): the next sweep goes on
                break
            purged += deleted
            if progress is not None:
                progress(deleted)
        if purged:
            self._auditor.record(
                principal, AuditAction.memory_purge, purpose=RETENTION, result_count=purged
            )
        _log.info("retention_sweep", purged=purged)
        return purged

    def start(self, interval_seconds: float) -> None:
        """Sweep every `interval_seconds` in a daemon thread until `close`; a failed sweep is
        logged and retried at the next interval, never fatal. The thread runs in a copy of
        the caller's context, so its audit records carry the caller's request id."""
        if self._thread is not None or interval_seconds <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._run, interval_seconds),
            name="retention-sweeper",
            daemon=True,
        )
        self._thread.start()

    def _run(self, interval_seconds: float) -> None:
        while not self._stop.wait(interval_seconds):
            try:
                self.sweep()
            except Exception as exc:  # keep sweeping; the next run may succeed
                _log.error("retention_sweep_failed", error_type=type(exc).__name__)

    def close(self) -> None:
        """Stop the thread (after the sweep under way, if any)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

"""Retention: memories past their expires_at are invisible at once (the policy says so) and
are deleted for good by this sweeper, in the server (a background task) or from the CLI."""

from __future__ import annotations

import asyncio

from memory_store.auditing import Auditor
from memory_store.auth import Principal
from memory_store.clock import utc_now
from memory_store.errors import Problem
from memory_store.logging import get_logger
from memory_store.models import Role
from memory_store.policy import ALL_CATEGORIES, RETENTION, AccessRequest, Action, Policy
from memory_store.repository import MemoryRepository

_log = get_logger("memory_store.retention")

# The sweeper acts as the operator: policy.csv lets the admin role purge for retention.
SWEEPER = Principal(
    token_id="system",  # noqa: S106 (an id, not a secret)
    name="retention-sweeper",
    role=Role.admin,
    user_id=None,
)


class RetentionSweeper:
    def __init__(self, memories: MemoryRepository, policy: Policy, auditor: Auditor) -> None:
        self._memories = memories
        self._policy = policy
        self._auditor = auditor

    def sweep(self, principal: Principal = SWEEPER) -> int:
        """Delete every expired memory; return how many. The purge is audited (with its
        count; the ids of what is gone are not kept)."""
        try:
            self._policy.check(
                AccessRequest(principal, Action.memory_purge, ALL_CATEGORIES, RETENTION)
            )
        except Problem as problem:
            self._auditor.denied(principal, "memory.purge", problem, purpose=RETENTION)
            raise
        purged = self._memories.purge_expired(now=utc_now())
        if purged:
            self._auditor.record(principal, "memory.purge", purpose=RETENTION, result_count=purged)
        _log.info("retention_sweep", purged=purged)
        return purged

    async def run_forever(self, interval_seconds: float) -> None:
        """Sweep every `interval_seconds` until cancelled; a failed sweep is logged and retried
        at the next interval, never fatal to the server."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await asyncio.to_thread(self.sweep)
            except Exception as exc:  # keep sweeping; the next run may succeed
                _log.error("retention_sweep_failed", error_type=type(exc).__name__)

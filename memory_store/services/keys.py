"""The operator's key operations, and the KEK epoch schedule.

An epoch is a KEK version. Rotation makes a new epoch and rewraps every live data key under
it (online); retirement destroys every older epoch that wraps no live key any more. A data
key destroyed by a forget may live on in copies (a backup of the key store, its WAL, a dead
tuple), wrapped under the epoch of the day: once that epoch is retired, no such copy opens.
The server rotates and retires on a schedule (`MEMORY_STORE_KEK_ROTATE_EVERY`, a day by
default), so every forget is final at a time known in advance (`final_at`). Each change is
audited.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from memory_store.clock import utc_now
from memory_store.domain import OPERATOR, AuditAction, Principal, Progress
from memory_store.errors import KeyProviderError
from memory_store.keys.keyring import DataKeyring, RotationReport
from memory_store.logging import get_logger
from memory_store.storage.keystore import KeyStore
from memory_store.trail.recorder import Auditor

_log = get_logger("memory_store.keys")
# How often the schedule is looked at, at most (a rotation is due at most this late).
CHECK_SECONDS = 300.0


@dataclass(frozen=True)
class KekStatus:
    version: int
    current: bool
    wraps: int  # how many data keys


class KeyService:
    def __init__(
        self,
        keyring: DataKeyring,
        keystore: KeyStore,
        auditor: Auditor,
        *,
        rotate_every: timedelta | None = None,
        on_rotate: Callable[[], None] | None = None,
    ) -> None:
        # Told once the data keys are rewrapped (the recall index is dropped: all of it was
        # opened under keys of the epoch before).
        self._on_rotate = on_rotate or (lambda: None)
        self._keyring = keyring
        self._keystore = keystore
        self._auditor = auditor
        self._rotate_every = rotate_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def status(self) -> list[KekStatus]:
        provider = self._keyring.provider
        counts = self._keyring.count_by_version()
        current = provider.current_version()
        return [
            KekStatus(version, version == current, counts.get(version, 0))
            for version in provider.versions()
        ]

    def rotate(
        self, actor: Principal = OPERATOR, progress: Progress | None = None
    ) -> RotationReport:
        """Add a KEK version, make it current, and rewrap every data key under it. The report
        counts the keys rewrapped, and those that could not be unwrapped (left as they are)."""
        version = self._keyring.provider.add_version()
        self._keystore.record_epoch(version, utc_now())
        report = self._keyring.rewrap_all(progress=progress)
        self._on_rotate()
        self._auditor.record(
            actor,
            AuditAction.key_rotate,
            target=f"kek:v{version}",
            result_count=report.rewrapped,
            outcome="allowed" if not report.failed else "denied",
            reason=f"{report.failed} failed" if report.failed else None,
        )
        return report

    def retire(self, version: int, actor: Principal = OPERATOR) -> None:
        """Destroy KEK `version`; KeyProviderError (recorded as refused) while any data key is
        still wrapped by it, or when it is the current one."""
        target = f"kek:v{version}"
        try:
            self._keyring.retire_kek(version)
        except KeyProviderError:
            self._auditor.record(actor, AuditAction.key_retire, target=target, outcome="denied")
            raise
        self._auditor.record(actor, AuditAction.key_retire, target=target)

    def retire_unused(self, actor: Principal = OPERATOR) -> list[int]:
        """Destroy every KEK version but the current one that wraps no data key. Returns
        the versions destroyed."""
        current = self._keyring.provider.current_version()
        counts = self._keyring.count_by_version()
        retired = []
        for version in self._keyring.provider.versions():
            if version != current and not counts.get(version, 0):
                self.retire(version, actor)
                retired.append(version)
        return retired

    # -- the schedule -------------------------------------------------------------------------

    def epoch_started(self) -> datetime:
        """When the current epoch was made (recorded now, if it never was: a store made
        before epochs were recorded starts its clock at the first look)."""
        current = self._keyring.provider.current_version()
        started = self._keystore.epoch_started(current)
        if started is None:
            self._keystore.record_epoch(current, utc_now())
            started = self._keystore.epoch_started(current)
            assert started is not None
        return started

    def final_at(self, epoch: int | None = None) -> datetime | None:
        """When a key destroyed during `epoch` (default: the current one) is gone from every
        copy: when the schedule retires that epoch, at its end. None when rotation is off."""
        if not self._rotate_every:
            return None
        current = self._keyring.provider.current_version()
        if epoch is None or epoch == current:
            return self.epoch_started() + self._rotate_every
        started = self._keystore.epoch_started(epoch)
        return started + self._rotate_every if started is not None else None

    def current_epoch(self) -> int:
        return self._keyring.provider.current_version()

    def retired_through(self, epoch: int) -> bool:
        """Is every epoch up to `epoch` destroyed? (Then nothing wrapped under one opens.)"""
        return all(version > epoch for version in self._keyring.provider.versions())

    def maintain(self, now: datetime | None = None) -> bool:
        """Rotate and retire if the current epoch is due; reclaim deleted keys' space.
        True when it rotated."""
        self._keystore.vacuum()
        if not self._rotate_every:
            return False
        now = now or utc_now()
        if now < self.epoch_started() + self._rotate_every:
            return False
        report = self.rotate()
        retired = self.retire_unused()
        self._keystore.vacuum()
        _log.info(
            "kek_rotated", kek_version=report.kek_version, failed=report.failed, retired=retired
        )
        return True

    def start(self) -> None:
        """Look at the schedule every CHECK_SECONDS (or sooner, for a short period) in a
        daemon thread until `close`; a failed look is logged and retried at the next."""
        if self._thread is not None or not self._rotate_every:
            return
        check = min(CHECK_SECONDS, self._rotate_every.total_seconds() / 4)
        self._stop.clear()
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._run, check),
            name="kek-rotation",
            daemon=True,
        )
        self._thread.start()

    def _run(self, check_seconds: float) -> None:
        while not self._stop.wait(check_seconds):
            try:
                self.maintain()
            except Exception as exc:  # keep looking; the next look may succeed
                _log.error("kek_rotation_failed", error_type=type(exc).__name__)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

"""The operator's key operations: the KEK versions and what each wraps, rotation (a new KEK
version, every data key rewrapped online) and retirement (an old version destroyed once it
wraps nothing). Each change is audited."""

from __future__ import annotations

from dataclasses import dataclass

from memory_store.domain import OPERATOR, AuditAction, Principal
from memory_store.errors import KeyProviderError
from memory_store.keys.keyring import DataKeyring, RotationReport
from memory_store.trail.recorder import Auditor


@dataclass(frozen=True)
class KekStatus:
    version: int
    current: bool
    wraps: int  # how many data keys


class KeyService:
    def __init__(self, keyring: DataKeyring, auditor: Auditor) -> None:
        self._keyring = keyring
        self._auditor = auditor

    def status(self) -> list[KekStatus]:
        provider = self._keyring.provider
        counts = self._keyring.count_by_version()
        current = provider.current_version()
        return [
            KekStatus(version, version == current, counts.get(version, 0))
            for version in provider.versions()
        ]

    def rotate(self, actor: Principal = OPERATOR) -> RotationReport:
        """Add a KEK version, make it current, and rewrap every data key under it. The report
        counts the keys rewrapped, and those that could not be unwrapped (left as they are)."""
        version = self._keyring.provider.add_version()
        report = self._keyring.rewrap_all()
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

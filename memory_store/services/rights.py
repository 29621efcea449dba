"""A user's rights over everything held about them: export it all (GDPR Art. 15, 20) and
forget it all (Art. 17). Forgetting is crypto-shredding first: the data key goes, then the rows.
"""

from __future__ import annotations

from memory_store.clock import utc_now
from memory_store.domain import SELF_SERVICE, AuditAction, Principal
from memory_store.keys.keyring import DataKeyring
from memory_store.logging import get_logger
from memory_store.policy import AccessRequest, Action, Policy
from memory_store.schemas import (
    AccessLogEntry,
    ErasureReceipt,
    ExportedMemory,
    UserExport,
    WhoAmI,
)
from memory_store.services.audit import AuditService
from memory_store.services.consents import ConsentService
from memory_store.services.erasures import ErasureLog
from memory_store.services.guard import Guard
from memory_store.services.memories import MemoryService
from memory_store.storage.eraser import Eraser
from memory_store.trail.recorder import Auditor

_log = get_logger("memory_store.rights")


class UserRightsService:
    def __init__(
        self,
        memories: MemoryService,
        consents: ConsentService,
        audit: AuditService,
        keyring: DataKeyring,
        policy: Policy,
        auditor: Auditor,
        eraser: Eraser,
        erasures: ErasureLog,
    ) -> None:
        self._eraser = eraser
        self._erasures = erasures
        self._memories = memories
        self._consents = consents
        self._audit = audit
        self._keyring = keyring
        self._policy = policy
        self._auditor = auditor
        self._guard = Guard(policy, auditor)

    def whoami(self, principal: Principal) -> WhoAmI:
        user_id = principal.user_id or ""
        request = AccessRequest(principal, Action.me_read, user_id, SELF_SERVICE)
        self._guard.check(request, AuditAction.me_read, purpose=None)
        return WhoAmI(user_id=user_id, role=principal.role.value, token_name=principal.name)

    def export(self, principal: Principal) -> UserExport:
        """Memories with their history, consents and their history, settings, access log."""
        memories = self._memories.export_own(principal)
        history, cursor = [], None
        while True:
            page = self._consents.history(principal, limit=500, cursor=cursor)
            history += page.items
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        access: list[AccessLogEntry] = []
        cursor = None
        while True:
            entries, cursor = self._audit.access_log(principal, limit=500, cursor=cursor)
            access += entries
            if cursor is None:
                break
        return UserExport(
            exported_at=utc_now(),
            user_id=principal.user_id or "",
            settings=self._consents.settings(principal),
            memories=[
                ExportedMemory(**memory.model_dump(), history=versions, item=item)
                for memory, versions, item in memories
            ],
            consents=self._consents.overview(principal),
            consent_history=history,
            access_log=access,
        )

    def forget(self, principal: Principal) -> ErasureReceipt:
        """Forget the caller entirely.

        1. The erasure is audited first, under the user's pseudonym (the last record that
           can be linked to them, and only while their key exists).
        2. Their memories are marked for deletion (invisible from here on) and counted, and
           every other row keyed to them (consents, settings, tokens) is deleted.
        3. Their data key is destroyed, and the key store's WAL truncated: from here on,
           no copy of their memories anywhere (a backup, a free page) can be decrypted.
        4. Their memory rows are deleted: here when they are few (Eraser.INLINE_ROWS), else
           by the eraser thread in batches (see storage/eraser.py), so that forgetting 10,000
           memories does not keep the user waiting. The receipt says which.
        """
        user_id = principal.user_id or ""
        request = AccessRequest(principal, Action.user_forget, user_id, SELF_SERVICE)
        self._guard.check(request, AuditAction.user_forget, purpose=None)
        record = self._auditor.record(
            principal, AuditAction.user_forget, subject_user_id=user_id, purpose=SELF_SERVICE
        )
        counts = self._eraser.begin(user_id, utc_now())
        destroyed = self._keyring.shred(user_id)
        self._memories.recall.index.evict(user_id)
        complete = False
        if counts.memories + counts.memory_versions <= Eraser.INLINE_ROWS:
            complete = self._eraser.finish_user(user_id)
        if not complete:
            self._eraser.wake()
        self._policy.clear_cache()
        erasure = self._erasures.record("everything", counts.memories)
        _log.info("user_forgotten", audit_seq=record.seq)
        return ErasureReceipt(
            user_id=user_id,
            erased_at=utc_now(),
            memories=counts.memories,
            memory_versions=counts.memory_versions,
            consent_choices=counts.consent_choices,
            consent_history=counts.consent_history,
            settings=counts.settings,
            tokens=counts.tokens,
            data_key_destroyed=destroyed,
            final_at=erasure.final_at,
            erasure_id=erasure.id,
            rows_deleted=complete,
            audit_seq=record.seq,
        )

"""Changing memories: the assistant's write and forget, and a user's edit and deletes. Each
change is recorded before it is made."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from memory_store.clock import utc_now
from memory_store.domain import SELF_SERVICE, AuditAction, Principal
from memory_store.errors import (
    DecryptionError,
    InvalidRequest,
    KeysUnavailable,
    PreconditionFailed,
    QuotaExceeded,
)
from memory_store.item_schemas import corrected_item
from memory_store.keys.envelope import UserKey, new_item_key
from memory_store.keys.payload import seal_payload
from memory_store.pending import Pending, Steps, run_steps
from memory_store.policy import AccessRequest, Action, Category, refuse_secrets
from memory_store.schemas import Erasure, MemoryCreate, MemoryPublic, MemoryUpdate
from memory_store.services.memory_access import (
    MemoryAccess,
    earlier_binding,
    memory_binding,
    not_found,
    open_row_item,
    public,
)
from memory_store.storage.memories import MemoryRow, MemoryVersionRow


def new_memory_id() -> str:
    """Random and opaque, so ids invite no enumeration."""
    return "mem_" + secrets.token_urlsafe(16)


def new_expiry(category: Category, requested: datetime | None, now: datetime) -> datetime:
    """A new memory's expiry: as asked, within the category's retention (by default its
    limit); a past time or one beyond the limit is refused."""
    limit = now + category.retention
    expires_at = requested if requested is not None else limit
    if expires_at <= now:
        raise InvalidRequest("expires_at must be in the future")
    if expires_at > limit:
        raise InvalidRequest(
            f"expires_at is later than the retention limit of category '{category.name}' "
            f"({category.retention.days} days)",
            latest_allowed=limit.isoformat(),
        )
    return expires_at


@dataclass(frozen=True)
class GatedWrite:
    """A write the gate let through: its request, the time, its expiry, the user's key."""

    request: AccessRequest
    category: str
    now: datetime
    expires_at: datetime
    key: UserKey


class MemoryWrites(MemoryAccess):
    def _gate_write(
        self,
        principal: Principal,
        user_id: str,
        purpose: str,
        category_name: str,
        expires_at: datetime | None,
        texts: Sequence[str | None],
    ) -> GatedWrite:
        """What every write (a memory, a keyed item) checks first, in this order: the
        purpose and category are known, no secret is among `texts`, the policy (consent
        included) allows it, the expiry is within the category's retention; then the
        user's key for writing (made for a new user)."""
        self._catalogue.purpose(purpose)
        category = self._catalogue.category(category_name)
        refuse_secrets(*texts)
        request = AccessRequest(
            principal,
            Action.memory_write,
            user_id,
            purpose,
            category.name,
            facts=self._consents.facts(user_id),
        )
        self._guard.check(request, AuditAction.memory_write)
        now = utc_now()
        expiry = new_expiry(category, expires_at, now)
        try:
            key = self._keyring.key_for_write(user_id)
        except DecryptionError:
            raise KeysUnavailable("This user's data key cannot be opened") from None
        return GatedWrite(request, category.name, now, expiry, key)

    def write(
        self, principal: Principal, user_id: str, purpose: str, body: MemoryCreate
    ) -> MemoryPublic:
        return run_steps(self.write_steps(principal, user_id, purpose, body))

    def write_steps(
        self, principal: Principal, user_id: str, purpose: str, body: MemoryCreate
    ) -> Steps[MemoryPublic]:
        """The write, as steps (memory_store/pending.py): checked and sealed at once; then
        its item key and its audit record committed; then the memory stored. A thread runs
        it with `write`; a request on the event loop awaits each commit, holding no thread."""
        action = AuditAction.memory_write
        texts = [body.content, body.source]
        gated = self._gate_write(principal, user_id, purpose, body.category, body.expires_at, texts)
        if self._memories.count(user_id) >= self._max_memories:
            raise self._quota_exceeded()
        key, now, expires_at = gated.key, gated.now, gated.expires_at
        memory_id = new_memory_id()
        item = new_item_key(key, memory_id, 1)
        unsealed = MemoryRow(
            id=memory_id,
            user_id=user_id,
            category=gated.category,
            key_id=key.key_id,
            ciphertext=b"",
            version=1,
            created_at=now,
            updated_at=now,
            expires_at=expires_at,
        )
        row = replace(
            unsealed,
            ciphertext=seal_payload(item, memory_binding(unsealed), body.content, body.source),
        )
        # The item key commits first, so that a memory stored always opens; the memory is
        # never stored before the record of its write.
        item_key_stored = self._keyring.begin_storing_item_keys(key, [item])
        if self._auditor.beside_memories:  # the record and the row in one commit
            yield item_key_stored
            stored = yield self._auditor.begin_change(
                self._memories.insert_job(row, max_per_user=self._max_memories),
                principal,
                action,
                subject_user_id=user_id,
                subject_key=key,
                memory_ids=[memory_id],
                purpose=purpose,
                result_count=1,
            )
        else:  # the item key and the record commit together, then the row
            recorded = self._auditor.begin_record(
                principal,
                action,
                subject_user_id=user_id,
                subject_key=key,
                memory_ids=[memory_id],
                purpose=purpose,
                result_count=1,
            )
            yield Pending(recorded.done, recorded.wait)
            yield item_key_stored
            # A failed commit leaves the item key behind (the write may yet have committed):
            # it opens nothing but that memory, and goes when its user is forgotten.
            stored = yield self._memories.begin_insert(row, max_per_user=self._max_memories)
        if not stored:
            # Concurrent writes filled the quota after the check above: the insert, which
            # counts again under the write lock, stored nothing. Recorded as refused.
            self._keyring.drop_item_key(item)
            self._guard.deny(gated.request, action, self._quota_exceeded(), [memory_id])
        return public(row, body.content, body.source)

    def _quota_exceeded(self) -> QuotaExceeded:
        return QuotaExceeded(
            f"This user already has {self._max_memories} memories, the most allowed; "
            "older ones must be forgotten first",
            limit=self._max_memories,
        )

    def update_own(
        self,
        principal: Principal,
        memory_id: str,
        patch: MemoryUpdate,
        *,
        if_match: int | None,
    ) -> MemoryPublic:
        """A user corrects one of their memories: content, category, or an earlier expiry.
        The version it replaces is kept, encrypted, in its history. With `if_match`, a memory
        that has changed since (another version) is refused with 412, and nothing changes."""
        user_id = principal.user_id or ""
        action = AuditAction.memory_update
        request = AccessRequest(principal, Action.memory_update, user_id, SELF_SERVICE)
        now = utc_now()
        row = self._one(request, action, memory_id, now)
        if if_match is not None and if_match != row.version:
            raise PreconditionFailed(
                f"The memory is at version {row.version}, not {if_match}: read it again",
                current_version=row.version,
            )
        category = self._catalogue.category(patch.category or row.category)
        refuse_secrets(patch.content)
        key = self._read_key(user_id)
        keys = self._item_keys(key, [row.id])
        content_now, source, named = open_row_item(keys, row)
        current_item = keys.get(row.id, row.version, row.ciphertext)
        if key is None or current_item is None:  # open_row_item raised already (for mypy)
            raise not_found()
        latest = min(row.expires_at, row.created_at + category.retention)
        expires_at = patch.expires_at if patch.expires_at is not None else latest
        if expires_at <= now:
            raise InvalidRequest("expires_at must be in the future; to forget now, delete it")
        if expires_at > latest:
            raise InvalidRequest(
                "expires_at may only be brought forward, and never past the category's limit",
                latest_allowed=latest.isoformat(),
            )
        content = patch.content if patch.content is not None else content_now
        # A keyed item keeps its name; the user's correction of its text reaches its value.
        renamed = corrected_item(named, content) if named and patch.content is not None else named
        # The version it replaces, re-encrypted bound as an earlier one; and the new current
        # version, bound to its new category, expiry and number.
        earlier = MemoryVersionRow(
            memory_id=row.id,
            version=row.version,
            user_id=user_id,
            category=row.category,
            key_id=key.key_id,
            ciphertext=b"",
            expires_at=row.expires_at,
            valid_from=row.updated_at,
            valid_until=now,
        )
        earlier = replace(
            earlier,
            ciphertext=seal_payload(
                current_item, earlier_binding(earlier), content_now, source, named
            ),
        )
        item = new_item_key(key, row.id, row.version + 1)
        replacement = replace(
            row,
            category=category.name,
            version=row.version + 1,
            updated_at=now,
            expires_at=expires_at,
        )
        replacement = replace(
            replacement,
            ciphertext=seal_payload(item, memory_binding(replacement), content, source, renamed),
        )
        self._auditor.record(
            principal,
            action,
            subject_user_id=user_id,
            subject_key=key,
            memory_ids=[row.id],
            purpose=SELF_SERVICE,
            reason=",".join(sorted(patch.model_fields_set)),
            result_count=1,
        )
        self._keyring.store_item_keys(key, [item])
        if not self._memories.update(row, replacement, earlier):
            # Changed or deleted between our read and our write.
            self._keyring.drop_item_key(item)
            raise PreconditionFailed("The memory changed meanwhile: read it again")
        return public(replacement, content, source)

    def delete_own(self, principal: Principal, memory_id: str) -> Erasure:
        """Forget one memory: its item keys are destroyed, its row and its history deleted."""
        user_id = principal.user_id or ""
        request = AccessRequest(principal, Action.memory_delete, user_id, SELF_SERVICE)
        return self._forget_one(request, memory_id)

    def forget_for_purpose(
        self, principal: Principal, user_id: str, memory_id: str, purpose: str
    ) -> Erasure:
        """The assistant forgets one memory on the user's behalf: keys, row and history go."""
        self._catalogue.purpose(purpose)
        request = AccessRequest(principal, Action.memory_delete, user_id, purpose)
        return self._forget_one(request, memory_id)

    def _forget_one(self, request: AccessRequest, memory_id: str) -> Erasure:
        action = AuditAction.memory_delete
        row = self._one(request, action, memory_id, utc_now())
        self._record_change(request, action, [row.id])
        self._shred(request.subject_user_id, [row.id])
        return self._erasures.record("memory", 1)

    def delete_category_own(self, principal: Principal, category: str) -> tuple[int, Erasure]:
        """Forget every memory of one category (and their history). Returns how many, and
        the erasure's status."""
        action = AuditAction.memory_delete
        self._catalogue.category(category)
        user_id = principal.user_id or ""
        request = AccessRequest(principal, Action.memory_delete, user_id, SELF_SERVICE, category)
        self._guard.check(request, action)
        ids = self._memories.ids_in_category(user_id, category)
        self._record_change(request, action, ids)
        deleted = self._shred(user_id, ids)
        return deleted, self._erasures.record("category", deleted)

    def _shred(self, user_id: str, memory_ids: list[str]) -> int:
        """Forget memories: their item keys first (with the user's key re-issued), then their
        rows. A crash between leaves rows that no longer open, never a key. Returns how many
        rows were deleted."""
        self._keyring.forget_items(user_id, memory_ids)
        return self._memories.delete(user_id, memory_ids)

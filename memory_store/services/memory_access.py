"""What every memory use case shares: the policy gate on one memory, the filter of a page by
the policy, and the one place contents are disclosed (`_disclose`): the read is recorded, and
only once its record is committed are the rows decrypted."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import anyio.to_thread

from memory_store.domain import AuditAction
from memory_store.errors import DecryptionError, MemoryUnreadable, NotFound
from memory_store.keys.envelope import UserKey
from memory_store.keys.keyring import DataKeyring, ItemKeys
from memory_store.keys.payload import Binding, open_item_payload, open_payload
from memory_store.logging import get_logger
from memory_store.policy import AccessRequest, Catalogue, Policy
from memory_store.schemas import MemoryPublic, MemoryVersionPublic
from memory_store.services.cursors import Cursors
from memory_store.services.erasures import ErasureLog
from memory_store.services.guard import Guard
from memory_store.storage.consents import ConsentRepository
from memory_store.storage.memories import MemoryRepository, MemoryRow, MemoryVersionRow
from memory_store.trail.recorder import Auditor, PendingRecord

_log = get_logger("memory_store.memories")


T = TypeVar("T")


class Placed(Protocol):
    """What the policy decides a stored memory (or item) on: its category and expiry."""

    @property
    def category(self) -> str: ...

    @property
    def expires_at(self) -> datetime: ...


P = TypeVar("P", bound=Placed)


class Disclosure(Generic[T]):
    """A read whose audit record is queued: its answer, which holds the decrypted contents,
    is made only once that record is committed. A thread `wait`s for it; a request on the
    event loop awaits `answered`, holding no thread while the group commit comes."""

    def __init__(self, record: PendingRecord | None, reveal: Callable[[], T]) -> None:
        self._record = record
        self._reveal = reveal

    @classmethod
    def done(cls, answer: T) -> Disclosure[T]:
        """An answer whose record is committed already."""
        return cls(None, lambda: answer)

    def wait(self) -> T:
        if self._record is not None:
            self._record.wait()
        return self._reveal()

    async def answered(self) -> T:
        if self._record is not None:
            await self._record.committed()
        return self._reveal()

    async def answered_off_loop(self) -> T:
        """`answered`, with the rows opened in a worker thread (their item keys read from a
        database over the network): only the commit is awaited on the loop."""
        if self._record is not None:
            await self._record.committed()
        return await anyio.to_thread.run_sync(self._reveal)


class MemoryAccess:
    """Every decision is the policy's; every allowed or denied access is audited; contents
    are decrypted only after the read's record is committed (a search decrypts to match, and
    answers only after its record is committed)."""

    def __init__(
        self,
        memories: MemoryRepository,
        consents: ConsentRepository,
        keyring: DataKeyring,
        policy: Policy,
        catalogue: Catalogue,
        auditor: Auditor,
        erasures: ErasureLog,
        cursors: Cursors,
        *,
        max_memories_per_user: int = 10_000,
    ) -> None:
        self._max_memories = max_memories_per_user
        self._erasures = erasures
        self._cursors = cursors
        self._memories = memories
        self._consents = consents
        self._keyring = keyring
        self._policy = policy
        self._catalogue = catalogue
        self._auditor = auditor
        self._guard = Guard(policy, auditor)

    def _gate_role(self, request: AccessRequest, action: AuditAction) -> None:
        self._guard.check_role(request, action, list(self._catalogue.categories))

    def _one(
        self, request: AccessRequest, action: AuditAction, memory_id: str, now: datetime
    ) -> MemoryRow:
        """The memory a request names, once the policy allows the request on it (its role,
        then its category, expiry and the user's consent); every refusal audited."""
        self._gate_role(request, action)
        row = self._memories.get(request.subject_user_id, memory_id)
        if row is None:
            self._guard.deny(request, action, not_found(), [memory_id])
        facts = self._consents.facts(request.subject_user_id)
        on_row = replace(request, facts=facts, category=row.category, expired=row.expires_at <= now)
        self._guard.check(on_row, action, [row.id])
        return row

    def _visible(self, request: AccessRequest, rows: Sequence[P], now: datetime) -> list[P]:
        """The rows the policy lets this request see, each decided on its own category and
        expiry (cached decisions, so this is cheap)."""
        decided: dict[tuple[str, bool], bool] = {}  # a page has few (category, expired) pairs
        visible = []
        for row in rows:
            fact = (row.category, row.expires_at <= now)
            allowed = decided.get(fact)
            if allowed is None:
                allowed = decided[fact] = self._policy.allows_row(request, *fact)
            if allowed:
                visible.append(row)
        return visible

    def _read_key(self, user_id: str) -> UserKey | None:
        try:
            return self._keyring.key_for_read(user_id)
        except DecryptionError:  # the user's data key itself will not open
            return None

    def _item_keys(self, user: UserKey | None, memory_ids: Sequence[str] | None) -> ItemKeys:
        """The item keys of `memory_ids` (None: all the user's), to open their versions."""
        return self._keyring.item_keys(user, memory_ids)

    def _record_read(
        self,
        request: AccessRequest,
        action: AuditAction,
        key: UserKey | None,
        memory_ids: list[str],
    ) -> None:
        self._begin_record_read(request, action, key, memory_ids).wait()

    def _begin_record_read(
        self,
        request: AccessRequest,
        action: AuditAction,
        key: UserKey | None,
        memory_ids: list[str],
    ) -> PendingRecord:
        """The read's record, queued for its commit (nothing may be disclosed before)."""
        return self._auditor.begin_record(
            request.principal,
            action,
            subject_user_id=request.subject_user_id,
            subject_key=key,
            memory_ids=memory_ids,
            purpose=request.purpose,
            result_count=len(memory_ids),
        )

    def _record_change(
        self, request: AccessRequest, action: AuditAction, memory_ids: list[str]
    ) -> None:
        self._auditor.record(
            request.principal,
            action,
            subject_user_id=request.subject_user_id,
            memory_ids=memory_ids,
            purpose=request.purpose,
            result_count=len(memory_ids),
        )

    def _disclose(
        self, request: AccessRequest, action: AuditAction, rows: Sequence[MemoryRow]
    ) -> list[MemoryPublic]:
        """Record the read, and only once it is committed, decrypt: one key for all rows. A
        row that will not open is left out (and recorded as refused), the rest served."""
        return self._begin_disclose(request, action, rows, lambda items: items).wait()

    def _begin_disclose(
        self,
        request: AccessRequest,
        action: AuditAction,
        rows: Sequence[MemoryRow],
        answer: Callable[[list[MemoryPublic]], T],
    ) -> Disclosure[T]:
        """`_disclose` in two steps: the read's record queued now; the rows opened (and made
        into the `answer`) only once it is committed."""
        key = self._read_key(request.subject_user_id) if rows else None
        ids = [row.id for row in rows]
        pending = self._begin_record_read(request, action, key, ids)

        def reveal() -> T:
            items, unreadable = reveal_each(self._item_keys(key, ids), rows)
            self._refuse_unreadable(request, action, unreadable)
            return answer(items)

        return Disclosure(pending, reveal)

    def _refuse_unreadable(
        self, request: AccessRequest, action: AuditAction, memory_ids: Sequence[str]
    ) -> None:
        """Rows whose ciphertext would not open (altered in the database, moved, or their key
        gone) are not served: counted in the log, and on the trail as refused, by id."""
        if not memory_ids:
            return
        _log.warning("memory_unreadable", rows=len(memory_ids))
        self._auditor.denied(
            request.principal,
            action,
            MemoryUnreadable(),
            subject_user_id=request.subject_user_id,
            purpose=request.purpose,
            memory_ids=memory_ids,
        )


def memory_binding(row: MemoryRow) -> Binding:
    """What the current version of a memory is encrypted bound to: its row's attributes."""
    return Binding(
        "memory", row.user_id, row.id, row.version, row.category, row.expires_at, row.key_id
    )


def earlier_binding(row: MemoryVersionRow) -> Binding:
    """What an earlier version is encrypted bound to: apart from every current version."""
    return Binding(
        "version",
        row.user_id,
        row.memory_id,
        row.version,
        row.category,
        row.expires_at,
        row.key_id,
    )


def open_row(keys: ItemKeys, row: MemoryRow) -> tuple[str, str | None]:
    """(content, source) of a row, or one opaque MemoryUnreadable."""
    try:
        return open_payload(
            keys.get(row.id, row.version, row.ciphertext), memory_binding(row), row.ciphertext
        )
    except DecryptionError:
        raise MemoryUnreadable(
            "This memory cannot be decrypted: it was altered, moved, or its key destroyed",
            memory_id=row.id,
        ) from None


def open_row_item(keys: ItemKeys, row: MemoryRow) -> tuple[str, str | None, dict[str, Any] | None]:
    """(content, source, keyed item or None) of a row, or one opaque MemoryUnreadable."""
    try:
        return open_item_payload(
            keys.get(row.id, row.version, row.ciphertext), memory_binding(row), row.ciphertext
        )
    except DecryptionError:
        raise MemoryUnreadable(
            "This memory cannot be decrypted: it was altered, moved, or its key destroyed",
            memory_id=row.id,
        ) from None


def reveal(keys: ItemKeys, row: MemoryRow) -> MemoryPublic:
    return public(row, *open_row(keys, row))


def reveal_each(keys: ItemKeys, rows: Sequence[MemoryRow]) -> tuple[list[MemoryPublic], list[str]]:
    """The rows that open, and the ids of those that do not."""
    items, unreadable = [], []
    for row in rows:
        try:
            items.append(reveal(keys, row))
        except MemoryUnreadable:
            unreadable.append(row.id)
    return items, unreadable


def reveal_versions(
    keys: ItemKeys, rows: Sequence[MemoryVersionRow]
) -> tuple[list[MemoryVersionPublic], list[str]]:
    """The earlier versions that open, and the memory ids of those that do not."""
    items, unreadable = [], []
    for row in rows:
        try:
            items.append(reveal_version(keys, row))
        except MemoryUnreadable:
            unreadable.append(row.memory_id)
    return items, unreadable


def reveal_version(keys: ItemKeys, row: MemoryVersionRow) -> MemoryVersionPublic:
    try:
        item = keys.get(row.memory_id, row.version, row.ciphertext)
        content, source = open_payload(item, earlier_binding(row), row.ciphertext)
    except DecryptionError:
        raise MemoryUnreadable(
            "An earlier version of this memory cannot be decrypted",
            memory_id=row.memory_id,
        ) from None
    return MemoryVersionPublic(
        version=row.version,
        category=row.category,
        content=content,
        source=source,
        expires_at=row.expires_at,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
    )


def public(row: MemoryRow, content: str, source: str | None) -> MemoryPublic:
    return MemoryPublic(
        id=row.id,
        user_id=row.user_id,
        category=row.category,
        content=content,
        source=source,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
    )


def not_found() -> NotFound:
    return NotFound("No such memory")

"""Keyed items: memories a client names by a namespace path and a key, holding a JSON value
(the API under /v1/users/{id}/items, and what the LangGraph store is built on).

An item is a memory like any other: encrypted under its own item key, decided by the policy
on its category, recorded before anything is disclosed, seen, corrected and forgotten by its
user among their memories, swept when it expires. Its name (namespace and key) and value are
sealed in its payload with its text; the row holds only a keyed hash of the name
(keys/lookup.py), so a name is never at rest in the clear and is unlinkable once the user's
keys are destroyed. Listing by namespace therefore decrypts the user's items to look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from memory_store.clock import utc_now
from memory_store.domain import AuditAction, Principal
from memory_store.errors import (
    InvalidRequest,
    MemoryUnreadable,
    StorageUnavailable,
)
from memory_store.item_schemas import (
    ItemPage,
    ItemPublic,
    ItemPut,
    ItemRef,
    ItemSearch,
    NamespaceList,
    NamespaceQuery,
    item_content,
)
from memory_store.keys.envelope import UserKey, new_item_key
from memory_store.keys.lookup import ItemLookup, lookup_hash
from memory_store.keys.payload import seal_payload
from memory_store.policy import AccessRequest, Action
from memory_store.recall.bm25 import bm25
from memory_store.recall.filters import UnknownOperator, check_filter, matches
from memory_store.schemas import Erasure
from memory_store.services.memory_access import (
    earlier_binding,
    memory_binding,
    not_found,
    open_row_item,
)
from memory_store.services.memory_writes import MemoryWrites, new_memory_id
from memory_store.storage.items import ItemRepository
from memory_store.storage.memories import MemoryRow, MemoryVersionRow

_ATTEMPTS = 3  # a put racing another put of the same name: look again, this often

Opened = tuple[MemoryRow, str, dict[str, Any]]  # a row, its text, its sealed name and value


def _strings(value: Any) -> list[str]:
    """Every string in a JSON value, keys included: what the secret guard reads."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _fits(namespace: Sequence[str], pattern: Sequence[str], *, suffix: bool = False) -> bool:
    """Whether a namespace starts (ends) with `pattern`, `*` matching any one label."""
    if len(namespace) < len(pattern):
        return False
    ends = namespace[len(namespace) - len(pattern) :] if suffix else namespace[: len(pattern)]
    return all(p in ("*", n) for n, p in zip(ends, pattern, strict=True))


def _public(row: MemoryRow, content: str, named: dict[str, Any], score: float | None) -> ItemPublic:
    return ItemPublic(
        id=row.id,
        user_id=row.user_id,
        namespace=named["namespace"],
        key=named["key"],
        value=named["value"],
        category=row.category,
        content=content,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        score=score,
    )


class ItemService(MemoryWrites):
    """The keyed-item use cases, on the memory use cases' policy gate, trail and keys."""

    _items: ItemRepository
    _lookup: ItemLookup

    def attach(self, items: ItemRepository, lookup: ItemLookup) -> ItemService:
        """Hand it what items add to the memory use cases: their SQL and lookup secrets."""
        self._items = items
        self._lookup = lookup
        return self

    # -- writes ----------------------------------------------------------------------------

    def put(
        self, principal: Principal, user_id: str, purpose: str, body: ItemPut
    ) -> tuple[ItemPublic, bool]:
        """Create the item, or replace its value as a new version. Also whether it was new."""
        texts = [*body.namespace, body.key, *_strings(body.value)]
        gated = self._gate_write(principal, user_id, purpose, body.category, body.expires_at, texts)
        request, now, expires_at, key = gated.request, gated.now, gated.expires_at, gated.key
        lookup = lookup_hash(self._lookup.secret_for_write(key), body.namespace, body.key)
        named = {"namespace": body.namespace, "key": body.key, "value": body.value}
        content = item_content(body.value)
        for _ in range(_ATTEMPTS):
            row = self._items.find(user_id, lookup)
            if row is not None and row.expires_at <= now:
                self._purge_expired(request, row)
                row = None
            if row is None:
                created = self._create(request, key, lookup, content, named, expires_at, now)
                if created is not None:
                    return created, True
            else:
                replaced = self._replace(request, key, row, content, named, expires_at, now)
                if replaced is not None:
                    return replaced, False
        raise StorageUnavailable("The item kept changing while it was written: try again")

    def _purge_expired(self, request: AccessRequest, row: MemoryRow) -> None:
        """An expired item whose name is used again: purged first, recorded as the sweeper
        records its purges, so that the new item starts afresh."""
        self._auditor.record(
            request.principal,
            AuditAction.memory_purge,
            subject_user_id=row.user_id,
            memory_ids=[row.id],
            purpose=request.purpose,
            reason="expired",
            result_count=1,
        )
        self._shred(row.user_id, [row.id])

    def _create(
        self,
        request: AccessRequest,
        key: UserKey,
        lookup: str,
        content: str,
        named: dict[str, Any],
        expires_at: datetime,
        now: datetime,
    ) -> ItemPublic | None:
        """A new item, or None when another put of this name came first."""
        user_id = request.subject_user_id
        if self._memories.count(user_id) >= self._max_memories:
            raise self._quota_exceeded()
        memory_id = new_memory_id()
        item = new_item_key(key, memory_id, 1)
        row = MemoryRow(
            memory_id, user_id, request.category or "", key.key_id, b"", 1, now, now, expires_at
        )
        row = replace(row, lookup=lookup)
        row = replace(row, ciphertext=seal_payload(item, memory_binding(row), content, None, named))
        self._record_item_change(request, AuditAction.memory_write, [memory_id], key)
        self._keyring.store_item_keys(key, [item])
        if self._items.begin_insert(row, max_per_user=self._max_memories).result():
            return _public(row, content, named, None)
        self._keyring.drop_item_key(item)
        if self._items.find(user_id, lookup) is None:  # not a race: the quota filled
            self._guard.deny(request, AuditAction.memory_write, self._quota_exceeded(), [memory_id])
        return None

    def _replace(
        self,
        request: AccessRequest,
        key: UserKey,
        row: MemoryRow,
        content: str,
        named: dict[str, Any],
        expires_at: datetime,
        now: datetime,
    ) -> ItemPublic | None:
        """The item's next version (the current one kept in its history), or None when it
        changed meanwhile. The policy must allow writing over its current category too."""
        action = AuditAction.memory_update
        on_row = replace(request, category=row.category, expired=False)
        self._guard.check(on_row, action, [row.id])
        keys = self._item_keys(key, [row.id])
        content_now, source, named_now = open_row_item(keys, row)
        current_item = keys.get(row.id, row.version, row.ciphertext)
        if current_item is None:  # open_row_item raised already (for mypy)
            raise not_found()
        earlier = MemoryVersionRow(
            row.id,
            row.version,
            row.user_id,
            row.category,
            key.key_id,
            b"",
            row.expires_at,
            row.updated_at,
            now,
        )
        earlier = replace(
            earlier,
            ciphertext=seal_payload(
                current_item, earlier_binding(earlier), content_now, source, named_now
            ),
        )
        item = new_item_key(key, row.id, row.version + 1)
        new = replace(
            row,
            category=request.category or row.category,
            version=row.version + 1,
            updated_at=now,
            expires_at=expires_at,
        )
        new = replace(new, ciphertext=seal_payload(item, memory_binding(new), content, None, named))
        self._record_item_change(request, action, [row.id], key)
        self._keyring.store_item_keys(key, [item])
        if not self._memories.update(row, new, earlier):
            self._keyring.drop_item_key(item)
            return None
        return _public(new, content, named, None)

    def _record_item_change(
        self, request: AccessRequest, action: AuditAction, memory_ids: list[str], key: UserKey
    ) -> None:
        self._auditor.record(
            request.principal,
            action,
            subject_user_id=request.subject_user_id,
            subject_key=key,
            memory_ids=memory_ids,
            purpose=request.purpose,
            result_count=len(memory_ids),
        )

    def forget(self, principal: Principal, user_id: str, purpose: str, ref: ItemRef) -> Erasure:
        """Forget the item as any memory is forgotten: its keys, row and history go."""
        self._catalogue.purpose(purpose)
        request = AccessRequest(principal, Action.memory_delete, user_id, purpose)
        self._gate_role(request, AuditAction.memory_delete)
        row = self._find(user_id, ref)
        if row is None:
            self._guard.deny(request, AuditAction.memory_delete, not_found(), [])
        return self._forget_one(request, row.id)

    # -- reads -----------------------------------------------------------------------------

    def _find(self, user_id: str, ref: ItemRef) -> MemoryRow | None:
        secret = self._lookup.secret(self._read_key(user_id))
        if secret is None:  # no keyed item of theirs was ever stored (or they were forgotten)
            return None
        return self._items.find(user_id, lookup_hash(secret, ref.namespace, ref.key))

    def get(self, principal: Principal, user_id: str, purpose: str, ref: ItemRef) -> ItemPublic:
        """One item, if the purpose may use its category; recorded before it is opened."""
        self._catalogue.purpose(purpose)
        action = AuditAction.memory_read
        request = AccessRequest(principal, Action.memory_read, user_id, purpose)
        self._gate_role(request, action)
        found = self._find(user_id, ref)
        if found is None:
            self._guard.deny(request, action, not_found(), [])
        row = self._one(request, action, found.id, utc_now())
        key = self._read_key(user_id)
        self._record_read(request, action, key, [row.id])
        opened = self._open(key, [row])
        if not opened[0]:
            self._refuse_unreadable(request, action, [row.id])
            raise MemoryUnreadable(memory_id=row.id)
        _, content, named = opened[0][0]
        return _public(row, content, named, None)

    def _open(
        self, key: UserKey | None, rows: Sequence[MemoryRow]
    ) -> tuple[list[Opened], list[str]]:
        """The rows that open as keyed items, and the ids of those that do not."""
        keys = self._item_keys(key, [row.id for row in rows])
        opened, unreadable = [], []
        for row in rows:
            try:
                content, _, named = open_row_item(keys, row)
            except MemoryUnreadable:
                named = None
            if named is None:
                unreadable.append(row.id)
            else:
                opened.append((row, content, named))
        return opened, unreadable

    def _visible_items(
        self, principal: Principal, user_id: str, purpose: str, action: AuditAction
    ) -> tuple[AccessRequest, UserKey | None, list[Opened], list[str]]:
        """Every live item the purpose may use, opened to be matched (nothing of them leaves
        before the caller records the read)."""
        self._catalogue.purpose(purpose)
        request = AccessRequest(principal, Action.memory_read, user_id, purpose)
        self._gate_role(request, action)
        request = replace(request, facts=self._consents.facts(user_id))
        now = utc_now()
        rows = self._visible(request, self._items.live(user_id, now=now), now)
        key = self._read_key(user_id) if rows else None
        opened, unreadable = self._open(key, rows)
        return request, key, opened, unreadable

    def search(
        self, principal: Principal, user_id: str, purpose: str, query: ItemSearch
    ) -> ItemPage:
        """Items under a namespace prefix that match the filter: ranked by relevance to the
        query (BM25 over their text), else last changed first."""
        try:
            check_filter(query.filter or {})
        except UnknownOperator as unknown:
            raise InvalidRequest(
                f"Unknown filter operator {str(unknown)[:16]!r}; known: $eq $ne $gt $gte $lt $lte"
            ) from None
        action = AuditAction.memory_search
        request, key, opened, unreadable = self._visible_items(principal, user_id, purpose, action)
        found = [
            item
            for item in opened
            if _fits(item[2]["namespace"], query.namespace_prefix)
            and matches(item[2]["value"], query.filter or {})
        ]
        scores: list[float | None] = [None] * len(found)
        if query.query:
            ranked = sorted(
                zip(bm25(query.query, [text for _, text, _ in found]), found, strict=True),
                key=lambda pair: pair[0],
                reverse=True,  # stable: equal scores stay last changed first
            )
            scores = [score for score, _ in ranked]
            found = [item for _, item in ranked]
        window = slice(query.offset, query.offset + query.limit)
        page = [
            _public(row, text, named, score)
            for (row, text, named), score in zip(found[window], scores[window], strict=True)
        ]
        self._record_read(request, action, key, [item.id for item in page])
        self._refuse_unreadable(request, action, unreadable)
        return ItemPage(items=page)

    def namespaces(
        self, principal: Principal, user_id: str, purpose: str, query: NamespaceQuery
    ) -> NamespaceList:
        """The namespace paths of the items the purpose may use, matching the prefix and
        suffix, cut at `max_depth`, sorted. Recorded as a list of the items they name."""
        action = AuditAction.memory_list
        request, key, opened, unreadable = self._visible_items(principal, user_id, purpose, action)
        named: dict[tuple[str, ...], list[str]] = {}
        for row, _, item in opened:
            path = tuple(item["namespace"])
            if query.prefix is not None and not _fits(path, query.prefix):
                continue
            if query.suffix is not None and not _fits(path, query.suffix, suffix=True):
                continue
            if query.max_depth is not None:
                path = path[: query.max_depth]
            named.setdefault(path, []).append(row.id)
        chosen = sorted(named)[query.offset : query.offset + query.limit]
        self._record_read(request, action, key, [i for path in chosen for i in named[path]])
        self._refuse_unreadable(request, action, unreadable)
        return NamespaceList(namespaces=[list(path) for path in chosen])

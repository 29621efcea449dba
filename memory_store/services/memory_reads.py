"""Reading memories: the assistant's list, get and context for a purpose, and a user's own
list, get, history and export. Each read is recorded before anything is disclosed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from memory_store.clock import utc_now
from memory_store.domain import SELF_SERVICE, AuditAction, Principal
from memory_store.errors import InvalidCursor, MemoryUnreadable
from memory_store.keys.envelope import UserKey
from memory_store.policy import AccessRequest, Action
from memory_store.schemas import (
    ContextItem,
    ContextResult,
    MemoryPage,
    MemoryPublic,
    MemoryVersionPublic,
)
from memory_store.services.cursors import Cursors
from memory_store.services.memory_access import (
    Disclosure,
    MemoryAccess,
    open_row,
    open_row_item,
    public,
    reveal,
    reveal_each,
    reveal_versions,
)
from memory_store.services.recall import Recall, RowsOf
from memory_store.storage.memories import MemoryHead, MemoryRow, MemoryVersionRow, Position

_SCAN_BATCH = 200  # rows decrypted per step while searching

# A memory as its user's export holds it: with its history, and a keyed item's name and value.
Exported = tuple[MemoryPublic, list[MemoryVersionPublic], dict[str, Any] | None]


@dataclass(frozen=True)
class ListQuery:
    category: str | None = None
    q: str | None = None
    limit: int = 20
    cursor: str | None = None


def _position_cursor(cursors: Cursors, position: Position) -> str:
    return cursors.encode({"t": position.created_at.isoformat(), "i": position.memory_id})


def _cursor_position(cursors: Cursors, cursor: str) -> Position:
    document = cursors.decode(cursor)
    try:
        created_at = datetime.fromisoformat(document["t"])
        memory_id = document["i"]
        if created_at.tzinfo is None or not isinstance(memory_id, str) or len(memory_id) > 64:
            raise ValueError
        # In UTC, as the database compares it: a time at the ends of the calendar with an
        # offset that carries it past them (0001-01-01T00:00+05:00) is no position.
        created_at = created_at.astimezone(UTC)
    except (KeyError, TypeError, ValueError, OverflowError):
        raise InvalidCursor() from None
    return Position(created_at, memory_id)


def _matches(content: str, terms: list[str]) -> bool:
    folded = content.casefold()
    return all(term in folded for term in terms)


class MemoryReads(MemoryAccess):
    _recall: Recall  # set by MemoryService

    def list_for_purpose(
        self, principal: Principal, user_id: str, purpose: str, query: ListQuery
    ) -> MemoryPage:
        """The assistant's list: only categories the purpose may use."""
        self._catalogue.purpose(purpose)
        return self._list(principal, user_id, purpose, query)

    def get_for_purpose(
        self, principal: Principal, user_id: str, memory_id: str, purpose: str
    ) -> MemoryPublic:
        self._catalogue.purpose(purpose)
        return self._get(principal, user_id, memory_id, purpose)

    def list_own(self, principal: Principal, query: ListQuery) -> MemoryPage:
        return self._list(principal, principal.user_id or "", SELF_SERVICE, query)

    def get_own(self, principal: Principal, memory_id: str) -> MemoryPublic:
        return self._get(principal, principal.user_id or "", memory_id, SELF_SERVICE)

    def context(
        self,
        principal: Principal,
        user_id: str,
        purpose: str,
        *,
        q: str | None,
        limit: int,
        max_chars: int,
    ) -> ContextResult:
        """The memories most relevant to `q` (services/recall.py: words and meaning, over
        the memories the purpose may use, and only those), best first, as many as fit in
        `max_chars`; the most recent without `q`, or when nothing is relevant (then said
        so). Only the chosen ones are decrypted for the answer, after their read is
        recorded."""
        self._catalogue.purpose(purpose)
        action = AuditAction.memory_context
        request = AccessRequest(principal, Action.memory_read, user_id, purpose)
        self._gate_role(request, action)
        question = self._recall.question(q)  # embedded while the rows are read
        request = replace(request, facts=self._consents.facts(user_id))
        now = utc_now()
        # Consent, purpose and retention decide first: ranking sees only what they allow.
        heads = self._visible(request, self._memories.heads(user_id, now=now), now)
        key = self._read_key(user_id) if heads else None
        ranking = self._recall.rank(
            key, heads, q or "", self._rows_of(user_id), self._item_keys, question
        )
        lengths = {memory_id: entry.length for memory_id, entry in ranking.entries.items()}
        candidates = [(hit.head, round(hit.ranked.score, 4)) for hit in ranking.hits]
        match: Literal["relevant", "none"] | None = None
        if q:
            match = "relevant" if candidates else "none"
        if not candidates:  # newest first
            candidates = [(head, 0.0) for head in heads if head.id in lengths]
        chosen: list[MemoryHead] = []
        scores: dict[str, float] = {}
        used, truncated = 0, False
        for head, score in candidates:
            if len(chosen) == limit:
                truncated = True
                break
            if used + lengths[head.id] > max_chars:
                truncated = True
                continue  # a shorter one further down may still fit
            chosen.append(head)
            scores[head.id] = score
            used += lengths[head.id]
        rows = self._rows_for(request, chosen, now)
        ids = [row.id for row in rows]
        self._record_read(request, action, key, ids)
        memories, unreadable = reveal_each(self._item_keys(key, ids), rows)
        self._refuse_unreadable(request, action, ranking.unreadable + unreadable)
        items = [ContextItem(**m.model_dump(), score=scores[m.id]) for m in memories]
        return ContextResult(
            items=items,
            total_chars=sum(len(item.content) for item in items),
            truncated=truncated,
            match=match,
            fallback="recent" if match == "none" and items else None,
            unindexed=ranking.unindexed if q else 0,
        )

    def history_own(self, principal: Principal, memory_id: str) -> list[MemoryVersionPublic]:
        """The earlier versions of one of the user's memories, newest first."""
        user_id = principal.user_id or ""
        action = AuditAction.memory_history
        request = AccessRequest(principal, Action.memory_read, user_id, SELF_SERVICE)
        row = self._one(request, action, memory_id, utc_now())
        versions = self._memories.versions(user_id, memory_id)
        key = self._read_key(user_id)
        self._record_read(request, action, key, [row.id] if versions else [])
        items, unreadable = reveal_versions(self._item_keys(key, [row.id]), versions)
        self._refuse_unreadable(request, action, list(dict.fromkeys(unreadable)))
        return items

    def export_own(self, principal: Principal) -> list[Exported]:
        """Every live memory of the user with its history (and a keyed item's name and
        value), decrypted, for their export."""
        user_id = principal.user_id or ""
        action = AuditAction.memory_export
        request = AccessRequest(principal, Action.memory_export, user_id, SELF_SERVICE)
        self._gate_role(request, action)
        now = utc_now()
        rows = self._memories.live(user_id, now=now)
        versions: dict[str, list[MemoryVersionRow]] = {}
        for version in self._memories.all_versions(user_id):
            versions.setdefault(version.memory_id, []).append(version)
        key = self._read_key(user_id)
        self._record_read(request, action, key, [row.id for row in rows])
        keys = self._item_keys(key, None)
        exported: list[Exported] = []
        refused: list[str] = []
        for row in rows:
            try:
                content, source, item = open_row_item(keys, row)
            except MemoryUnreadable:
                refused.append(row.id)
                continue
            history, unreadable = reveal_versions(keys, versions.get(row.id, []))
            refused += list(dict.fromkeys(unreadable))
            exported.append((public(row, content, source), history, item))
        self._refuse_unreadable(request, action, refused)
        return exported

    def _get(
        self, principal: Principal, user_id: str, memory_id: str, purpose: str
    ) -> MemoryPublic:
        return self._begin_get(principal, user_id, memory_id, purpose).wait()

    def begin_get_for_purpose(
        self, principal: Principal, user_id: str, memory_id: str, purpose: str
    ) -> Disclosure[MemoryPublic]:
        """`get_for_purpose` in two steps (see `begin_list_for_purpose`)."""
        self._catalogue.purpose(purpose)
        return self._begin_get(principal, user_id, memory_id, purpose)

    def begin_get_own(self, principal: Principal, memory_id: str) -> Disclosure[MemoryPublic]:
        """`get_own` in two steps (see `begin_list_for_purpose`)."""
        return self._begin_get(principal, principal.user_id or "", memory_id, SELF_SERVICE)

    def _begin_get(
        self, principal: Principal, user_id: str, memory_id: str, purpose: str
    ) -> Disclosure[MemoryPublic]:
        action = AuditAction.memory_read
        request = AccessRequest(principal, Action.memory_read, user_id, purpose)
        row = self._one(request, action, memory_id, utc_now())
        key = self._read_key(user_id)
        pending = self._begin_record_read(request, action, key, [row.id])
        # One memory asked for by id: unreadable is a 410.
        return Disclosure(pending, lambda: reveal(self._item_keys(key, [row.id]), row))

    def _list(
        self, principal: Principal, user_id: str, purpose: str, query: ListQuery
    ) -> MemoryPage:
        return self._begin_list(principal, user_id, purpose, query).wait()

    def begin_list_for_purpose(
        self, principal: Principal, user_id: str, purpose: str, query: ListQuery
    ) -> Disclosure[MemoryPage]:
        """`list_for_purpose` in two steps, for a caller on the event loop: up to the read's
        record (short indexed reads) now; the contents once the record is committed."""
        self._catalogue.purpose(purpose)
        return self._begin_list(principal, user_id, purpose, query)

    def begin_list_own(self, principal: Principal, query: ListQuery) -> Disclosure[MemoryPage]:
        """`list_own` in two steps (see `begin_list_for_purpose`)."""
        return self._begin_list(principal, principal.user_id or "", SELF_SERVICE, query)

    def _begin_list(
        self, principal: Principal, user_id: str, purpose: str, query: ListQuery
    ) -> Disclosure[MemoryPage]:
        if query.category is not None:
            self._catalogue.category(query.category)
        after = _cursor_position(self._cursors, query.cursor) if query.cursor else None
        action = AuditAction.memory_search if query.q else AuditAction.memory_list
        request = AccessRequest(principal, Action.memory_read, user_id, purpose)
        self._gate_role(request, action)
        request = replace(request, facts=self._consents.facts(user_id))
        wanted = [query.category] if query.category else list(self._catalogue.categories)
        categories = self._policy.allowed_categories(request, wanted)
        terms = query.q.casefold().split() if query.q else []
        now = utc_now()
        if categories and terms:  # decrypted to match: done now, in the caller's thread
            key = self._read_key(user_id)
            found, more, unreadable = self._search(
                request=request,
                key=key,
                now=now,
                categories=categories,
                after=after,
                terms=terms,
                limit=query.limit,
            )
            if after is None and not found and query.q:
                # No memory holds the words: the memories that answer the query by meaning
                # (recall), best first, on one page.
                related, refused = self._related(
                    request, key, now, categories, query.q, [m.id for m in found]
                )
                found += related[: query.limit - len(found)]
                unreadable += refused
            self._record_read(request, action, key, [memory.id for memory in found])
            self._refuse_unreadable(request, action, unreadable)
            return Disclosure.done(self._page(found, more))
        rows: Sequence[MemoryRow] = []
        more = False
        if categories:
            page = self._memories.page(
                user_id, now=now, limit=query.limit + 1, categories=categories, after=after
            )
            rows, more = self._visible(request, page[: query.limit], now), len(page) > query.limit
        # Nothing the purpose may use is an empty answer, still on the record.
        return self._begin_disclose(request, action, rows, lambda items: self._page(items, more))

    def _related(
        self,
        request: AccessRequest,
        key: UserKey | None,
        now: datetime,
        categories: list[str],
        q: str,
        found: list[str],
    ) -> tuple[list[MemoryPublic], list[str]]:
        """The memories of `categories` relevant to `q` (services/recall.py) other than
        those `found` already, best first, opened (not disclosed: the caller records the
        read first); and the ids of rows that would not open."""
        allowed = set(categories)
        user_id = request.subject_user_id
        live = self._memories.heads(user_id, now=now)
        heads = self._visible(request, [head for head in live if head.category in allowed], now)
        ranking = self._recall.rank(key, heads, q, self._rows_of(user_id), self._item_keys)
        chosen = [hit.head for hit in ranking.hits if hit.head.id not in set(found)]
        rows = [row for row in self._rows_for(request, chosen, now) if row.category in allowed]
        opened, unreadable = reveal_each(self._item_keys(key, [row.id for row in rows]), rows)
        return opened, ranking.unreadable + unreadable

    def _rows_of(self, user_id: str) -> RowsOf:
        return lambda memory_ids: self._memories.some(user_id, memory_ids)

    def _rows_for(
        self, request: AccessRequest, heads: Sequence[MemoryHead], now: datetime
    ) -> list[MemoryRow]:
        """The rows of the memories ranking chose, in its order: each still at the version
        ranked and still allowed (a memory edited or recategorised since is left out)."""
        versions = {head.id: head.version for head in heads}
        found = {
            row.id: row
            for row in self._memories.some(request.subject_user_id, list(versions))
            if row.version == versions[row.id]
        }
        rows = [found[head.id] for head in heads if head.id in found]
        return self._visible(request, rows, now)

    def _page(self, items: list[MemoryPublic], more: bool) -> MemoryPage:
        next_cursor = (
            _position_cursor(self._cursors, Position(items[-1].created_at, items[-1].id))
            if more and items
            else None
        )
        return MemoryPage(items=items, next_cursor=next_cursor)

    def _search(
        self,
        *,
        request: AccessRequest,
        key: UserKey | None,
        now: datetime,
        categories: list[str],
        after: Position | None,
        terms: list[str],
        limit: int,
    ) -> tuple[list[MemoryPublic], bool, list[str]]:
        """Keyword search: decrypt the user's memories batch by batch and keep the matches
        (and the ids of rows that would not open). Contents are encrypted, so the database
        cannot search them. Nothing found here leaves the service until the caller has
        recorded the read."""
        found: list[MemoryPublic] = []
        unreadable: list[str] = []
        while True:
            rows = self._memories.page(
                request.subject_user_id,
                now=now,
                limit=_SCAN_BATCH,
                categories=categories,
                after=after,
            )
            visible = self._visible(request, rows, now)
            keys = self._item_keys(key, [row.id for row in visible])
            for row in visible:
                try:
                    content, source = open_row(keys, row)
                except MemoryUnreadable:
                    unreadable.append(row.id)
                    continue
                if _matches(content, terms):
                    if len(found) == limit:
                        return found, True, unreadable
                    found.append(public(row, content, source))
            if len(rows) < _SCAN_BATCH:
                return found, False, unreadable
            after = Position(rows[-1].created_at, rows[-1].id)

"""The use cases. Each runs in the same order: validate -> policy -> repository -> crypto.

This is the only module that decrypts, and it does so in one place (`_disclose`), after the
policy has allowed the read.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NoReturn

from memory_store.auditing import Auditor
from memory_store.auth import Principal
from memory_store.catalogue import Catalogue
from memory_store.clock import utc_now
from memory_store.crypto import UserKey, open_sealed, seal
from memory_store.cursors import decode_cursor, encode_cursor
from memory_store.errors import (
    DecryptionError,
    InvalidCursor,
    InvalidRequest,
    KeysUnavailable,
    MemoryUnreadable,
    NotFound,
    PreconditionFailed,
    Problem,
    QuotaExceeded,
)
from memory_store.keystore import DataKeyring
from memory_store.models import MemoryVersion
from memory_store.policy import SELF_SERVICE, AccessRequest, Action, Policy
from memory_store.ranking import bm25
from memory_store.repository import ConsentRepository, MemoryRepository, MemoryRow, Position
from memory_store.schemas import (
    ContextItem,
    ContextResult,
    MemoryCreate,
    MemoryPage,
    MemoryPublic,
    MemoryUpdate,
    MemoryVersionPublic,
)
from memory_store.secret_guard import refuse_secrets

_SCAN_BATCH = 200  # rows decrypted per step while searching


@dataclass(frozen=True)
class ListQuery:
    category: str | None = None
    q: str | None = None
    limit: int = 20
    cursor: str | None = None


def new_memory_id() -> str:
    """Random and opaque, so ids invite no enumeration."""
    return "mem_" + secrets.token_urlsafe(16)


def _position_cursor(position: Position) -> str:
    return encode_cursor({"t": position.created_at.isoformat(), "i": position.memory_id})


def _cursor_position(cursor: str) -> Position:
    document = decode_cursor(cursor)
    try:
        created_at = datetime.fromisoformat(document["t"])
        memory_id = document["i"]
    except (KeyError, TypeError, ValueError):
        raise InvalidCursor() from None
    if created_at.tzinfo is None or not isinstance(memory_id, str):
        raise InvalidCursor()
    return Position(created_at, memory_id)


def _matches(content: str, terms: list[str]) -> bool:
    folded = content.casefold()
    return all(term in folded for term in terms)


class MemoryService:
    """Writes and reads of memories. Every decision is the policy's; every allowed or denied
    access is audited; contents are decrypted only after the read's record is committed
    (a search decrypts to match, and answers only after its record is committed)."""

    def __init__(
        self,
        memories: MemoryRepository,
        consents: ConsentRepository,
        keyring: DataKeyring,
        policy: Policy,
        catalogue: Catalogue,
        auditor: Auditor,
        *,
        max_memories_per_user: int = 10_000,
    ) -> None:
        self._max_memories = max_memories_per_user
        self._memories = memories
        self._consents = consents
        self._keyring = keyring
        self._policy = policy
        self._catalogue = catalogue
        self._auditor = auditor

    # -- decisions, each denial audited --------------------------------------------------------

    def _deny(
        self, request: AccessRequest, action: str, problem: Problem, memory_ids: Sequence[str] = ()
    ) -> NoReturn:
        self._auditor.denied(
            request.principal,
            action,
            problem,
            subject_user_id=request.subject_user_id,
            purpose=request.purpose,
            memory_ids=memory_ids,
        )
        raise problem

    def _gate(self, request: AccessRequest, action: str, memory_ids: Sequence[str] = ()) -> None:
        try:
            self._policy.check(request)
        except Problem as problem:
            self._deny(request, action, problem, memory_ids)

    def _gate_role(self, request: AccessRequest, action: str) -> None:
        try:
            self._policy.check_role(request, list(self._catalogue.categories))
        except Problem as problem:
            self._deny(request, action, problem)

    def _one(self, request: AccessRequest, action: str, memory_id: str, now: datetime) -> MemoryRow:
        """The memory a request names, once the policy allows the request on it (its role,
        then its category, expiry and the user's consent); every refusal audited."""
        self._gate_role(request, action)
        row = self._memories.get(request.subject_user_id, memory_id)
        if row is None:
            self._deny(request, action, _not_found(), [memory_id])
        facts = self._consents.facts(request.subject_user_id)
        self._gate(_for_row(replace(request, facts=facts), row, now), action, [row.id])
        return row

    # -- writes ---------------------------------------------------------------------------

    def write(
        self, principal: Principal, user_id: str, purpose: str, body: MemoryCreate
    ) -> MemoryPublic:
        self._catalogue.purpose(purpose)
        category = self._catalogue.category(body.category)
        refuse_secrets(body.content, body.source)
        request = AccessRequest(
            principal,
            Action.memory_write,
            user_id,
            purpose,
            category.name,
            facts=self._consents.facts(user_id),
        )
        self._gate(request, "memory.write")
        now = utc_now()
        limit = now + category.retention
        expires_at = body.expires_at if body.expires_at is not None else limit
        if expires_at <= now:
            raise InvalidRequest("expires_at must be in the future")
        if expires_at > limit:
            raise InvalidRequest(
                f"expires_at is later than the retention limit of category '{category.name}' "
                f"({category.retention.days} days)",
                latest_allowed=limit.isoformat(),
            )
        if self._memories.count(user_id) >= self._max_memories:
            raise self._quota_exceeded()
        try:
            key = self._keyring.key_for_write(user_id)
        except DecryptionError:
            raise KeysUnavailable("This user's data key cannot be opened") from None
        memory_id = new_memory_id()
        payload = json.dumps({"content": body.content, "source": body.source}).encode()
        row = MemoryRow(
            id=memory_id,
            user_id=user_id,
            category=category.name,
            key_id=key.key_id,
            ciphertext=seal(key, payload, memory_id),
            version=1,
            created_at=now,
            updated_at=now,
            expires_at=expires_at,
        )
        # Audited before it is stored: nothing changes without its record.
        self._auditor.record(
            principal,
            "memory.write",
            subject_user_id=user_id,
            subject_key=key,
            memory_ids=[memory_id],
            purpose=purpose,
            result_count=1,
        )
        if not self._memories.insert(row, max_per_user=self._max_memories):
            # Concurrent writes filled the quota after the check above: the insert, which
            # counts again under the write lock, stored nothing. Recorded as refused.
            self._deny(request, "memory.write", self._quota_exceeded(), [memory_id])
        return _public(row, body.content, body.source)

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
        request = AccessRequest(principal, Action.memory_update, user_id, SELF_SERVICE)
        now = utc_now()
        row = self._one(request, "memory.update", memory_id, now)
        if if_match is not None and if_match != row.version:
            raise PreconditionFailed(
                f"The memory is at version {row.version}, not {if_match}: read it again",
                current_version=row.version,
            )
        category = self._catalogue.category(patch.category or row.category)
        refuse_secrets(patch.content)
        key = self._read_key(user_id)
        current = _reveal(key, row)
        if key is None:  # _reveal raised already; this is for the type checker
            raise _not_found()
        latest = min(row.expires_at, row.created_at + category.retention)
        expires_at = patch.expires_at if patch.expires_at is not None else latest
        if expires_at <= now:
            raise InvalidRequest("expires_at must be in the future; to forget now, delete it")
        if expires_at > latest:
            raise InvalidRequest(
                "expires_at may only be brought forward, and never past the category's limit",
                latest_allowed=latest.isoformat(),
            )
        content = patch.content if patch.content is not None else current.content
        payload = json.dumps({"content": content, "source": current.source}).encode()
        earlier = MemoryVersion(
            memory_id=row.id,
            version=row.version,
            user_id=user_id,
            category=row.category,
            key_id=key.key_id,
            ciphertext=seal(
                key,
                json.dumps({"content": current.content, "source": current.source}).encode(),
                _version_binding(row.id, row.version),
            ),
            expires_at=row.expires_at,
            valid_from=row.updated_at,
            valid_until=now,
        )
        self._auditor.record(
            principal,
            "memory.update",
            subject_user_id=user_id,
            subject_key=key,
            memory_ids=[row.id],
            purpose=SELF_SERVICE,
            reason=",".join(sorted(patch.model_fields_set)),
            result_count=1,
        )
        updated = self._memories.update(
            user_id,
            row.id,
            expected_version=row.version,
            changes={
                "category": category.name,
                "ciphertext": seal(key, payload, row.id),
                "expires_at": expires_at,
                "updated_at": now,
            },
            earlier=earlier,
        )
        if updated is None:  # changed or deleted between our read and our write
            raise PreconditionFailed("The memory changed meanwhile: read it again")
        return _public(updated, content, current.source)

    def history_own(self, principal: Principal, memory_id: str) -> list[MemoryVersionPublic]:
        """The earlier versions of one of the user's memories, newest first."""
        user_id = principal.user_id or ""
        request = AccessRequest(principal, Action.memory_read, user_id, SELF_SERVICE)
        row = self._one(request, "memory.history", memory_id, utc_now())
        versions = self._memories.versions(user_id, memory_id)
        key = self._read_key(user_id)
        self._record_read(request, "memory.history", key, [row.id] if versions else [])
        return [_reveal_version(key, version) for version in versions]

    def delete_own(self, principal: Principal, memory_id: str) -> None:
        """Forget one memory: its row and its history are deleted for good."""
        user_id = principal.user_id or ""
        request = AccessRequest(principal, Action.memory_delete, user_id, SELF_SERVICE)
        row = self._one(request, "memory.delete", memory_id, utc_now())
        self._record_change(request, "memory.delete", [row.id])
        self._memories.delete(user_id, [row.id])

    def forget_for_purpose(
        self, principal: Principal, user_id: str, memory_id: str, purpose: str
    ) -> None:
        """The assistant forgets one memory on the user's behalf: row and history go."""
        self._catalogue.purpose(purpose)
        request = AccessRequest(principal, Action.memory_delete, user_id, purpose)
        row = self._one(request, "memory.delete", memory_id, utc_now())
        self._record_change(request, "memory.delete", [row.id])
        self._memories.delete(user_id, [row.id])

    def delete_category_own(self, principal: Principal, category: str) -> int:
        """Forget every memory of one category (and their history). Returns how many."""
        self._catalogue.category(category)
        user_id = principal.user_id or ""
        request = AccessRequest(principal, Action.memory_delete, user_id, SELF_SERVICE, category)
        self._gate(request, "memory.delete")
        ids = self._memories.ids_in_category(user_id, category)
        self._record_change(request, "memory.delete", ids)
        return self._memories.delete(user_id, ids)

    def export_own(
        self, principal: Principal
    ) -> list[tuple[MemoryPublic, list[MemoryVersionPublic]]]:
        """Every live memory of the user with its history, decrypted, for their export."""
        user_id = principal.user_id or ""
        request = AccessRequest(principal, Action.memory_export, user_id, SELF_SERVICE)
        self._gate_role(request, "memory.export")
        now = utc_now()
        rows = self._memories.live(user_id, now=now)
        versions: dict[str, list[MemoryVersion]] = {}
        for version in self._memories.all_versions(user_id):
            versions.setdefault(version.memory_id, []).append(version)
        key = self._read_key(user_id)
        self._record_read(request, "memory.export", key, [row.id for row in rows])
        return [
            (_reveal(key, row), [_reveal_version(key, v) for v in versions.get(row.id, [])])
            for row in rows
        ]

    def _record_change(self, request: AccessRequest, action: str, memory_ids: list[str]) -> None:
        self._auditor.record(
            request.principal,
            action,
            subject_user_id=request.subject_user_id,
            memory_ids=memory_ids,
            purpose=request.purpose,
            result_count=len(memory_ids),
        )

    # -- reads ----------------------------------------------------------------------------

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
        """The memories most relevant to `q` (BM25 over the memories the purpose may use;
        the most recent without `q`), best first, as many as fit in `max_chars`. Ranking
        needs the contents, so they are decrypted to rank; only the chosen ones are answered,
        after their read is recorded."""
        self._catalogue.purpose(purpose)
        request = AccessRequest(principal, Action.memory_read, user_id, purpose)
        self._gate_role(request, "memory.context")
        request = replace(request, facts=self._consents.facts(user_id))
        now = utc_now()
        rows = self._visible(request, self._memories.live(user_id, now=now), now)
        key = self._read_key(user_id) if rows else None
        memories = [_reveal(key, row) for row in rows]  # newest first
        scores = bm25(q, [m.content for m in memories]) if q else [0.0] * len(memories)
        ranked = sorted(
            zip(scores, memories, strict=True),
            key=lambda pair: pair[0],
            reverse=True,  # stable: equal scores stay newest first
        )
        chosen: list[ContextItem] = []
        used, truncated = 0, False
        for score, memory in ranked:
            if q and score <= 0:
                break
            if len(chosen) == limit:
                truncated = True
                break
            if used + len(memory.content) > max_chars:
                truncated = True
                continue  # a shorter one further down may still fit
            chosen.append(ContextItem(**memory.model_dump(), score=round(score, 4)))
            used += len(memory.content)
        self._record_read(request, "memory.context", key, [item.id for item in chosen])
        return ContextResult(items=chosen, total_chars=used, truncated=truncated)

    def list_own(self, principal: Principal, query: ListQuery) -> MemoryPage:
        return self._list(principal, principal.user_id or "", SELF_SERVICE, query)

    def get_own(self, principal: Principal, memory_id: str) -> MemoryPublic:
        return self._get(principal, principal.user_id or "", memory_id, SELF_SERVICE)

    def _get(
        self, principal: Principal, user_id: str, memory_id: str, purpose: str
    ) -> MemoryPublic:
        request = AccessRequest(principal, Action.memory_read, user_id, purpose)
        row = self._one(request, "memory.read", memory_id, utc_now())
        return self._disclose(request, "memory.read", [row])[0]

    def _list(
        self, principal: Principal, user_id: str, purpose: str, query: ListQuery
    ) -> MemoryPage:
        if query.category is not None:
            self._catalogue.category(query.category)
        after = _cursor_position(query.cursor) if query.cursor else None
        action = "memory.search" if query.q else "memory.list"
        request = AccessRequest(principal, Action.memory_read, user_id, purpose)
        self._gate_role(request, action)
        request = replace(request, facts=self._consents.facts(user_id))
        wanted = [query.category] if query.category else list(self._catalogue.categories)
        categories = self._policy.allowed_categories(request, wanted)
        terms = query.q.casefold().split() if query.q else []
        now = utc_now()
        rows: Sequence[MemoryRow] = []
        more = False
        if categories and not terms:
            page = self._memories.page(
                user_id, now=now, limit=query.limit + 1, categories=categories, after=after
            )
            rows, more = self._visible(request, page[: query.limit], now), len(page) > query.limit
            items = self._disclose(request, action, rows)
        elif categories:
            key = self._read_key(user_id)
            found, more = self._search(
                request=request,
                key=key,
                now=now,
                categories=categories,
                after=after,
                terms=terms,
                limit=query.limit,
            )
            self._record_read(request, action, key, [memory.id for memory in found])
            items = found
        else:  # nothing the purpose may use: an empty answer, still on the record
            items = self._disclose(request, action, [])
        next_cursor = (
            _position_cursor(Position(items[-1].created_at, items[-1].id))
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
    ) -> tuple[list[MemoryPublic], bool]:
        """Keyword search: decrypt the user's memories batch by batch and keep the matches.
        Contents are encrypted, so the database cannot search them. Nothing found here
        leaves the service until the caller has recorded the read."""
        found: list[MemoryPublic] = []
        while True:
            rows = self._memories.page(
                request.subject_user_id,
                now=now,
                limit=_SCAN_BATCH,
                categories=categories,
                after=after,
            )
            for row in self._visible(request, rows, now):
                content, source = _open(key, row)
                if _matches(content, terms):
                    if len(found) == limit:
                        return found, True
                    found.append(_public(row, content, source))
            if len(rows) < _SCAN_BATCH:
                return found, False
            after = Position(rows[-1].created_at, rows[-1].id)

    # -- the one place contents are disclosed -----------------------------------------------

    def _visible(
        self, request: AccessRequest, rows: Sequence[MemoryRow], now: datetime
    ) -> list[MemoryRow]:
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

    def _record_read(
        self, request: AccessRequest, action: str, key: UserKey | None, memory_ids: list[str]
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

    def _disclose(
        self, request: AccessRequest, action: str, rows: Sequence[MemoryRow]
    ) -> list[MemoryPublic]:
        """Record the read, and only once it is committed, decrypt: one key for all rows."""
        key = self._read_key(request.subject_user_id) if rows else None
        self._record_read(request, action, key, [row.id for row in rows])
        return [_reveal(key, row) for row in rows]


def _for_row(request: AccessRequest, row: MemoryRow, now: datetime) -> AccessRequest:
    return replace(request, category=row.category, expired=row.expires_at <= now)


def _open(key: UserKey | None, row: MemoryRow) -> tuple[str, str | None]:
    """(content, source) of a row, or one opaque MemoryUnreadable."""
    try:
        if key is None or row.key_id != key.key_id:
            raise DecryptionError
        payload = json.loads(open_sealed(key, row.ciphertext, row.id).decode())
        return payload["content"], payload.get("source")
    except (DecryptionError, ValueError, KeyError, TypeError):
        raise MemoryUnreadable(
            "This memory cannot be decrypted: it was altered, moved, or its key destroyed",
            memory_id=row.id,
        ) from None


def _reveal(key: UserKey | None, row: MemoryRow) -> MemoryPublic:
    return _public(row, *_open(key, row))


def _version_binding(memory_id: str, version: int) -> str:
    """What an earlier version's ciphertext is bound to in place of the memory id alone."""
    return f"{memory_id}#v{version}"


def _reveal_version(key: UserKey | None, row: MemoryVersion) -> MemoryVersionPublic:
    try:
        if key is None or row.key_id != key.key_id:
            raise DecryptionError
        binding = _version_binding(row.memory_id, row.version)
        payload = json.loads(open_sealed(key, row.ciphertext, binding))
    except (DecryptionError, ValueError):
        raise MemoryUnreadable(
            "An earlier version of this memory cannot be decrypted",
            memory_id=row.memory_id,
        ) from None
    return MemoryVersionPublic(
        version=row.version,
        category=row.category,
        content=payload["content"],
        source=payload.get("source"),
        expires_at=row.expires_at,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
    )


def _public(row: MemoryRow, content: str, source: str | None) -> MemoryPublic:
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


def _not_found() -> NotFound:
    return NotFound("No such memory")

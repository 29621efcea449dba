"""The use cases. Each runs in the same order: validate -> policy -> repository -> crypto.

This is the only module that decrypts, and it does so in one place (`_disclose`), after the
policy has allowed the read.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from memory_store.auth import Principal
from memory_store.catalogue import Catalogue
from memory_store.clock import utc_now
from memory_store.crypto import UserKey, open_sealed, seal
from memory_store.errors import (
    DecryptionError,
    InvalidCursor,
    InvalidRequest,
    MemoryUnreadable,
    NotFound,
)
from memory_store.keystore import DataKeyring
from memory_store.models import Memory
from memory_store.policy import SELF_SERVICE, AccessRequest, Action, Policy
from memory_store.repository import MemoryRepository, Position
from memory_store.schemas import MemoryCreate, MemoryPage, MemoryPublic

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


def encode_cursor(position: Position) -> str:
    raw = json.dumps({"t": position.created_at.isoformat(), "i": position.memory_id})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = json.loads(raw)
        created_at = datetime.fromisoformat(document["t"])
        memory_id = document["i"]
        if created_at.tzinfo is None or not isinstance(memory_id, str):
            raise ValueError("bad cursor")
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidCursor() from None
    return Position(created_at, memory_id)


def _matches(content: str, terms: list[str]) -> bool:
    folded = content.casefold()
    return all(term in folded for term in terms)


class MemoryService:
    def __init__(
        self,
        memories: MemoryRepository,
        keyring: DataKeyring,
        policy: Policy,
        catalogue: Catalogue,
    ) -> None:
        self._memories = memories
        self._keyring = keyring
        self._policy = policy
        self._catalogue = catalogue

    # -- writes ---------------------------------------------------------------------------

    def write(
        self, principal: Principal, user_id: str, purpose: str, body: MemoryCreate
    ) -> MemoryPublic:
        self._catalogue.purpose(purpose)
        category = self._catalogue.category(body.category)
        self._policy.check(
            AccessRequest(principal, Action.memory_write, user_id, purpose, category.name)
        )
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
        key = self._keyring.key_for_write(user_id)
        memory_id = new_memory_id()
        payload = json.dumps({"content": body.content, "source": body.source}).encode()
        row = Memory(
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
        self._memories.insert(row)
        return _public(row, body.content, body.source)

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

    def list_own(self, principal: Principal, query: ListQuery) -> MemoryPage:
        return self._list(principal, principal.user_id or "", SELF_SERVICE, query)

    def get_own(self, principal: Principal, memory_id: str) -> MemoryPublic:
        return self._get(principal, principal.user_id or "", memory_id, SELF_SERVICE)

    def _get(
        self, principal: Principal, user_id: str, memory_id: str, purpose: str
    ) -> MemoryPublic:
        self._policy.check(AccessRequest(principal, Action.memory_read, user_id, purpose))
        row = self._memories.get(user_id, memory_id, now=utc_now())
        if row is None:
            raise _not_found()
        self._policy.check(
            AccessRequest(principal, Action.memory_read, user_id, purpose, row.category)
        )
        return self._disclose(user_id, [row])[0]

    def _list(
        self, principal: Principal, user_id: str, purpose: str, query: ListQuery
    ) -> MemoryPage:
        if query.category is not None:
            self._catalogue.category(query.category)
        after = decode_cursor(query.cursor) if query.cursor else None
        self._policy.check(AccessRequest(principal, Action.memory_read, user_id, purpose))
        categories = [
            name
            for name in self._catalogue.categories
            if (query.category is None or name == query.category)
            and self._policy.allows(
                AccessRequest(principal, Action.memory_read, user_id, purpose, name)
            )
        ]
        if not categories:
            return MemoryPage(items=[], next_cursor=None)
        terms = query.q.casefold().split() if query.q else []
        now = utc_now()
        if not terms:
            rows = self._memories.page(
                user_id, now=now, limit=query.limit + 1, categories=categories, after=after
            )
            items = self._disclose(user_id, rows[: query.limit])
            more = len(rows) > query.limit
        else:
            items, more = self._search(
                user_id=user_id,
                now=now,
                categories=categories,
                after=after,
                terms=terms,
                limit=query.limit,
            )
        next_cursor = (
            encode_cursor(Position(items[-1].created_at, items[-1].id)) if more and items else None
        )
        return MemoryPage(items=items, next_cursor=next_cursor)

    def _search(
        self,
        *,
        user_id: str,
        now: datetime,
        categories: list[str],
        after: Position | None,
        terms: list[str],
        limit: int,
    ) -> tuple[list[MemoryPublic], bool]:
        """Keyword search: decrypt the user's memories batch by batch and keep the matches.
        Contents are encrypted, so the database cannot search them."""
        found: list[MemoryPublic] = []
        while True:
            rows = self._memories.page(
                user_id, now=now, limit=_SCAN_BATCH, categories=categories, after=after
            )
            for memory in self._disclose(user_id, rows):
                if _matches(memory.content, terms):
                    if len(found) == limit:
                        return found, True
                    found.append(memory)
            if len(rows) < _SCAN_BATCH:
                return found, False
            after = Position(rows[-1].created_at, rows[-1].id)

    # -- the one place contents are decrypted -----------------------------------------------

    def _disclose(self, user_id: str, rows: Sequence[Memory]) -> list[MemoryPublic]:
        if not rows:
            return []
        key = self._keyring.key_for_read(user_id)
        return [_reveal(key, row) for row in rows]


def _reveal(key: UserKey | None, row: Memory) -> MemoryPublic:
    try:
        if key is None or row.key_id != key.key_id:
            raise DecryptionError
        payload = json.loads(open_sealed(key, row.ciphertext, row.id))
    except (DecryptionError, ValueError):
        raise MemoryUnreadable(
            "This memory cannot be decrypted: it was altered, moved, or its key destroyed",
            memory_id=row.id,
        ) from None
    return _public(row, payload["content"], payload.get("source"))


def _public(row: Memory, content: str, source: str | None) -> MemoryPublic:
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

"""The SQL of API tokens. Only each token's SHA-256 is stored, looked up by a unique index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memory_store.storage.rawdb import RawDB


@dataclass(frozen=True, slots=True)
class TokenRow:
    """One row of `api_tokens` (tables.ApiToken)."""

    id: str
    token_hash: str = field(repr=False)  # SHA-256 of the whole token, hex
    prefix: str
    name: str
    role: str
    user_id: str | None
    created_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = None


_COLUMNS = "id, token_hash, prefix, name, role, user_id, created_at, revoked_at, expires_at"


class TokenRepository:
    def __init__(self, raw: RawDB) -> None:
        self._raw = raw

    def _token(self, row: Sequence[Any]) -> TokenRow:
        token_id, token_hash, prefix, name, role, user_id, created_at, revoked_at, expires = row
        read_time = self._raw.read_time
        return TokenRow(
            token_id,
            token_hash,
            prefix,
            name,
            role,
            user_id,
            read_time(created_at),
            read_time(revoked_at) if revoked_at is not None else None,
            read_time(expires) if expires is not None else None,
        )

    def insert(self, token: TokenRow) -> None:
        time = self._raw.time
        self._raw.execute(
            f"INSERT INTO api_tokens ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                token.id,
                token.token_hash,
                token.prefix,
                token.name,
                token.role,
                token.user_id,
                time(token.created_at),
                time(token.revoked_at) if token.revoked_at is not None else None,
                time(token.expires_at) if token.expires_at is not None else None,
            ),
        )

    def find_by_hash(self, token_hash: str) -> TokenRow | None:
        """Every request's token lookup, by its unique index."""
        row = self._raw.one(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE token_hash = ?",  # noqa: S608 (fixed)
            (token_hash,),
        )
        return self._token(row) if row is not None else None

    def names(self, token_ids: set[str]) -> dict[str, str]:
        """Token id -> the name it was issued under (what a user sees as "who")."""
        if not token_ids:
            return {}
        ids = sorted(token_ids)
        rows = self._raw.all(
            f"SELECT id, name FROM api_tokens WHERE id IN ({', '.join('?' * len(ids))})",  # noqa: S608 (placeholders)
            ids,
        )
        return {token_id: name for token_id, name in rows}

    def list_all(self) -> list[TokenRow]:
        rows = self._raw.all(
            f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at",  # noqa: S608 (fixed)
            (),
        )
        return [self._token(row) for row in rows]

    def revoke(self, token_id: str, when: datetime) -> bool:
        """Mark a token revoked. False when there is no such live token."""
        changed = self._raw.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (self._raw.time(when), token_id),
        )
        return bool(changed)

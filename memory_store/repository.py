"""All SQL of the memory database. Every memory query is scoped to one user id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Engine, and_, or_, update
from sqlmodel import col, select

from memory_store.db import session
from memory_store.models import ApiToken, Memory


@dataclass(frozen=True)
class Position:
    """Where a page ended: the (created_at, id) of its last row, newest first."""

    created_at: datetime
    memory_id: str


class MemoryRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def insert(self, memory: Memory) -> None:
        with session(self._engine) as db:
            db.add(memory)
            db.commit()

    def get(self, user_id: str, memory_id: str, *, now: datetime) -> Memory | None:
        """One live (unexpired) memory of `user_id`, or None."""
        with session(self._engine) as db:
            return db.exec(
                select(Memory).where(
                    Memory.user_id == user_id,
                    Memory.id == memory_id,
                    col(Memory.expires_at) > now,
                )
            ).first()

    def page(
        self,
        user_id: str,
        *,
        now: datetime,
        limit: int,
        categories: Sequence[str],
        after: Position | None = None,
    ) -> Sequence[Memory]:
        """Up to `limit` live memories of `user_id` in `categories`, newest first, after
        `after`."""
        query = select(Memory).where(
            Memory.user_id == user_id,
            col(Memory.expires_at) > now,
            col(Memory.category).in_(categories),
        )
        if after is not None:
            query = query.where(
                or_(
                    col(Memory.created_at) < after.created_at,
                    and_(
                        col(Memory.created_at) == after.created_at,
                        col(Memory.id) < after.memory_id,
                    ),
                )
            )
        query = query.order_by(col(Memory.created_at).desc(), col(Memory.id).desc()).limit(limit)
        with session(self._engine) as db:
            return db.exec(query).all()


class TokenRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def insert(self, token: ApiToken) -> None:
        with session(self._engine) as db:
            db.add(token)
            db.commit()

    def find_by_hash(self, token_hash: str) -> ApiToken | None:
        with session(self._engine) as db:
            return db.exec(select(ApiToken).where(ApiToken.token_hash == token_hash)).first()

    def list_all(self) -> list[ApiToken]:
        with session(self._engine) as db:
            return list(db.exec(select(ApiToken).order_by(col(ApiToken.created_at))).all())

    def revoke(self, token_id: str, when: datetime) -> bool:
        """Mark a token revoked. False when there is no such live token."""
        with session(self._engine) as db:
            result: CursorResult[Any] = db.execute(  # type: ignore[assignment]
                update(ApiToken)
                .where(col(ApiToken.id) == token_id, col(ApiToken.revoked_at).is_(None))
                .values(revoked_at=when)
            )
            db.commit()
            return bool(result.rowcount)

"""All SQL of the memory database. Every memory query is scoped to one user id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Engine, delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from memory_store.db import session
from memory_store.errors import StorageUnavailable
from memory_store.group_commit import GroupCommitter, WriteFailed
from memory_store.models import (
    ApiToken,
    ConsentChoice,
    ConsentEvent,
    Memory,
    MemoryVersion,
    UserSettings,
)
from memory_store.policy import ALL_CATEGORIES, SubjectFacts
from memory_store.rawdb import RawDB


@dataclass(frozen=True)
class Position:
    """Where a page ended: the (created_at, id) of its last row, newest first."""

    created_at: datetime
    memory_id: str


@dataclass(frozen=True, slots=True)
class MemoryRow:
    """One row of `memories`, as the hot paths read and write it (no ORM object)."""

    id: str
    user_id: str
    category: str
    key_id: str
    ciphertext: bytes
    version: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime


# Fixed SQL of the hot paths; only placeholders are ever added to these strings.
_SELECT = (
    "SELECT id, user_id, category, key_id, ciphertext, version, created_at, updated_at, "
    "expires_at FROM memories "
)
# Rows of a forgotten user still being deleted (see erasure.py) are invisible to every read.
_NOT_ERASED = (
    " AND NOT EXISTS (SELECT 1 FROM memory_erasures e "
    "WHERE e.user_id = memories.user_id AND e.key_id = memories.key_id)"
)
_INSERT = (
    "INSERT INTO memories (id, user_id, category, key_id, ciphertext, version, created_at, "
    "updated_at, expires_at) "
)


class MemoryRepository:
    def __init__(self, engine: Engine, writer: GroupCommitter) -> None:
        self._engine = engine
        self._raw = RawDB(engine)
        self._writer = writer  # inserts are group-committed

    def _row(self, values: tuple[Any, ...]) -> MemoryRow:
        read_time = self._raw.read_time
        return MemoryRow(
            values[0],
            values[1],
            values[2],
            values[3],
            bytes(values[4]),
            values[5],
            read_time(values[6]),
            read_time(values[7]),
            read_time(values[8]),
        )

    def insert(self, memory: MemoryRow, *, max_per_user: int | None = None) -> bool:
        """Store one memory. With `max_per_user`, only while the user has fewer memories than
        that, decided atomically with the insert (False, nothing stored, when they have not)."""
        raw = self._raw
        values = (
            memory.id,
            memory.user_id,
            memory.category,
            memory.key_id,
            memory.ciphertext,
            memory.version,
            raw.time(memory.created_at),
            raw.time(memory.updated_at),
            raw.time(memory.expires_at),
        )
        statement = _INSERT + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        params: tuple[Any, ...] = values
        if max_per_user is not None:
            statement = (
                _INSERT + "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE ? > "  # noqa: S608 (placeholders only)
                "(SELECT count(*) FROM memories WHERE user_id = ?)"
            )
            params = (*values, max_per_user, memory.user_id)
        sql = raw.sql(statement)

        def job(cursor: Any) -> bool:
            # The count and the insert in one write transaction (SQLite's write lock, or a
            # per-user advisory lock): concurrent writes for one user cannot both pass.
            if not raw.sqlite:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (memory.user_id,)
                )
            cursor.execute(sql, params)
            stored: bool = cursor.rowcount == 1
            return stored

        try:
            return self._writer.run(job)
        except WriteFailed as failed:
            raise StorageUnavailable() from failed

    def count(self, user_id: str) -> int:
        """How many memories the user has (expired ones not yet swept included)."""
        row = self._raw.one("SELECT count(*) FROM memories WHERE user_id = ?", (user_id,))
        return int(row[0]) if row else 0

    def get(self, user_id: str, memory_id: str) -> MemoryRow | None:
        """One memory of `user_id`, expired or not (the policy decides), or None."""
        values = self._raw.one(
            _SELECT + "WHERE user_id = ? AND id = ?" + _NOT_ERASED, (user_id, memory_id)
        )
        return self._row(values) if values is not None else None

    def page(
        self,
        user_id: str,
        *,
        now: datetime,
        limit: int,
        categories: Sequence[str],
        after: Position | None = None,
    ) -> list[MemoryRow]:
        """Up to `limit` live memories of `user_id` in `categories`, newest first, after
        `after`. Expired rows are left out here so that pages stay full; the policy decides
        on each row again before it is disclosed."""
        if not categories:
            return []
        raw = self._raw
        marks = ", ".join("?" * len(categories))
        statement = (
            _SELECT
            + f"WHERE user_id = ? AND expires_at > ? AND category IN ({marks})"
            + _NOT_ERASED
        )
        params: list[Any] = [user_id, raw.time(now), *categories]
        if after is not None:
            statement += " AND (created_at < ? OR (created_at = ? AND id < ?))"
            at = raw.time(after.created_at)
            params += [at, at, after.memory_id]
        statement += " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(limit)
        return [self._row(values) for values in raw.all(statement, params)]

    def update(
        self,
        user_id: str,
        memory_id: str,
        *,
        expected_version: int,
        changes: dict[str, Any],
        earlier: MemoryVersion,
    ) -> MemoryRow | None:
        """Apply `changes` to the memory if it is still at `expected_version`, and keep the
        version it replaces, in one transaction. None when it is gone or has moved on."""
        with session(self._engine) as db:
            result: CursorResult[Any] = db.execute(  # type: ignore[assignment]
                update(Memory)
                .where(
                    col(Memory.user_id) == user_id,
                    col(Memory.id) == memory_id,
                    col(Memory.version) == expected_version,
                )
                .values(**changes, version=expected_version + 1)
            )
            if result.rowcount != 1:
                db.rollback()
                return None
            db.add(earlier)
            db.commit()
        return self.get(user_id, memory_id)

    def versions(self, user_id: str, memory_id: str) -> Sequence[MemoryVersion]:
        """Earlier versions of one memory, newest first."""
        with session(self._engine) as db:
            return db.exec(
                select(MemoryVersion)
                .where(MemoryVersion.user_id == user_id, MemoryVersion.memory_id == memory_id)
                .order_by(col(MemoryVersion.version).desc())
            ).all()

    def all_versions(self, user_id: str) -> Sequence[MemoryVersion]:
        with session(self._engine) as db:
            return db.exec(
                select(MemoryVersion)
                .where(MemoryVersion.user_id == user_id)
                .order_by(col(MemoryVersion.memory_id), col(MemoryVersion.version).desc())
            ).all()

    def live(self, user_id: str, *, now: datetime) -> list[MemoryRow]:
        """Every live memory of the user, newest first (for an export or a ranking)."""
        rows = self._raw.all(
            _SELECT
            + "WHERE user_id = ? AND expires_at > ?"
            + _NOT_ERASED
            + " ORDER BY created_at DESC, id DESC",
            (user_id, self._raw.time(now)),
        )
        return [self._row(values) for values in rows]

    def delete(self, user_id: str, memory_ids: Sequence[str]) -> int:
        """Delete memories of `user_id` and their history, for good. Returns how many."""
        if not memory_ids:
            return 0
        with session(self._engine) as db:
            db.execute(
                delete(MemoryVersion).where(
                    col(MemoryVersion.user_id) == user_id,
                    col(MemoryVersion.memory_id).in_(memory_ids),
                )
            )
            result: CursorResult[Any] = db.execute(  # type: ignore[assignment]
                delete(Memory).where(col(Memory.user_id) == user_id, col(Memory.id).in_(memory_ids))
            )
            db.commit()
            return int(result.rowcount)

    def ids_in_category(self, user_id: str, category: str) -> list[str]:
        rows = self._raw.all(
            "SELECT id FROM memories WHERE user_id = ? AND category = ?" + _NOT_ERASED,  # noqa: S608
            (user_id, category),
        )
        return [row[0] for row in rows]

    def purge_expired(self, *, now: datetime, batch_size: int = 1000) -> int:
        """Delete, for good, every memory whose expires_at has passed. Batched, so that a
        large purge never holds the write lock for long."""
        purged = 0
        while True:
            with session(self._engine) as db:
                ids = db.exec(
                    select(Memory.id).where(col(Memory.expires_at) <= now).limit(batch_size)
                ).all()
                if not ids:
                    return purged
                db.execute(delete(MemoryVersion).where(col(MemoryVersion.memory_id).in_(ids)))
                result: CursorResult[Any] = db.execute(  # type: ignore[assignment]
                    delete(Memory).where(col(Memory.id).in_(ids), col(Memory.expires_at) <= now)
                )
                db.commit()
                purged += result.rowcount


class ConsentRepository:
    """Consent choices, their history, and per-user settings."""

    _RETRIES = 5

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._raw = RawDB(engine)

    # On every request's path: one indexed round trip, no ORM objects.
    _FACTS = (
        "SELECT purpose, category, granted FROM consents WHERE user_id = ? "
        "UNION ALL "
        "SELECT NULL, NULL, memory_enabled FROM user_settings WHERE user_id = ?"
    )

    def facts(self, user_id: str) -> SubjectFacts:
        """Everything a policy decision needs to know about the user's choices."""
        rows = self._raw.all(self._FACTS, (user_id, user_id))
        memory_enabled = True
        choices: dict[tuple[str, str], bool] = {}
        for purpose, category, flag in rows:
            if purpose is None:
                memory_enabled = bool(flag)
            else:
                choices[(purpose, category)] = bool(flag)
        return SubjectFacts(memory_enabled=memory_enabled, choices=choices)

    def choices(self, user_id: str) -> list[ConsentChoice]:
        with session(self._engine) as db:
            return list(
                db.exec(select(ConsentChoice).where(ConsentChoice.user_id == user_id)).all()
            )

    def record(
        self,
        user_id: str,
        purpose: str,
        category: str,
        *,
        granted: bool,
        channel: str,
        now: datetime,
    ) -> ConsentEvent:
        """Make a choice current and append it to the history, in one transaction. A choice
        for all categories replaces the per-category ones, so the latest choice wins."""
        for attempt in range(self._RETRIES):
            try:
                return self._record_once(user_id, purpose, category, granted, channel, now)
            except IntegrityError:  # a concurrent change took our version number: retry
                if attempt == self._RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _record_once(
        self, user_id: str, purpose: str, category: str, granted: bool, channel: str, now: datetime
    ) -> ConsentEvent:
        with session(self._engine) as db:
            last = db.exec(
                select(func.max(ConsentEvent.version)).where(ConsentEvent.user_id == user_id)
            ).one()
            version = (last or 0) + 1
            current = db.get(ConsentChoice, (user_id, purpose, category))
            previous = "default" if current is None else _choice_name(current.granted)
            if category == ALL_CATEGORIES:
                db.execute(
                    delete(ConsentChoice).where(
                        col(ConsentChoice.user_id) == user_id,
                        col(ConsentChoice.purpose) == purpose,
                    )
                )
            db.merge(
                ConsentChoice(
                    user_id=user_id,
                    purpose=purpose,
                    category=category,
                    granted=granted,
                    version=version,
                    updated_at=now,
                )
            )
            event = ConsentEvent(
                user_id=user_id,
                version=version,
                purpose=purpose,
                category=category,
                granted=granted,
                previous=previous,
                channel=channel,
                at=now,
            )
            db.add(event)
            db.commit()
            return event

    def history(
        self, user_id: str, *, limit: int, before_version: int | None = None
    ) -> Sequence[ConsentEvent]:
        """The user's consent changes, newest first."""
        query = select(ConsentEvent).where(ConsentEvent.user_id == user_id)
        if before_version is not None:
            query = query.where(col(ConsentEvent.version) < before_version)
        query = query.order_by(col(ConsentEvent.version).desc()).limit(limit)
        with session(self._engine) as db:
            return db.exec(query).all()

    def settings(self, user_id: str) -> UserSettings | None:
        with session(self._engine) as db:
            return db.get(UserSettings, user_id)

    def save_settings(self, user_id: str, *, memory_enabled: bool, now: datetime) -> UserSettings:
        with session(self._engine) as db:
            row = db.merge(
                UserSettings(user_id=user_id, memory_enabled=memory_enabled, updated_at=now)
            )
            db.commit()
            return row


def _choice_name(granted: bool) -> str:
    return "granted" if granted else "withdrawn"


class TokenRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._raw = RawDB(engine)

    def insert(self, token: ApiToken) -> None:
        with session(self._engine) as db:
            db.add(token)
            db.commit()

    def find_by_hash(self, token_hash: str) -> ApiToken | None:
        """Every request's token lookup (by its unique index), so below the ORM."""
        values = self._raw.one(
            "SELECT id, prefix, name, role, user_id, created_at, revoked_at "
            "FROM api_tokens WHERE token_hash = ?",
            (token_hash,),
        )
        if values is None:
            return None
        token_id, prefix, name, role, user_id, created_at, revoked_at = values
        read_time = self._raw.read_time
        return ApiToken(
            id=token_id,
            token_hash=token_hash,
            prefix=prefix,
            name=name,
            role=role,
            user_id=user_id,
            created_at=read_time(created_at),
            revoked_at=read_time(revoked_at) if revoked_at is not None else None,
        )

    def names(self, token_ids: set[str]) -> dict[str, str]:
        """Token id -> the name it was issued under (what a user sees as "who")."""
        if not token_ids:
            return {}
        with session(self._engine) as db:
            rows = db.exec(
                select(ApiToken.id, ApiToken.name).where(col(ApiToken.id).in_(token_ids))
            ).all()
        return dict(rows)

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

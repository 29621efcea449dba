"""The SQL of consent choices, their history, and per-user settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memory_store.domain import ALL_CATEGORIES, SubjectFacts
from memory_store.storage.rawdb import RawDB


@dataclass(frozen=True, slots=True)
class ConsentEventRow:
    """One change of consent (tables.ConsentEvent), kept as proof of when and how."""

    user_id: str
    version: int  # 1, 2, 3 ... per user
    purpose: str
    category: str
    granted: bool
    previous: str  # "granted", "withdrawn" or "default"
    channel: str  # how the user made the change: "api" or "web"
    at: datetime


@dataclass(frozen=True, slots=True)
class SettingsRow:
    """A user's switches (tables.UserSettings). No row means the defaults."""

    user_id: str
    memory_enabled: bool
    updated_at: datetime


_EVENT_COLUMNS = "user_id, version, purpose, category, granted, previous, channel, at"
# On every request's path: one indexed round trip.
_FACTS = (
    "SELECT purpose, category, granted FROM consents WHERE user_id = ? "
    "UNION ALL "
    "SELECT NULL, NULL, memory_enabled FROM user_settings WHERE user_id = ?"
)


class ConsentRepository:
    _RETRIES = 5

    def __init__(self, raw: RawDB) -> None:
        self._raw = raw

    def facts(self, user_id: str) -> SubjectFacts:
        """Everything a policy decision needs to know about the user's choices."""
        rows = self._raw.all(_FACTS, (user_id, user_id))
        memory_enabled = True
        choices: dict[tuple[str, str], bool] = {}
        for purpose, category, flag in rows:
            if purpose is None:
                memory_enabled = bool(flag)
            else:
                choices[(purpose, category)] = bool(flag)
        return SubjectFacts(memory_enabled=memory_enabled, choices=choices)

    def record(
        self,
        user_id: str,
        purpose: str,
        category: str,
        *,
        granted: bool,
        channel: str,
        now: datetime,
    ) -> ConsentEventRow:
        """Make a choice current and append it to the history, in one transaction. A choice
        for all categories replaces the per-category ones, so the latest choice wins."""
        for attempt in range(self._RETRIES):
            try:
                return self._record_once(user_id, purpose, category, granted, channel, now)
            except self._raw.integrity_error:  # a concurrent change took our version: retry
                if attempt == self._RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _record_once(
        self, user_id: str, purpose: str, category: str, granted: bool, channel: str, now: datetime
    ) -> ConsentEventRow:
        raw = self._raw
        at = raw.time(now)
        with raw.transaction() as cursor:
            cursor.execute(
                raw.sql("SELECT max(version) FROM consent_events WHERE user_id = ?"), (user_id,)
            )
            last = cursor.fetchone()[0]
            version = int(last or 0) + 1
            cursor.execute(
                raw.sql(
                    "SELECT granted FROM consents "
                    "WHERE user_id = ? AND purpose = ? AND category = ?"
                ),
                (user_id, purpose, category),
            )
            current = cursor.fetchone()
            previous = "default" if current is None else _choice_name(bool(current[0]))
            if category == ALL_CATEGORIES:
                cursor.execute(
                    raw.sql("DELETE FROM consents WHERE user_id = ? AND purpose = ?"),
                    (user_id, purpose),
                )
            cursor.execute(
                raw.sql(
                    "INSERT INTO consents (user_id, purpose, category, granted, version, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (user_id, purpose, category) DO UPDATE SET "
                    "granted = excluded.granted, version = excluded.version, "
                    "updated_at = excluded.updated_at"
                ),
                (user_id, purpose, category, granted, version, at),
            )
            event = ConsentEventRow(
                user_id, version, purpose, category, granted, previous, channel, now
            )
            cursor.execute(
                raw.sql(
                    f"INSERT INTO consent_events ({_EVENT_COLUMNS}) "  # noqa: S608 (fixed)
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (user_id, version, purpose, category, granted, previous, channel, at),
            )
        return event

    def history(
        self, user_id: str, *, limit: int, before_version: int | None = None
    ) -> list[ConsentEventRow]:
        """The user's consent changes, newest first."""
        statement = f"SELECT {_EVENT_COLUMNS} FROM consent_events WHERE user_id = ?"  # noqa: S608
        params: list[Any] = [user_id]
        if before_version is not None:
            statement += " AND version < ?"
            params.append(before_version)
        statement += " ORDER BY version DESC LIMIT ?"
        params.append(limit)
        return [self._event(row) for row in self._raw.all(statement, params)]

    def _event(self, row: Sequence[Any]) -> ConsentEventRow:
        user_id, version, purpose, category, granted, previous, channel, at = row
        return ConsentEventRow(
            user_id,
            int(version),
            purpose,
            category,
            bool(granted),
            previous,
            channel,
            self._raw.read_time(at),
        )

    def settings(self, user_id: str) -> SettingsRow | None:
        row = self._raw.one(
            "SELECT memory_enabled, updated_at FROM user_settings WHERE user_id = ?", (user_id,)
        )
        if row is None:
            return None
        return SettingsRow(user_id, bool(row[0]), self._raw.read_time(row[1]))

    def save_settings(self, user_id: str, *, memory_enabled: bool, now: datetime) -> SettingsRow:
        self._raw.execute(
            "INSERT INTO user_settings (user_id, memory_enabled, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET "
            "memory_enabled = excluded.memory_enabled, updated_at = excluded.updated_at",
            (user_id, memory_enabled, self._raw.time(now)),
        )
        return SettingsRow(user_id, memory_enabled, now)


def _choice_name(granted: bool) -> str:
    return "granted" if granted else "withdrawn"

"""A store made before content format 3 (format 2: under the user's own key; format 1: also
bound only to user, memory id and key) is re-encrypted, each version under an item key of its
own, bound to its row's policy attributes, when the service starts or `memory-store db
upgrade` runs; every other command refuses it until then. Nothing is lost on the way."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from memory_store.cli import main
from memory_store.config import Settings
from memory_store.domain import Principal, Role
from memory_store.keys.envelope import (
    CONTENT_FORMAT,
    LEGACY_FORMAT,
    PREVIOUS_FORMAT,
    UserKey,
    seal_legacy,
    seal_previous,
)
from memory_store.keys.payload import Binding
from memory_store.runtime import Runtime, open_engines, open_runtime
from memory_store.schemas import MemoryCreate, MemoryUpdate
from memory_store.services.memories import ListQuery
from memory_store.storage import migrate
from memory_store.storage.rawdb import RawDB
from tests.conftest import PURPOSE

ASSISTANT = Principal(token_id="t", name="assistant", role=Role.assistant, user_id=None)


def me(user_id: str) -> Principal:
    return Principal(token_id=f"t-{user_id}", name=user_id, role=Role.user, user_id=user_id)


def contents(runtime: Runtime, user_id: str) -> dict[str, tuple[str, list[str]]]:
    """Every memory of the user: its content and its history's contents."""
    exported = runtime.memories.export_own(me(user_id))
    return {m.id: (m.content, [v.content for v in history]) for m, history, _ in exported}


def older_seal(fmt: int, key: UserKey, payload: bytes, binding: Binding) -> bytes:
    """A ciphertext as a store in format `fmt` holds it: under the user's own key."""
    if fmt == LEGACY_FORMAT:
        return seal_legacy(key, payload, binding.legacy())
    return seal_previous(key, payload, binding.encode())


def make_older(runtime: Runtime, fmt: int) -> int:
    """Seal every ciphertext again as format `fmt` would have, and mark the store so, as a
    store made before item keys is. Returns how many ciphertexts."""
    changed = 0
    with runtime.engine.begin() as conn:
        rows = conn.execute(
            text("SELECT id, user_id, version, category, expires_at, key_id FROM memories")
        ).all()
        for memory_id, user_id, number, category, expires, key_id in rows:
            key = runtime.keyring.key_for_read(user_id)
            assert key is not None
            memory = runtime.memories.get_own(me(user_id), memory_id)
            payload = json.dumps({"content": memory.content, "source": memory.source}).encode()
            expires_at = RawDB.read_time(expires)
            binding = Binding("memory", user_id, memory_id, number, category, expires_at, key_id)
            conn.execute(
                text("UPDATE memories SET ciphertext = :c WHERE id = :id"),
                {"c": older_seal(fmt, key, payload, binding), "id": memory_id},
            )
            changed += 1
            for version in runtime.memories.history_own(me(user_id), memory_id):
                payload = json.dumps({"content": version.content, "source": None}).encode()
                binding = Binding(
                    "version",
                    user_id,
                    memory_id,
                    version.version,
                    version.category,
                    version.expires_at,
                    key_id,
                )
                conn.execute(
                    text(
                        "UPDATE memory_versions SET ciphertext = :c "
                        "WHERE memory_id = :id AND version = :v"
                    ),
                    {
                        "c": older_seal(fmt, key, payload, binding),
                        "id": memory_id,
                        "v": version.version,
                    },
                )
                changed += 1
        conn.execute(text("UPDATE store_format SET content_format = :f"), {"f": fmt})
    return changed


def formats(settings: Settings) -> tuple[set[int], int]:
    """(the formats the stored ciphertexts are in, the format the store says it is in)"""
    engine = open_engines(settings)["memory"]
    try:
        with engine.connect() as conn:
            blobs = [
                *conn.execute(text("SELECT ciphertext FROM memories")).scalars(),
                *conn.execute(text("SELECT ciphertext FROM memory_versions")).scalars(),
            ]
            stored = conn.execute(text("SELECT content_format FROM store_format")).scalar_one()
    finally:
        engine.dispose()
    return {bytes(blob)[0] for blob in blobs}, int(stored)


@pytest.fixture(params=[LEGACY_FORMAT, PREVIOUS_FORMAT], ids=["format 1", "format 2"])
def legacy_store(
    settings: Settings, request: pytest.FixtureRequest
) -> dict[str, dict[str, tuple[str, list[str]]]]:
    """A store with memories of two users (one edited twice), turned into a store of an
    older format. Returns what each user should read."""
    fmt: int = request.param
    runtime = open_runtime(settings)
    try:
        for user_id in ("alice", "bob"):
            for n in range(3):
                body = MemoryCreate(content=f"{user_id}'s fact {n}", category="preferences")
                runtime.memories.write(ASSISTANT, user_id, PURPOSE, body)
        edited = runtime.memories.list_own(me("alice"), ListQuery(limit=100)).items[0]
        for content in ("corrected once", "corrected twice"):
            edited = runtime.memories.update_own(
                me("alice"), edited.id, MemoryUpdate(content=content), if_match=None
            )
        expected = {user: contents(runtime, user) for user in ("alice", "bob")}
        assert make_older(runtime, fmt) == 8  # six memories, two earlier versions
    finally:
        runtime.close()
    assert formats(settings) == ({fmt}, fmt)
    return expected


def test_commands_refuse_a_legacy_store_and_the_start_re_encrypts_it_losing_nothing(
    settings: Settings, legacy_store: dict[str, dict[str, tuple[str, list[str]]]]
) -> None:
    before = formats(settings)
    for schema in ("create", "check"):
        with pytest.raises(migrate.SchemaOutOfDate, match="memory-store db upgrade"):
            open_runtime(settings, schema=schema)
    assert formats(settings) == before  # refusing changed nothing

    runtime = open_runtime(settings)  # the server's start: re-encrypts
    try:
        assert {user: contents(runtime, user) for user in legacy_store} == legacy_store
    finally:
        runtime.close()
    assert formats(settings) == ({CONTENT_FORMAT}, CONTENT_FORMAT)
    open_runtime(settings, schema="check").close()  # and now every command opens it


def test_db_upgrade_re_encrypts_and_a_row_that_does_not_open_is_left_as_it_was(
    settings: Settings,
    legacy_store: dict[str, dict[str, tuple[str, list[str]]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (fmt,), _ = formats(settings)
    engine = open_engines(settings)["memory"]
    with engine.begin() as conn:
        broken = conn.execute(
            text("SELECT id FROM memories WHERE user_id = 'bob' ORDER BY id LIMIT 1")
        ).scalar_one()
        conn.execute(
            text("UPDATE memories SET ciphertext = :c WHERE id = :id"),
            {"c": bytes([fmt]) + b"\x00" * 40, "id": broken},
        )
    engine.dispose()
    monkeypatch.setenv("MEMORY_STORE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MEMORY_STORE_RETENTION_SWEEP_SECONDS", "0")
    assert main(["db", "upgrade"]) == 0
    assert formats(settings) == ({fmt, CONTENT_FORMAT}, CONTENT_FORMAT)
    runtime = open_runtime(settings, schema="check")
    try:
        assert contents(runtime, "alice") == legacy_store["alice"]
        bobs = contents(runtime, "bob")
        assert broken not in bobs  # unreadable before, unreadable after: left out
        assert bobs == {k: v for k, v in legacy_store["bob"].items() if k != broken}
    finally:
        runtime.close()


def test_a_store_with_memories_from_before_the_format_revision_starts_at_format_1(
    settings: Settings,
) -> None:
    engines = open_engines(settings)
    try:
        memory = engines["memory"]
        migrate.upgrade(memory, "memory", "a41f0c2d9e51")  # the revision before the format
        with memory.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO memories (id, user_id, category, key_id, ciphertext, version, "
                    "created_at, updated_at, expires_at) VALUES ('mem_x', 'u', 'preferences', "
                    "'k', :c, 1, :t, :t, :t)"
                ),
                {"c": b"\x01", "t": "2026-01-01 00:00:00.000000"},
            )
        migrate.upgrade(memory, "memory")
        with memory.connect() as conn:
            assert conn.execute(text("SELECT content_format FROM store_format")).scalar() == 1
    finally:
        for engine in engines.values():
            engine.dispose()

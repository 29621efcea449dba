"""Invariant 1: no plaintext at rest. Known strings written through the API appear in no file
the service wrote: not the database, not its WAL, not the key store, not the key file."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from memory_store.config import Settings
from memory_store.recall.embedders import normalised
from memory_store.runtime import Runtime
from memory_store.services.recall import vector_bytes
from tests.conftest import bearer, write_memory

pytestmark = pytest.mark.sqlite_only

KNOWN = [
    "canary-7f3a: prefers window seats on flights to Reykjavik",
    "canary-91bc: daughter Ingrid starts school in September",
    "canary-0d4e: takes 20mg of an unusual medication",
]
SOURCE = "canary-source-55aa: from the chat on Tuesday"


def service_files(settings: Settings) -> list[Path]:
    files = [path for path in settings.data_dir.rglob("*") if path.is_file()]
    assert any(path.name.endswith("-wal") for path in files), "expected a WAL file to search"
    return files


def test_known_strings_are_in_no_file_the_service_wrote(
    client: TestClient, settings: Settings, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    categories = ["preferences", "relationships", "profile"]
    for content, category in zip(KNOWN, categories, strict=True):
        write_memory(client, assistant_token, content=content, category=category, source=SOURCE)
    # Read them back, search them: reads must not leave plaintext behind either.
    listed = client.get("/v1/me/memories", params={"q": "canary"}, headers=bearer(alice_token))
    assert {item["content"] for item in listed.json()["items"]} == set(KNOWN)
    # Their recall vectors are made and stored, and a recall opens them into the index.
    assert runtime.indexer.catch_up() == len(KNOWN)
    recalled = client.get(
        "/v1/users/alice/context",
        params={"purpose": "personalization", "q": "school"},
        headers=bearer(assistant_token),
    )
    assert recalled.json()["unindexed"] == 0
    embedder = runtime.memories.recall.embedder
    assert embedder is not None
    vectors = [vector_bytes(v) for v in normalised(embedder.embed(KNOWN))]

    needles = [s.encode() for s in [*KNOWN, SOURCE]]
    needles += [s.encode("utf-16-le") for s in KNOWN]
    needles += [assistant_token.encode(), alice_token.encode()]
    needles += [b"window seats", b"Ingrid", b"medication", b"canary"]
    # The vectors: whole, and any 16 bytes of them (four float32s).
    needles += vectors + [v[at : at + 16] for v in vectors for at in range(0, len(v), 256)]
    files = service_files(settings)
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} found in {path.name}"
    # And after a checkpoint moves the WAL into the main file, still nothing.
    with runtime.engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    for path in service_files(settings):
        data = path.read_bytes()
        assert not any(needle in data for needle in needles), path.name


def test_state_files_are_private_to_the_service_user(
    client: TestClient, settings: Settings, assistant_token: str
) -> None:
    write_memory(client, assistant_token)
    for path in settings.data_dir.iterdir():
        if path.is_file():
            assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"
    assert settings.data_dir.stat().st_mode & 0o077 == 0

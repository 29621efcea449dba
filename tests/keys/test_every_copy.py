"""Forgetting holds against every copy, on SQLite and on PostgreSQL, with the key file and
with an HSM (SoftHSM2 over PKCS#11).

A backup of every database is taken; then one memory is forgotten, a category is forgotten,
a user is forgotten, and the KEK is rotated and its old epoch retired. Then:
(a) no wrapped key in the backup of the key store opens with any key that still exists: no
    data key with any KEK, no item key of a forgotten memory with any user's key;
(b) the backup of the memory data, restored beside the current key store, serves every memory
    except the forgotten ones (which are refused, the rest of each page still served);
(c) every file of the SQLite folder, or of the whole PostgreSQL cluster, is scanned for the
    wrapped keys the store ever held: the copies found (WAL, dead tuples, the backup) open
    with no KEK that exists.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text

from memory_store.config import Settings
from memory_store.domain import Principal, Role
from memory_store.errors import DecryptionError, KeyProviderError
from memory_store.keys.envelope import UserKey, WrappedKey, unwrap_item
from memory_store.runtime import Runtime, open_runtime
from memory_store.schemas import MemoryCreate, MemoryUpdate
from memory_store.services.memories import ListQuery
from memory_store.storage.migrate import target_metadata
from tests.conftest import PURPOSE
from tests.keys.conftest import MODULE, PIN
from tests.postgres import Cluster

ASSISTANT = Principal(token_id="t", name="assistant", role=Role.assistant, user_id=None)


def me(user_id: str) -> Principal:
    return Principal(token_id=f"t-{user_id}", name=user_id, role=Role.user, user_id=user_id)


@dataclass(frozen=True)
class Snapshot:
    """Every row of every table of one database, as a backup holds them."""

    tables: dict[str, list[dict[str, Any]]]


def snapshot(engine: Engine, branch: str) -> Snapshot:
    tables = {}
    with engine.connect() as conn:
        for name, table in target_metadata(branch).tables.items():
            tables[name] = [dict(row._mapping) for row in conn.execute(table.select())]
    return Snapshot(tables)


def restore(engine: Engine, branch: str, backup: Snapshot) -> None:
    """Put the backup's rows back in place of the database's, table by table."""
    metadata = target_metadata(branch)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
        for table in metadata.sorted_tables:
            if backup.tables[table.name]:
                conn.execute(table.insert(), backup.tables[table.name])


def backup_files(data_dir: Path, into: Path) -> None:
    """Copy every SQLite database, the way `.backup` would (a consistent copy of each)."""
    into.mkdir()
    for source in data_dir.glob("*.db"):
        with sqlite3.connect(source) as conn, sqlite3.connect(into / source.name) as copy:
            conn.backup(copy)


def opens_with_a_kek(runtime: Runtime, user_id: str, blob: bytes) -> bool:
    provider = runtime.keyring.provider
    for version in provider.versions():
        try:
            provider.unwrap(WrappedKey(version, blob), user_id)
        except (DecryptionError, KeyProviderError):
            continue
        return True
    return False


def item_opens_with(secrets: Iterable[bytes], item: dict[str, Any]) -> bool:
    for secret in secrets:
        user = UserKey(item["user_id"], item["key_id"], secret)
        try:
            unwrap_item(user, item["memory_id"], item["version"], item["item_id"], item["wrapped"])
        except DecryptionError:
            continue
        return True
    return False


def user_secrets(runtime: Runtime, users: Iterable[str]) -> list[bytes]:
    keys = [runtime.keyring.key_for_read(user) for user in users]
    return [key.secret for key in keys if key is not None]


def files_of(settings: Settings, cluster: Cluster | None) -> list[Path]:
    """Every file the databases live in: the SQLite folder, or the whole cluster."""
    root = cluster.datadir if cluster is not None else settings.data_dir
    return [path for path in root.rglob("*") if path.is_file()]


def copies_in(files: Iterable[Path], blobs: Iterable[bytes]) -> set[bytes]:
    """Which of `blobs` appear, byte for byte, in any of `files`."""
    wanted = re.compile(b"|".join(re.escape(blob) for blob in blobs))
    found: set[bytes] = set()
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:  # a file the cluster removed meanwhile
            continue
        found |= {match.group() for match in wanted.finditer(data)}
    return found


@pytest.fixture(params=["key file", "pkcs11"])
def provider_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    if request.param == "key file":
        return settings
    token = request.getfixturevalue("token")  # skips where SoftHSM2 is not installed
    return settings.model_copy(
        update={
            "key_provider": "pkcs11",
            "pkcs11_module": MODULE,
            "pkcs11_token_label": token,
            "pkcs11_pin": SecretStr(PIN),
        }
    )


def test_forgotten_memories_open_in_no_copy_and_a_restored_backup_serves_the_rest(
    provider_settings: Settings, pg_cluster: Cluster | None
) -> None:
    settings = provider_settings
    runtime = open_runtime(settings)
    try:
        write = runtime.memories.write

        def remember(user_id: str, content: str, category: str = "preferences") -> str:
            body = MemoryCreate(content=content, category=category)
            return write(ASSISTANT, user_id, PURPOSE, body).id

        kept = remember("alice", "alice-keeps: window seats")
        runtime.memories.update_own(
            me("alice"), kept, MemoryUpdate(content="alice-keeps: aisle seats"), if_match=None
        )
        forgotten_one = remember("alice", "alice-forgets: the surprise party")
        bob_gone = [remember("bob", f"bob-forgets-{n}") for n in range(2)]
        bob_kept = remember("bob", "bob-keeps: plays chess", "interests")
        carol = [remember("carol", f"carol-forgets-{n}") for n in range(2)]
        dave = remember("dave", "dave-keeps: drinks tea")

        data_backup = snapshot(runtime.engine, "memory")
        key_backup = snapshot(runtime.keystore_engine, "keystore")
        if pg_cluster is None:  # and the files themselves, as a backup tool copies them
            backup_files(settings.data_dir, settings.data_dir / "backup")
        forgotten = {forgotten_one, *bob_gone, *carol}
        users = ("alice", "bob", "carol", "dave")
        # Before any forget, the backup's keys open: what follows is what makes them not.
        for row in key_backup.tables["data_keys"]:
            assert opens_with_a_kek(runtime, row["user_id"], row["wrapped"])
        forgotten_items = [i for i in key_backup.tables["item_keys"] if i["memory_id"] in forgotten]
        assert len(forgotten_items) == 5
        assert all(item_opens_with(user_secrets(runtime, users), i) for i in forgotten_items)

        runtime.memories.delete_own(me("alice"), forgotten_one)
        assert runtime.memories.delete_category_own(me("bob"), "preferences")[0] == 2
        assert runtime.rights.forget(me("carol")).data_key_destroyed
        assert runtime.keys.rotate().failed == 0
        assert runtime.keys.retire_unused() == [1]

        # (a) Nothing in the key store's backup opens with a key that exists now.
        for row in key_backup.tables["data_keys"]:
            assert not opens_with_a_kek(runtime, row["user_id"], row["wrapped"]), row["user_id"]
        living = user_secrets(runtime, users)
        assert len(living) == 3  # carol has none
        for item in forgotten_items:
            assert not item_opens_with(living, item), item["memory_id"]

        # (c) Every copy of a wrapped key anywhere on disk opens with no KEK that exists.
        if pg_cluster is not None:
            with runtime.keystore_engine.connect() as conn:
                conn.execute(text("CHECKPOINT"))  # what is in memory, onto the disk
        blobs = {row["wrapped"]: row["user_id"] for row in key_backup.tables["data_keys"]}
        found = copies_in(files_of(settings, pg_cluster), blobs)
        for blob in found:
            assert not opens_with_a_kek(runtime, blobs[blob], blob)
        old_items = {item["wrapped"]: item for item in forgotten_items}
        found_items = copies_in(files_of(settings, pg_cluster), old_items)
        for blob in found_items:
            assert not item_opens_with(living, old_items[blob])
        print(
            f"\non disk: {len(found)} of {len(blobs)} old wrapped data keys, "
            f"{len(found_items)} of {len(old_items)} forgotten item keys; none opens"
        )
    finally:
        runtime.close()

    # (b) The data's backup beside the current key store: the forgotten are gone, the rest
    # served, each page whole but for them.
    restore(runtime.engine, "memory", data_backup)
    runtime = open_runtime(settings)
    try:
        mine = runtime.memories.list_own(me("alice"), ListQuery())
        assert [m.content for m in mine.items] == ["alice-keeps: aisle seats"]
        history = runtime.memories.history_own(me("alice"), kept)
        assert [v.content for v in history] == ["alice-keeps: window seats"]
        bobs = runtime.memories.list_own(me("bob"), ListQuery())
        assert [m.id for m in bobs.items] == [bob_kept]
        carols = runtime.memories.list_for_purpose(ASSISTANT, "carol", PURPOSE, ListQuery())
        assert carols.items == []
        daves = runtime.memories.list_own(me("dave"), ListQuery())
        assert [m.id for m in daves.items] == [dave]
        refused = [
            record
            for record in runtime.audit_store.iter_records()
            if record.reason == "memory-unreadable"
        ]
        assert {m for record in refused for m in record.memory_ids} == forgotten
    finally:
        runtime.close()

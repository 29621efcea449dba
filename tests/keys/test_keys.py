"""The key store (DataKeyring) and the runtime's key checks: creation, crypto-shredding,
KEK rotation and retirement, and refusing to start with the wrong key file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from memory_store.config import Settings
from memory_store.errors import DecryptionError, KeyProviderError
from memory_store.keys.envelope import WrappedKey
from memory_store.keys.keyring import DataKeyring
from memory_store.keys.provider import LocalKeyFileProvider
from memory_store.runtime import Runtime, open_runtime
from memory_store.storage.keystore import KeyStore
from memory_store.storage.rawdb import RawDB
from memory_store.storage.tables import Memory, data_keys
from tests.conftest import PURPOSE, assert_problem, bearer, write_memory

USERS = ("alice", "bob", "carol")


def read_memory(client: TestClient, token: str, user_id: str, memory_id: str) -> httpx.Response:
    return client.get(
        f"/v1/users/{user_id}/memories/{memory_id}",
        params={"purpose": PURPOSE},
        headers=bearer(token),
    )


def write_for_users(client: TestClient, token: str) -> dict[str, tuple[str, str]]:
    """Two memories per user; returns {memory id: (user id, content)}."""
    written: dict[str, tuple[str, str]] = {}
    for user_id in USERS:
        for n in range(2):
            content = f"{user_id} fact number {n}"
            body = write_memory(client, token, user_id=user_id, content=content)
            written[body["id"]] = (user_id, content)
    return written


def assert_all_readable(
    client: TestClient, token: str, written: dict[str, tuple[str, str]]
) -> None:
    for memory_id, (user_id, content) in written.items():
        response = read_memory(client, token, user_id, memory_id)
        assert response.status_code == 200, response.text
        assert response.json()["content"] == content
    for user_id in USERS:
        response = client.get(
            f"/v1/users/{user_id}/memories", params={"purpose": PURPOSE}, headers=bearer(token)
        )
        assert response.status_code == 200, response.text
        listed = {item["id"]: item["content"] for item in response.json()["items"]}
        expected = {m: c for m, (u, c) in written.items() if u == user_id}
        assert listed == expected


def ciphertexts(runtime: Runtime) -> dict[str, bytes]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(Memory.id, Memory.ciphertext)).all()
    return {row[0]: row[1] for row in rows}


def backup_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live WAL-mode SQLite database (what a backup tool does)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def keystore_path(settings: Settings) -> Path:
    return Path(settings.resolved_keystore_url().removeprefix("sqlite:///"))


# -- DataKeyring ------------------------------------------------------------------------------


def test_key_for_write_creates_a_key_once_then_returns_the_same_key(runtime: Runtime) -> None:
    keyring = runtime.keyring
    assert keyring.key_for_read("alice") is None
    first = keyring.key_for_write("alice")
    second = keyring.key_for_write("alice")
    read = keyring.key_for_read("alice")
    assert first.user_id == "alice"
    assert second.key_id == first.key_id
    assert second.secret == first.secret
    assert read is not None
    assert read.key_id == first.key_id
    assert read.secret == first.secret
    assert keyring.count_by_version() == {1: 1}


def test_each_user_gets_their_own_random_key(runtime: Runtime) -> None:
    alice = runtime.keyring.key_for_write("alice")
    bob = runtime.keyring.key_for_write("bob")
    assert alice.key_id != bob.key_id
    assert alice.secret != bob.secret
    assert runtime.keyring.count_by_version() == {1: 2}


@pytest.mark.sqlite_only
def test_the_key_store_holds_only_wrapped_keys(runtime: Runtime, settings: Settings) -> None:
    key = runtime.keyring.key_for_write("alice")
    assert key.secret not in keystore_path(settings).read_bytes()
    with runtime.keystore_engine.connect() as conn:
        wrapped = conn.execute(select(data_keys.c.wrapped)).scalar_one()
    assert key.secret not in wrapped


def test_destroy_removes_the_key_so_key_for_read_answers_none(runtime: Runtime) -> None:
    runtime.keyring.key_for_write("alice")
    runtime.keyring.key_for_write("bob")
    assert runtime.keyring.destroy("alice") is True
    assert runtime.keyring.key_for_read("alice") is None
    assert runtime.keyring.key_for_read("bob") is not None, "only alice's key is destroyed"
    assert runtime.keyring.destroy("alice") is False, "destroying twice reports nothing to do"


def test_a_new_key_after_destroy_is_a_different_key(runtime: Runtime) -> None:
    """Crypto-shredding cannot be undone by writing again: the old key never comes back."""
    old = runtime.keyring.key_for_write("alice")
    runtime.keyring.destroy("alice")
    new = runtime.keyring.key_for_write("alice")
    assert new.key_id != old.key_id
    assert new.secret != old.secret


def test_destroying_a_key_makes_its_memories_unreadable_410_by_id_and_left_out_of_lists(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    secret_text = "alice keeps her spare key under the blue pot"
    memory = write_memory(client, assistant_token, user_id="alice", content=secret_text)
    bob_memory = write_memory(client, assistant_token, user_id="bob", content="bob likes tea")
    assert read_memory(client, assistant_token, "alice", memory["id"]).status_code == 200

    runtime.keyring.destroy("alice")

    by_id = [
        read_memory(client, assistant_token, "alice", memory["id"]),
        client.get(f"/v1/me/memories/{memory['id']}", headers=bearer(alice_token)),
    ]
    for response in by_id:
        body = assert_problem(response, 410, "memory-unreadable")
        assert secret_text not in response.text
        assert body.get("memory_id") == memory["id"]
    lists = [  # a list leaves out what will not open, and says so on the trail
        client.get(
            "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(assistant_token)
        ),
        client.get("/v1/me/memories", headers=bearer(alice_token)),
    ]
    for response in lists:
        assert response.status_code == 200 and response.json()["items"] == []
        assert secret_text not in response.text
    other = read_memory(client, assistant_token, "bob", bob_memory["id"])
    assert other.status_code == 200, "another user's memories are untouched"
    assert other.json()["content"] == "bob likes tea"


# -- KEK rotation -----------------------------------------------------------------------------


def test_kek_rotation_and_retirement_keep_every_memory_readable_while_serving(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    written = write_for_users(client, assistant_token)
    assert_all_readable(client, assistant_token, written)
    before = ciphertexts(runtime)
    keyring = runtime.keyring
    assert keyring.count_by_version() == {1: len(USERS)}

    assert keyring.provider.add_version() == 2
    report = keyring.rewrap_all()
    assert (report.kek_version, report.rewrapped, report.failed) == (2, len(USERS), 0)
    assert keyring.count_by_version() == {2: len(USERS)}
    assert keyring.wrapped_by(1) == 0
    assert ciphertexts(runtime) == before, "rotation rewraps data keys only, not contents"
    assert_all_readable(client, assistant_token, written)

    keyring.retire_kek(1)
    assert keyring.provider.versions() == [2]
    assert_all_readable(client, assistant_token, written)

    # A new user's key is wrapped by the new version.
    write_memory(client, assistant_token, user_id="dave", content="dave is new")
    assert keyring.count_by_version() == {2: len(USERS) + 1}


def test_after_rotation_and_retirement_a_fresh_runtime_reads_everything(
    client: TestClient, runtime: Runtime, settings: Settings, assistant_token: str
) -> None:
    """Readable not only thanks to a cache: a new process, with nothing cached, reads too."""
    written = write_for_users(client, assistant_token)
    runtime.keyring.provider.add_version()
    runtime.keyring.rewrap_all()
    runtime.keyring.retire_kek(1)

    fresh = open_runtime(settings)
    try:
        for user_id in USERS:
            key = fresh.keyring.key_for_read(user_id)
            assert key is not None
            assert key.key_id == runtime.keyring.key_for_write(user_id).key_id
    finally:
        fresh.close()
    assert_all_readable(client, assistant_token, written)


def test_rewrap_all_twice_has_nothing_left_to_do(runtime: Runtime) -> None:
    for user_id in USERS:
        runtime.keyring.key_for_write(user_id)
    runtime.keyring.provider.add_version()
    assert runtime.keyring.rewrap_all().rewrapped == len(USERS)
    again = runtime.keyring.rewrap_all()
    assert (again.rewrapped, again.failed) == (0, 0)


def test_rewrap_all_works_across_several_batches(runtime: Runtime) -> None:
    users = [f"user{n:02d}" for n in range(7)]
    keys = {user: runtime.keyring.key_for_write(user) for user in users}
    runtime.keyring.provider.add_version()
    report = runtime.keyring.rewrap_all(batch_size=3)
    assert report.rewrapped == len(users)
    assert runtime.keyring.count_by_version() == {2: len(users)}
    runtime.keyring.retire_kek(1)
    fresh = DataKeyring(KeyStore(RawDB(runtime.keystore_engine)), runtime.keyring.provider)
    for user, key in keys.items():
        read = fresh.key_for_read(user)
        assert read is not None
        assert read.secret == key.secret


# -- refusing to start with the wrong key file -----------------------------------------------


def test_open_runtime_refuses_when_the_key_file_is_deleted_after_keys_exist(
    runtime: Runtime, settings: Settings
) -> None:
    runtime.keyring.key_for_write("alice")
    key_file = settings.resolved_key_file()
    key_file.unlink()
    with pytest.raises(KeyProviderError, match="does not exist") as excinfo:
        open_runtime(settings)
    assert str(key_file) in str(excinfo.value)
    assert not key_file.exists(), "a new key file would make every memory unreadable"


def test_open_runtime_creates_a_key_file_when_no_keys_exist_yet(
    runtime: Runtime, settings: Settings
) -> None:
    """Control for the refusal above: with an empty key store, a missing key file is a first
    run."""
    key_file = settings.resolved_key_file()
    key_file.unlink()
    fresh = open_runtime(settings)
    try:
        assert key_file.exists()
        assert fresh.keyring.provider.versions() == [1]
    finally:
        fresh.close()


def test_open_runtime_refuses_a_fresh_key_file_missing_the_versions_in_use(
    runtime: Runtime, settings: Settings
) -> None:
    runtime.keyring.key_for_write("alice")
    runtime.keyring.provider.add_version()
    runtime.keyring.rewrap_all()
    runtime.keyring.retire_kek(1)
    key_file = settings.resolved_key_file()
    key_file.unlink()
    LocalKeyFileProvider(key_file, create=True)  # someone "fixes" it with a new key file

    with pytest.raises(KeyProviderError, match=r"KEK version\(s\) \[2\].*wrong key file"):
        open_runtime(settings)


def test_open_runtime_refuses_a_fresh_key_file_with_the_same_version_numbers(
    runtime: Runtime, settings: Settings
) -> None:
    """A new key file also has a version 1, but another key: the numbers match, the keys
    do not, and starting would leave every memory unreadable."""
    runtime.keyring.key_for_write("alice")
    key_file = settings.resolved_key_file()
    key_file.unlink()
    LocalKeyFileProvider(key_file, create=True)

    with pytest.raises(KeyProviderError, match="wrong key file"):
        fresh = open_runtime(settings)
        fresh.close()


def test_a_data_key_that_cannot_be_unwrapped_answers_410_on_read_and_503_on_write(
    app: FastAPI, runtime: Runtime, assistant_token: str
) -> None:
    """A garbled wrapped key is a clear problem response, never a 500, and stores nothing."""
    with TestClient(app, raise_server_exceptions=False) as client:
        memory = write_memory(client, assistant_token, user_id="alice", content="likes figs")
        with runtime.keystore_engine.begin() as conn:
            conn.execute(data_keys.update().values(wrapped=b"\x00" * 60))
        read = read_memory(client, assistant_token, "alice", memory["id"])
        write = client.post(
            "/v1/users/alice/memories",
            params={"purpose": PURPOSE},
            json={"content": "likes dates", "category": "preferences"},
            headers=bearer(assistant_token),
        )
    assert_problem(read, 410, "memory-unreadable")
    assert "likes figs" not in read.text
    assert_problem(write, 503, "keys-unavailable")
    assert list(ciphertexts(runtime)) == [memory["id"]], "the refused write stored nothing"


def test_a_key_file_deleted_while_serving_answers_503_keys_unavailable(
    app: FastAPI, runtime: Runtime, settings: Settings, assistant_token: str
) -> None:
    """Losing the key file is the operator's problem: 503, not 410 (the memory is not gone)
    and not 500; the answer names neither the file nor the content."""
    with TestClient(app, raise_server_exceptions=False) as client:
        memory = write_memory(client, assistant_token, user_id="alice", content="likes figs")
        settings.resolved_key_file().unlink()
        response = read_memory(client, assistant_token, "alice", memory["id"])
    assert_problem(response, 503, "keys-unavailable")
    assert "likes figs" not in response.text
    assert str(settings.resolved_key_file()) not in response.text


# -- crypto-shredding of key-store backups ---------------------------------------------------


@pytest.mark.sqlite_only
def test_a_key_store_backup_from_before_rotation_and_retirement_cannot_be_unwrapped(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    keys = {user: runtime.keyring.key_for_write(user) for user in USERS}
    backup = tmp_path / "keystore-backup.db"
    backup_sqlite(keystore_path(settings), backup)
    with sqlite3.connect(backup) as conn:
        rows = conn.execute("SELECT user_id, kek_version, wrapped FROM data_keys").fetchall()
    assert sorted(row[0] for row in rows) == sorted(USERS)
    provider = runtime.keyring.provider

    provider.add_version()
    runtime.keyring.rewrap_all()
    # Rotated but not yet retired: the old backup still opens (retiring is what shreds it).
    for user_id, version, wrapped in rows:
        assert provider.unwrap(WrappedKey(version, wrapped), user_id) == keys[user_id].secret

    provider.retire_version(1, in_use=lambda: 0)
    for user_id, version, wrapped in rows:
        with pytest.raises((DecryptionError, KeyProviderError)):
            provider.unwrap(WrappedKey(version, wrapped), user_id)
    for user_id in USERS:  # while the live key store still reads
        live = runtime.keyring.key_for_read(user_id)
        assert live is not None
        assert live.secret == keys[user_id].secret

    restored = Settings(
        data_dir=settings.data_dir, log_format="json", keystore_url=f"sqlite:///{backup}"
    )
    with pytest.raises(KeyProviderError, match=r"KEK version\(s\) \[1\]"):
        open_runtime(restored)


def test_a_data_key_wrapped_by_a_kek_retired_meanwhile_is_rewrapped_at_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that read the current KEK version just before a rotation and retirement must
    not leave its new data key wrapped by the destroyed version."""
    keyring = runtime.keyring
    provider = keyring.provider
    provider.add_version()  # v2 is current, and v1 is about to be retired
    real_wrap = provider.wrap
    real_versions = provider.versions
    calls = {"n": 0}

    def wrap_stale_first(dek: bytes, user_id: str) -> WrappedKey:
        # The first wrap is the racing one: labelled v1, as read before the rotation.
        calls["n"] += 1
        return WrappedKey(1, b"stale") if calls["n"] == 1 else real_wrap(dek, user_id)

    monkeypatch.setattr(provider, "wrap", wrap_stale_first)
    monkeypatch.setattr(provider, "versions", lambda: [v for v in real_versions() if v != 1])
    key = keyring.key_for_write("alice")
    assert calls["n"] == 2  # the stale wrap, then the rewrap under the current version
    assert keyring.count_by_version() == {2: 1}
    monkeypatch.undo()
    reread = keyring.key_for_read("alice")
    assert reread is not None and reread.secret == key.secret

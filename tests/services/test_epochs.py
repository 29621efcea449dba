"""KEK epochs: the schedule rotates (every data key rewrapped under a new epoch) and retires
every epoch that wraps nothing live. A forgotten user's data key, copied before the forget
(a backup of the key store, its WAL), opens with no key that exists once the epoch that
wrapped it is retired, at the receipt's `final_at`."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from memory_store.cli import main
from memory_store.config import Settings
from memory_store.domain import Principal, Role
from memory_store.errors import DecryptionError, KeyProviderError
from memory_store.keys.envelope import WrappedKey
from memory_store.runtime import Runtime, open_runtime
from memory_store.schemas import MemoryCreate
from memory_store.services.memories import ListQuery
from memory_store.storage.keystore import KeyStore
from memory_store.storage.rawdb import RawDB
from tests.conftest import PURPOSE

DAY = timedelta(days=1)
ASSISTANT = Principal(token_id="t", name="assistant", role=Role.assistant, user_id=None)


def me(user_id: str) -> Principal:
    return Principal(token_id=f"t-{user_id}", name=user_id, role=Role.user, user_id=user_id)


@pytest.fixture
def scheduled(settings: Settings) -> Iterator[Runtime]:
    """A runtime whose epochs last a day, with memories of alice and bob."""
    runtime = open_runtime(settings.model_copy(update={"kek_rotate_every": DAY.total_seconds()}))
    for user_id in ("alice", "bob"):
        body = MemoryCreate(content=f"{user_id} likes tea", category="preferences")
        runtime.memories.write(ASSISTANT, user_id, PURPOSE, body)
    yield runtime
    runtime.close()


def opens_with_a_key_that_exists(runtime: Runtime, user_id: str, copy: WrappedKey) -> bool:
    """Does any KEK version the provider still has unwrap this copy of a data key?"""
    provider = runtime.keyring.provider
    for version in provider.versions():
        try:
            provider.unwrap(WrappedKey(version, copy.blob), user_id)
        except (DecryptionError, KeyProviderError):
            continue
        return True
    return False


def test_the_schedule_rotates_when_the_epoch_is_due_and_retires_what_wraps_nothing(
    scheduled: Runtime,
) -> None:
    started = scheduled.keys.epoch_started()
    assert scheduled.keys.maintain(started + DAY - timedelta(seconds=1)) is False
    assert [k.version for k in scheduled.keys.status()] == [1]
    assert scheduled.keys.maintain(started + DAY) is True
    assert [(k.version, k.current, k.wraps) for k in scheduled.keys.status()] == [(2, True, 2)]
    assert scheduled.keys.maintain(started + DAY) is False  # the new epoch has just begun
    page = scheduled.memories.list_own(me("bob"), ListQuery())
    assert [m.content for m in page.items] == ["bob likes tea"]
    keys = [(r.action, r.target) for r in scheduled.audit_store.iter_records()]
    assert [k for k in keys if k[0].startswith("key.")] == [
        ("key.rotate", "kek:v2"),
        ("key.retire", "kek:v1"),
    ]


def test_a_forgotten_users_key_copied_before_the_forget_opens_with_nothing_at_final_at(
    scheduled: Runtime, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    keystore = KeyStore(RawDB(scheduled.keystore_engine))
    before = keystore.get("alice")
    assert before is not None
    copy = WrappedKey(before.kek_version, before.wrapped)
    backup = None
    if scheduled.keystore_engine.dialect.name == "sqlite":  # a backup of the whole file
        backup = tmp_path_factory.mktemp("backup") / "keystore.db"
        with sqlite3.connect(settings.data_dir / "keystore.db") as source:
            target = sqlite3.connect(backup)
            source.backup(target)
            target.close()

    receipt = scheduled.rights.forget(me("alice"))
    assert receipt.data_key_destroyed and receipt.final_at is not None
    assert receipt.final_at == scheduled.keys.epoch_started() + DAY
    # Until then the window is real: the copy still opens (this is what final_at says).
    assert opens_with_a_key_that_exists(scheduled, "alice", copy)

    assert scheduled.keys.maintain(receipt.final_at) is True
    assert not opens_with_a_key_that_exists(scheduled, "alice", copy)
    if backup is not None:  # every wrapped key the old file holds: none opens any more
        with sqlite3.connect(backup) as conn:
            rows = conn.execute("SELECT user_id, kek_version, wrapped FROM data_keys").fetchall()
        assert {user for user, _, _ in rows} == {"alice", "bob"}
        for user, version, wrapped in rows:
            assert not opens_with_a_key_that_exists(scheduled, user, WrappedKey(version, wrapped))
    page = scheduled.memories.list_own(me("bob"), ListQuery())
    assert [m.content for m in page.items] == ["bob likes tea"]  # the living are untouched


def test_without_a_schedule_the_receipt_promises_no_date(runtime: Runtime) -> None:
    body = MemoryCreate(content="likes tea", category="preferences")
    runtime.memories.write(ASSISTANT, "alice", PURPOSE, body)
    receipt = runtime.rights.forget(me("alice"))
    assert receipt.data_key_destroyed and receipt.final_at is None
    assert runtime.keys.maintain() is False


def test_keys_retire_without_a_version_destroys_every_epoch_that_wraps_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEMORY_STORE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MEMORY_STORE_RETENTION_SWEEP_SECONDS", "0")
    runtime = open_runtime(settings)
    runtime.memories.write(
        ASSISTANT, "alice", PURPOSE, MemoryCreate(content="x y", category="preferences")
    )
    runtime.close()
    assert main(["keys", "rotate"]) == 0
    assert main(["keys", "rotate"]) == 0
    capsys.readouterr()
    assert main(["keys", "retire"]) == 0
    assert capsys.readouterr().out.strip() == "destroyed KEK v1, KEK v2"
    assert main(["keys", "retire"]) == 0
    assert capsys.readouterr().out.strip() == "destroyed nothing"


def test_the_server_rotates_on_its_own(settings: Settings) -> None:
    """The schedule's thread, with epochs of a second: a rotation happens unasked."""
    fast = settings.model_copy(update={"kek_rotate_every": 1.0})
    runtime = open_runtime(fast)
    try:
        runtime.memories.write(
            ASSISTANT, "alice", PURPOSE, MemoryCreate(content="x y", category="preferences")
        )
        runtime.keys.start()
        deadline = time.monotonic() + 20
        while runtime.keyring.provider.current_version() == 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert runtime.keyring.provider.current_version() >= 2
    finally:
        runtime.close()

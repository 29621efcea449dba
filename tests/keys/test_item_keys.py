"""Per-memory item keys: each memory version sealed under its own key, wrapped under the
user's key in the key store. Forgetting one memory (or a category, or a retention purge)
deletes its item keys and re-issues the user's key, the others rewrapped under the new one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import text

from memory_store.clock import utc_now
from memory_store.domain import Principal, Role
from memory_store.errors import DecryptionError, KeysUnavailable
from memory_store.keys.envelope import UserKey, item_id_of, new_item_key, unwrap_item
from memory_store.keys.keyring import DataKeyring
from memory_store.runtime import Runtime
from memory_store.schemas import MemoryCreate
from memory_store.services.memories import ListQuery
from memory_store.storage.keystore import KeyStore
from memory_store.storage.rawdb import RawDB
from tests.conftest import PURPOSE

ASSISTANT = Principal(token_id="t", name="assistant", role=Role.assistant, user_id=None)


def me(user_id: str) -> Principal:
    return Principal(token_id=f"t-{user_id}", name=user_id, role=Role.user, user_id=user_id)


def remember(runtime: Runtime, user_id: str, content: str, days: int | None = None) -> str:
    expires = utc_now() + timedelta(days=days) if days is not None else None
    body = MemoryCreate(content=content, category="preferences", expires_at=expires)
    return runtime.memories.write(ASSISTANT, user_id, PURPOSE, body).id


def item_rows(runtime: Runtime, user_id: str) -> list[tuple[str, str, int, bytes]]:
    with runtime.keystore_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT memory_id, item_id, version, wrapped FROM item_keys "
                "WHERE user_id = :u ORDER BY memory_id, version"
            ),
            {"u": user_id},
        ).all()
    return [(m, i, int(v), bytes(w)) for m, i, v, w in rows]


def contents(runtime: Runtime, user_id: str) -> list[str]:
    return sorted(m.content for m in runtime.memories.list_own(me(user_id), ListQuery()).items)


def test_each_memory_has_its_own_item_key_named_in_its_ciphertext(runtime: Runtime) -> None:
    ids = [remember(runtime, "alice", f"fact {n}") for n in range(3)]
    rows = item_rows(runtime, "alice")
    assert sorted(m for m, _, _, _ in rows) == sorted(ids)
    with runtime.engine.connect() as conn:
        blobs = dict(conn.execute(text("SELECT id, ciphertext FROM memories")).all())
    assert {m: item_id_of(bytes(blobs[m])) for m in ids} == {m: i for m, i, _, _ in rows}
    assert len({i for _, i, _, _ in rows}) == 3


def test_forgetting_one_memory_deletes_its_key_and_re_issues_the_users_key(
    runtime: Runtime,
) -> None:
    keep, forget = remember(runtime, "alice", "keeps this"), remember(runtime, "alice", "not this")
    bobs = remember(runtime, "bob", "bob's")
    before = runtime.keyring.key_for_read("alice")
    bob_before = item_rows(runtime, "bob")
    assert before is not None and before.issue == 1
    old_rows = item_rows(runtime, "alice")

    runtime.memories.delete_own(me("alice"), forget)

    after = runtime.keyring.key_for_read("alice")
    assert after is not None
    assert (after.key_id, after.issue) == (before.key_id, 2) and after.secret != before.secret
    rows = item_rows(runtime, "alice")
    assert [m for m, _, _, _ in rows] == [keep]
    # The one left was rewrapped: the old secret opens no row the key store holds now...
    (memory_id, item_id, version, wrapped) = rows[0]
    with pytest.raises(DecryptionError):
        unwrap_item(before, memory_id, version, item_id, wrapped)
    assert unwrap_item(after, memory_id, version, item_id, wrapped).item_id == item_id
    # ...while the forgotten one's old row, as a backup holds it, opens with no key left.
    gone_id, gone_item, gone_version, gone_wrapped = next(r for r in old_rows if r[0] == forget)
    with pytest.raises(DecryptionError):
        unwrap_item(after, gone_id, gone_version, gone_item, gone_wrapped)
    assert contents(runtime, "alice") == ["keeps this"]
    assert item_rows(runtime, "bob") == bob_before  # nobody else's keys move
    assert [m.id for m in runtime.memories.list_own(me("bob"), ListQuery()).items] == [bobs]


def test_an_item_key_wrapped_under_an_issue_re_issued_meanwhile_is_wrapped_again(
    runtime: Runtime,
) -> None:
    remember(runtime, "alice", "first")
    other = remember(runtime, "alice", "second")
    stale = runtime.keyring.key_for_read("alice")
    assert stale is not None
    runtime.keyring.forget_items("alice", [other])  # re-issues: `stale` is one issue behind
    item = new_item_key(stale, "mem_new", 1)
    runtime.keyring.store_item_keys(stale, [item])  # as a write racing the forget would
    fresh = runtime.keyring.key_for_read("alice")
    assert fresh is not None and fresh.issue == 2
    stored = {m: (i, v, w) for m, i, v, w in item_rows(runtime, "alice")}
    item_id, version, wrapped = stored["mem_new"]
    assert unwrap_item(fresh, "mem_new", version, item_id, wrapped).secret == item.secret


def test_a_write_racing_the_forgetting_of_its_user_stores_no_key(runtime: Runtime) -> None:
    remember(runtime, "alice", "first")
    stale = runtime.keyring.key_for_read("alice")
    assert stale is not None
    runtime.rights.forget(me("alice"))
    with pytest.raises(KeysUnavailable):
        runtime.keyring.store_item_keys(stale, [new_item_key(stale, "mem_late", 1)])
    assert item_rows(runtime, "alice") == []


def test_forget_items_of_a_user_without_a_key_changes_nothing(runtime: Runtime) -> None:
    assert runtime.keyring.forget_items("nobody", ["mem_x"]) == 0
    assert KeyStore(RawDB(runtime.keystore_engine)).get("nobody") is None


def test_the_retention_purge_deletes_expired_item_keys_and_re_issues_their_owners_keys(
    runtime: Runtime,
) -> None:
    remember(runtime, "alice", "short-lived", days=1)
    remember(runtime, "alice", "long-lived")
    remember(runtime, "bob", "bob's, short-lived", days=1)
    with freeze_time(utc_now() + timedelta(days=2)):
        assert runtime.sweeper.sweep() == 2
    keys = {user: runtime.keyring.key_for_read(user) for user in ("alice", "bob")}
    assert {user: key.issue for user, key in keys.items() if key is not None} == {
        "alice": 2,
        "bob": 2,
    }
    assert len(item_rows(runtime, "alice")) == 1 and item_rows(runtime, "bob") == []
    assert contents(runtime, "alice") == ["long-lived"]


def test_a_write_refused_for_its_quota_leaves_no_item_key(runtime: Runtime) -> None:
    memories = runtime.memories
    memories._max_memories = 1  # type: ignore[attr-defined]
    remember(runtime, "alice", "the one allowed")
    count = runtime.memories._memories.count  # type: ignore[attr-defined]
    runtime.memories._memories.count = lambda user_id: 0  # type: ignore[attr-defined]
    try:  # the early check passes, as under a race; the insert's own count refuses
        with pytest.raises(Exception, match="already has 1 memories"):
            remember(runtime, "alice", "one too many")
    finally:
        runtime.memories._memories.count = count  # type: ignore[attr-defined]
    assert len(item_rows(runtime, "alice")) == 1


def test_the_keyring_hands_out_no_item_key_for_a_ciphertext_of_another_format(
    runtime: Runtime,
) -> None:
    keyring: DataKeyring = runtime.keyring
    user = UserKey("alice", "k", b"\x00" * 32)
    assert keyring.item_keys(user, []).get("mem_x", 1, b"\x02" + b"\x00" * 40) is None


def test_a_purge_skips_a_user_whose_key_will_not_open_and_purges_everyone_else(
    runtime: Runtime,
) -> None:
    remember(runtime, "alice", "short-lived", days=1)
    remember(runtime, "bob", "bob's, short-lived", days=1)
    with runtime.keystore_engine.begin() as conn:  # bob's wrapped key, damaged on disk
        conn.execute(
            text("UPDATE data_keys SET wrapped = :w WHERE user_id = 'bob'"), {"w": b"x" * 60}
        )
    runtime.keyring._forget_cached("bob")  # type: ignore[attr-defined]
    with freeze_time(utc_now() + timedelta(days=2)):
        assert runtime.sweeper.sweep() == 1  # alice's; bob's stays, invisible, for later
    with runtime.engine.connect() as conn:
        left = conn.execute(text("SELECT user_id FROM memories")).scalars().all()
    assert left == ["bob"]
    with pytest.raises(KeysUnavailable):
        runtime.keyring.forget_items("bob", ["mem_x"])

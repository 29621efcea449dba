"""Unit tests of memory_store.keys: content sealing (envelope) and the key file (provider)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_store.errors import DecryptionError, KeyProviderError
from memory_store.keys.envelope import (
    CONTENT_FORMAT,
    ITEM_ID_BYTES,
    KEY_BYTES,
    NONCE_BYTES,
    ItemKey,
    UserKey,
    WrappedKey,
    item_id_of,
    new_data_key,
    new_item_key,
    open_sealed,
    rewrap_items,
    seal,
    unwrap_item,
    wrap_item,
)
from memory_store.keys.provider import LocalKeyFileProvider

MEMORY_ID = b"mem_abc"  # a context: what the payload binds
OPAQUE_MESSAGE = "decryption failed"


def make_key(user_id: str = "alice", key_id: str | None = None) -> UserKey:
    new_id, secret = new_data_key()
    return UserKey(user_id=user_id, key_id=key_id or new_id, secret=secret)


ALICE_USER = make_key("alice")
ALICE = new_item_key(ALICE_USER, "mem_abc", 1)  # the item key contents are sealed under
HEADER = 1 + ITEM_ID_BYTES


def _item(**changes: object) -> ItemKey:
    fields = {
        "user_id": ALICE.user_id,
        "key_id": ALICE.key_id,
        "memory_id": ALICE.memory_id,
        "version": ALICE.version,
        "item_id": ALICE.item_id,
        "secret": ALICE.secret,
    }
    return ItemKey(**{**fields, **changes})  # type: ignore[arg-type]


def write_private(path: Path, text: str) -> None:
    """Write a file the way a key file must be: mode 0600."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


# -- seal / open_sealed ---------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(plaintext=st.binary(max_size=4096), memory_id=st.text(min_size=1, max_size=40))
def test_seal_then_open_returns_the_plaintext_for_any_bytes(
    plaintext: bytes, memory_id: str
) -> None:
    blob = seal(ALICE, plaintext, memory_id.encode())
    assert blob[0] == CONTENT_FORMAT and item_id_of(blob) == ALICE.item_id
    assert len(blob) == HEADER + NONCE_BYTES + len(plaintext) + 16
    assert open_sealed(ALICE, blob, memory_id.encode()) == plaintext


def test_ciphertext_does_not_contain_the_plaintext() -> None:
    plaintext = b"my unmistakable secret sentence " * 4
    blob = seal(ALICE, plaintext, MEMORY_ID)
    assert plaintext not in blob
    assert b"unmistakable" not in blob


def _wrong_contexts() -> dict[str, tuple[ItemKey, bytes]]:
    """The same ciphertext presented under a different binding, one change at a time."""
    return {
        "other context": (ALICE, b"mem_other"),
        "other user id": (_item(user_id="bob"), MEMORY_ID),
        "other key id": (_item(key_id="0123456789abcdef"), MEMORY_ID),
        "other item id": (_item(item_id="00" * ITEM_ID_BYTES), MEMORY_ID),
        "other key": (_item(secret=secrets.token_bytes(KEY_BYTES)), MEMORY_ID),
    }


@pytest.mark.parametrize("context", sorted(_wrong_contexts()))
def test_ciphertext_opens_only_in_the_context_it_was_sealed_for(context: str) -> None:
    """Associated data binds the key's user and id and the context: moving a ciphertext makes
    it fail."""
    blob = seal(ALICE, b"prefers window seats", MEMORY_ID)
    key, memory_id = _wrong_contexts()[context]
    with pytest.raises(DecryptionError) as excinfo:
        open_sealed(key, blob, memory_id)
    assert type(excinfo.value) is DecryptionError
    assert str(excinfo.value) == OPAQUE_MESSAGE
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__


def test_every_decryption_failure_raises_the_same_message_naming_nothing() -> None:
    """The error carries no hint of which binding failed, nor any id or content."""
    blob = seal(ALICE, b"prefers window seats", MEMORY_ID)
    messages = set()
    for key, memory_id in _wrong_contexts().values():
        with pytest.raises(DecryptionError) as excinfo:
            open_sealed(key, blob, memory_id)
        messages.add((str(excinfo.value), excinfo.value.args))
    with pytest.raises(DecryptionError) as excinfo:
        open_sealed(ALICE, b"", MEMORY_ID)
    messages.add((str(excinfo.value), excinfo.value.args))
    assert messages == {(OPAQUE_MESSAGE, (OPAQUE_MESSAGE,))}
    for word in ("alice", "bob", "mem_", "window", "tag", "nonce", "key", "user"):
        assert word not in OPAQUE_MESSAGE


@settings(max_examples=80, deadline=None)
@given(plaintext=st.binary(max_size=256), data=st.data())
def test_any_single_flipped_byte_makes_the_ciphertext_fail(
    plaintext: bytes, data: st.DataObject
) -> None:
    blob = seal(ALICE, plaintext, MEMORY_ID)
    index = data.draw(st.integers(min_value=0, max_value=len(blob) - 1), label="index")
    mask = data.draw(st.integers(min_value=1, max_value=255), label="mask")
    tampered = bytearray(blob)
    tampered[index] ^= mask
    with pytest.raises(DecryptionError, match=f"^{OPAQUE_MESSAGE}$"):
        open_sealed(ALICE, bytes(tampered), MEMORY_ID)


@settings(max_examples=80, deadline=None)
@given(plaintext=st.binary(max_size=256), data=st.data())
def test_any_truncation_makes_the_ciphertext_fail(plaintext: bytes, data: st.DataObject) -> None:
    blob = seal(ALICE, plaintext, MEMORY_ID)
    cut = data.draw(st.integers(min_value=0, max_value=len(blob) - 1), label="kept bytes")
    with pytest.raises(DecryptionError, match=f"^{OPAQUE_MESSAGE}$"):
        open_sealed(ALICE, blob[:cut], MEMORY_ID)


@settings(max_examples=40, deadline=None)
@given(plaintext=st.binary(max_size=256), extra=st.binary(min_size=1, max_size=32))
def test_appended_bytes_make_the_ciphertext_fail(plaintext: bytes, extra: bytes) -> None:
    blob = seal(ALICE, plaintext, MEMORY_ID)
    with pytest.raises(DecryptionError):
        open_sealed(ALICE, blob + extra, MEMORY_ID)


def test_two_seals_of_the_same_plaintext_use_different_nonces() -> None:
    first = seal(ALICE, b"same words", MEMORY_ID)
    second = seal(ALICE, b"same words", MEMORY_ID)
    assert first[HEADER : HEADER + NONCE_BYTES] != second[HEADER : HEADER + NONCE_BYTES]
    assert first != second
    assert open_sealed(ALICE, first, MEMORY_ID) == open_sealed(ALICE, second, MEMORY_ID)


# -- item keys, wrapped under the user's key ---------------------------------------------------


def test_an_item_key_unwraps_only_as_its_own_memory_and_version_under_its_users_key() -> None:
    wrapped = wrap_item(ALICE_USER, ALICE)
    opened = unwrap_item(ALICE_USER, "mem_abc", 1, ALICE.item_id, wrapped)
    assert opened.secret == ALICE.secret
    other_user_key = make_key("alice", key_id=ALICE_USER.key_id)  # a re-issued secret
    wrong = {
        "other memory": (ALICE_USER, "mem_xyz", 1),
        "other version": (ALICE_USER, "mem_abc", 2),
        "other secret of the user's key": (other_user_key, "mem_abc", 1),
        "other user": (UserKey("bob", ALICE_USER.key_id, ALICE_USER.secret), "mem_abc", 1),
    }
    for case, (user, memory_id, version) in wrong.items():
        with pytest.raises(DecryptionError):
            unwrap_item(user, memory_id, version, ALICE.item_id, wrapped)
            pytest.fail(case)
    assert ALICE.secret not in wrapped


@settings(max_examples=40, deadline=None)
@given(
    bound=st.lists(
        st.tuples(st.text(min_size=1, max_size=30), st.integers(min_value=1, max_value=10**6)),
        min_size=1,
        max_size=8,
    )
)
def test_a_batch_rewrap_opens_under_the_next_issue_each_key_that_opened_under_the_last(
    bound: list[tuple[str, int]],
) -> None:
    """A re-issue's batch: each item key that opens under the old secret comes out wrapped
    under the new one, for its own memory and version only, with a nonce of its own; one
    that does not open (altered) comes out as None, and its neighbours are unaffected."""
    old = ALICE_USER
    new = make_key("alice", key_id=old.key_id)
    items = [new_item_key(old, memory_id, version) for memory_id, version in bound]
    wrapped = [wrap_item(old, item) for item in items]
    altered = len(items) // 2
    wrapped[altered] = wrapped[altered][:-1] + bytes([wrapped[altered][-1] ^ 1])
    batch = [(i.memory_id, i.version, w) for i, w in zip(items, wrapped, strict=True)]

    rewrapped = rewrap_items(old, new, batch)

    assert rewrapped[altered] is None
    for n, (item, again) in enumerate(zip(items, rewrapped, strict=True)):
        if n == altered:
            continue
        assert again is not None
        opened = unwrap_item(new, item.memory_id, item.version, item.item_id, again)
        assert opened.secret == item.secret
        with pytest.raises(DecryptionError):
            unwrap_item(old, item.memory_id, item.version, item.item_id, again)
        with pytest.raises(DecryptionError):
            unwrap_item(new, item.memory_id, item.version + 1, item.item_id, again)
    nonces = [w[:NONCE_BYTES] for w in rewrapped if w is not None]
    assert len(set(nonces)) == len(nonces)


def test_repr_of_an_item_key_never_shows_its_bytes() -> None:
    for rendering in _renderings(ALICE.secret):
        assert rendering not in repr(ALICE)


def _renderings(secret: bytes) -> list[str]:
    return [
        secret.hex(),
        repr(secret),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode(),
    ]


def test_repr_and_str_of_a_user_key_never_show_its_bytes() -> None:
    key = make_key("alice")
    for shown in (repr(key), str(key), f"{key}", repr([key])):
        assert "alice" in shown  # the rendering is useful...
        for rendering in _renderings(key.secret):
            assert rendering not in shown  # ...but holds no key material


def test_repr_and_str_of_a_wrapped_key_never_show_its_bytes(tmp_path: Path) -> None:
    provider = LocalKeyFileProvider(tmp_path / "kek.json", create=True)
    dek = secrets.token_bytes(KEY_BYTES)
    wrapped = provider.wrap(dek, "alice")
    for shown in (repr(wrapped), str(wrapped)):
        assert "kek_version=1" in shown
        for rendering in [*_renderings(wrapped.blob), *_renderings(dek)]:
            assert rendering not in shown


def test_repr_of_the_key_file_provider_shows_no_kek(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    provider = LocalKeyFileProvider(path, create=True)
    document = json.loads(path.read_text())
    for encoded in document["keys"].values():
        assert encoded not in repr(provider)
        assert encoded not in str(provider)


# -- LocalKeyFileProvider -------------------------------------------------------------------


def test_first_run_creates_the_key_file_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "state" / "kek.json"
    provider = LocalKeyFileProvider(path, create=True)
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["format"] == "memory-store-kek/1"
    assert document["current"] == 1
    assert len(base64.b64decode(document["keys"]["1"])) == KEY_BYTES
    assert provider.current_version() == 1
    assert provider.versions() == [1]
    assert not list(path.parent.glob(".*.tmp")), "no temporary file is left behind"


def test_a_second_first_run_keeps_the_existing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    LocalKeyFileProvider(path, create=True)
    before = path.read_bytes()
    LocalKeyFileProvider(path, create=True)
    assert path.read_bytes() == before


def test_wrap_then_unwrap_returns_the_data_key(tmp_path: Path) -> None:
    provider = LocalKeyFileProvider(tmp_path / "kek.json", create=True)
    dek = secrets.token_bytes(KEY_BYTES)
    wrapped = provider.wrap(dek, "alice")
    assert wrapped.kek_version == 1
    assert dek not in wrapped.blob
    assert provider.unwrap(wrapped, "alice") == dek


def test_a_wrapped_data_key_cannot_be_unwrapped_for_another_user(tmp_path: Path) -> None:
    provider = LocalKeyFileProvider(tmp_path / "kek.json", create=True)
    wrapped = provider.wrap(secrets.token_bytes(KEY_BYTES), "alice")
    with pytest.raises(DecryptionError, match=f"^{OPAQUE_MESSAGE}$"):
        provider.unwrap(wrapped, "bob")


def test_a_wrapped_data_key_claiming_another_kek_version_fails(tmp_path: Path) -> None:
    """The KEK version is bound too: relabelling a wrap as version 2 does not open it."""
    provider = LocalKeyFileProvider(tmp_path / "kek.json", create=True)
    wrapped = provider.wrap(secrets.token_bytes(KEY_BYTES), "alice")
    provider.add_version()
    with pytest.raises(DecryptionError):
        provider.unwrap(WrappedKey(2, wrapped.blob), "alice")


@pytest.mark.parametrize(
    "blob", [b"", b"short", bytes(range(60))], ids=["empty", "short", "random-60"]
)
def test_a_garbled_wrapped_key_fails_with_the_opaque_error(tmp_path: Path, blob: bytes) -> None:
    provider = LocalKeyFileProvider(tmp_path / "kek.json", create=True)
    with pytest.raises(DecryptionError, match=f"^{OPAQUE_MESSAGE}$"):
        provider.unwrap(WrappedKey(1, blob), "alice")


def test_a_missing_key_file_is_refused_unless_creating(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    with pytest.raises(KeyProviderError, match="does not exist"):
        LocalKeyFileProvider(path, create=False)
    assert not path.exists(), "refusing must not create a key file"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_readable_by_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "kek.json"
    LocalKeyFileProvider(path, create=True)
    path.chmod(mode)
    with pytest.raises(KeyProviderError, match="chmod 600") as excinfo:
        LocalKeyFileProvider(path, create=False)
    assert f"{mode:o}" in str(excinfo.value)


def _valid_document() -> dict[str, object]:
    return {
        "format": "memory-store-kek/1",
        "current": 1,
        "keys": {"1": base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()},
    }


BAD_KEY_FILES: dict[str, str] = {
    "corrupt json": '{"format": "memory-store-kek/1", "current": ',
    "empty file": "",
    "not an object": json.dumps([1, 2, 3]),
    "wrong format": json.dumps({**_valid_document(), "format": "some-other-tool/7"}),
    "no format": json.dumps({k: v for k, v in _valid_document().items() if k != "format"}),
    "no keys": json.dumps({k: v for k, v in _valid_document().items() if k != "keys"}),
    "current not a key": json.dumps({**_valid_document(), "current": 2}),
    "key not base64": json.dumps({**_valid_document(), "keys": {"1": "not base64 !!"}}),
    "key too short": json.dumps(
        {**_valid_document(), "keys": {"1": base64.b64encode(b"short").decode()}}
    ),
    "version not a number": json.dumps(
        {**_valid_document(), "keys": {"one": base64.b64encode(bytes(32)).decode()}}
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_KEY_FILES))
def test_a_corrupt_or_foreign_key_file_is_refused(tmp_path: Path, case: str) -> None:
    path = tmp_path / "kek.json"
    write_private(path, BAD_KEY_FILES[case])
    with pytest.raises(KeyProviderError, match="is not a valid key file"):
        LocalKeyFileProvider(path, create=True)
    assert path.read_text() == BAD_KEY_FILES[case], "a bad key file is never overwritten"


def test_the_valid_document_used_above_is_accepted(tmp_path: Path) -> None:
    """Control for the corrupt-file cases: only their one defect makes them fail."""
    path = tmp_path / "kek.json"
    write_private(path, json.dumps(_valid_document()))
    assert LocalKeyFileProvider(path, create=False).versions() == [1]


def test_add_version_makes_a_new_current_version_and_old_wraps_still_unwrap(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kek.json"
    provider = LocalKeyFileProvider(path, create=True)
    old_dek = secrets.token_bytes(KEY_BYTES)
    old_wrap = provider.wrap(old_dek, "alice")

    assert provider.add_version() == 2
    assert provider.current_version() == 2
    assert provider.versions() == [1, 2]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    new_dek = secrets.token_bytes(KEY_BYTES)
    new_wrap = provider.wrap(new_dek, "alice")
    assert new_wrap.kek_version == 2
    assert provider.unwrap(old_wrap, "alice") == old_dek
    assert provider.unwrap(new_wrap, "alice") == new_dek


def test_retiring_the_current_version_is_refused(tmp_path: Path) -> None:
    provider = LocalKeyFileProvider(tmp_path / "kek.json", create=True)
    provider.add_version()
    with pytest.raises(KeyProviderError, match="current KEK version cannot be retired"):
        provider.retire_version(2, in_use=lambda: 0)
    assert provider.versions() == [1, 2]
    assert provider.current_version() == 2


def test_retiring_an_unknown_version_is_refused(tmp_path: Path) -> None:
    provider = LocalKeyFileProvider(tmp_path / "kek.json", create=True)
    provider.add_version()
    with pytest.raises(KeyProviderError, match="not in the key file"):
        provider.retire_version(7, in_use=lambda: 0)
    assert provider.versions() == [1, 2]


def test_retiring_an_old_version_destroys_it_so_its_wraps_no_longer_open(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    provider = LocalKeyFileProvider(path, create=True)
    old_wrap = provider.wrap(secrets.token_bytes(KEY_BYTES), "alice")
    old_encoded = json.loads(path.read_text())["keys"]["1"]
    provider.add_version()
    provider.retire_version(1, in_use=lambda: 0)
    assert provider.versions() == [2]
    assert old_encoded not in path.read_text()
    with pytest.raises((DecryptionError, KeyProviderError)):
        provider.unwrap(old_wrap, "alice")


def test_a_second_provider_on_the_same_file_sees_changes_made_by_the_first(
    tmp_path: Path,
) -> None:
    """Each provider re-reads the key file when it changes (a CLI rotation reaches a server)."""
    path = tmp_path / "kek.json"
    cli = LocalKeyFileProvider(path, create=True)
    server = LocalKeyFileProvider(path, create=False)
    dek = secrets.token_bytes(KEY_BYTES)
    assert server.current_version() == 1

    cli.add_version()
    assert server.current_version() == 2
    assert server.versions() == [1, 2]
    wrapped_by_server = server.wrap(dek, "alice")
    assert wrapped_by_server.kek_version == 2
    assert cli.unwrap(wrapped_by_server, "alice") == dek

    old_wrap = cli.wrap(dek, "bob")  # under v2 now
    cli.add_version()
    cli.retire_version(1, in_use=lambda: 0)
    assert server.versions() == [2, 3]
    assert server.unwrap(old_wrap, "bob") == dek


def test_a_provider_in_use_refuses_once_the_key_file_becomes_group_readable(
    tmp_path: Path,
) -> None:
    """The mode is checked again when it changes on disk, not only at start."""
    path = tmp_path / "kek.json"
    provider = LocalKeyFileProvider(path, create=True)
    wrapped = provider.wrap(secrets.token_bytes(KEY_BYTES), "alice")
    path.chmod(0o644)
    with pytest.raises(KeyProviderError, match="chmod 600"):
        provider.current_version()
    with pytest.raises(KeyProviderError):
        provider.unwrap(wrapped, "alice")
    path.chmod(0o600)
    assert provider.current_version() == 1

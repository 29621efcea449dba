"""The PKCS#11 key provider against SoftHSM2: KEKs that never leave the token, data keys
wrapped and unwrapped inside it, versions added and destroyed; and the whole service on it.
Skips, saying why, where SoftHSM2 or python-pkcs11 is not installed."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from memory_store.config import Settings
from memory_store.domain import Principal, Role
from memory_store.errors import DecryptionError, KeyProviderError
from memory_store.keys.envelope import WrappedKey
from memory_store.runtime import open_runtime
from memory_store.schemas import MemoryCreate
from memory_store.services.memories import ListQuery
from memory_store.storage.keystore import KeyStore
from memory_store.storage.rawdb import RawDB
from tests.conftest import PURPOSE
from tests.keys.conftest import MODULE, PIN


@pytest.fixture
def provider(token: str) -> Iterator[Any]:
    from memory_store.keys.pkcs11_provider import Pkcs11KeyProvider  # noqa: PLC0415

    opened = Pkcs11KeyProvider(MODULE, token, PIN, create=True)
    yield opened
    opened.close()


def test_a_data_key_wrapped_in_the_token_unwraps_only_for_its_user(provider: Any) -> None:
    dek = secrets.token_bytes(32)
    wrapped = provider.wrap(dek, "alice")
    assert wrapped.kek_version == 1 and dek not in wrapped.blob
    assert provider.unwrap(wrapped, "alice") == dek
    with pytest.raises(DecryptionError):
        provider.unwrap(wrapped, "bob")  # a wrapped key moved to another user
    with pytest.raises(DecryptionError):
        provider.unwrap(WrappedKey(1, wrapped.blob[:-1] + bytes([wrapped.blob[-1] ^ 1])), "alice")


def test_the_kek_cannot_be_read_or_wrapped_out_of_the_token(provider: Any) -> None:
    import pkcs11  # noqa: PLC0415

    kek = provider._objects()[1]
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        _ = kek[pkcs11.Attribute.VALUE]
    assert kek[pkcs11.Attribute.EXTRACTABLE] is False
    other = provider._session.generate_key(
        pkcs11.KeyType.AES, 256, template={pkcs11.Attribute.WRAP: True}
    )
    with pytest.raises(pkcs11.exceptions.KeyUnextractable):
        other.wrap_key(kek, mechanism=pkcs11.Mechanism.AES_KEY_WRAP_PAD)


def test_versions_are_added_and_destroyed_in_the_token(provider: Any) -> None:
    dek = secrets.token_bytes(32)
    old = provider.wrap(dek, "alice")
    assert provider.add_version() == 2
    assert provider.versions() == [1, 2] and provider.current_version() == 2
    assert provider.wrap(dek, "alice").kek_version == 2
    assert provider.unwrap(old, "alice") == dek  # older versions stay until retired
    with pytest.raises(KeyProviderError, match="still wraps 1"):
        provider.retire_version(1, in_use=lambda: 1)
    with pytest.raises(KeyProviderError, match="current"):
        provider.retire_version(2, in_use=lambda: 0)
    provider.retire_version(1, in_use=lambda: 0)
    assert provider.versions() == [2]
    with pytest.raises(KeyProviderError):
        provider.unwrap(old, "alice")  # gone with its object: nothing opens it any more


def test_a_token_without_a_kek_is_refused_unless_the_store_is_new(token: str) -> None:
    from memory_store.keys.pkcs11_provider import Pkcs11KeyProvider  # noqa: PLC0415

    with pytest.raises(KeyProviderError, match="holds no memory-store KEK"):
        Pkcs11KeyProvider(MODULE, token, PIN, create=False)
    with pytest.raises(KeyProviderError, match="cannot be opened"):
        Pkcs11KeyProvider(MODULE, token, "wrong-pin", create=True)


def test_the_service_runs_on_the_token_rotates_retires_and_forgets(
    token: str, tmp_path: Path, settings: Settings
) -> None:
    hsm = settings.model_copy(
        update={
            "key_provider": "pkcs11",
            "pkcs11_module": MODULE,
            "pkcs11_token_label": token,
            "pkcs11_pin": SecretStr(PIN),
        }
    )
    assistant = Principal(token_id="t", name="a", role=Role.assistant, user_id=None)
    runtime = open_runtime(hsm)
    try:
        for user in ("alice", "bob"):
            body = MemoryCreate(content=f"{user} likes tea", category="preferences")
            runtime.memories.write(assistant, user, PURPOSE, body)
        assert not (hsm.data_dir / "kek.json").exists()  # no key beside the data
        report = runtime.keys.rotate()
        assert (report.kek_version, report.rewrapped, report.failed) == (2, 2, 0)
        runtime.keys.retire(1)
        assert [k.version for k in runtime.keys.status()] == [2]
        alice = Principal(token_id="u", name="alice", role=Role.user, user_id="alice")
        receipt = runtime.rights.forget(alice)
        assert receipt.data_key_destroyed
    finally:
        runtime.close()
    reopened = open_runtime(hsm)  # a restart finds its KEK in the token
    try:
        page = reopened.memories.list_own(
            Principal(token_id="b", name="bob", role=Role.user, user_id="bob"),
            ListQuery(),
        )
        assert [m.content for m in page.items] == ["bob likes tea"]
    finally:
        reopened.close()


def test_missing_pkcs11_settings_are_named(settings: Settings) -> None:
    with pytest.raises(KeyProviderError, match="MEMORY_STORE_PKCS11_MODULE"):
        open_runtime(settings.model_copy(update={"key_provider": "pkcs11"}))


def test_on_the_token_a_forgotten_users_copied_key_opens_with_nothing_at_final_at(
    token: str, settings: Settings
) -> None:
    hsm = settings.model_copy(
        update={
            "key_provider": "pkcs11",
            "pkcs11_module": MODULE,
            "pkcs11_token_label": token,
            "pkcs11_pin": SecretStr(PIN),
            "kek_rotate_every": 86_400.0,
        }
    )
    assistant = Principal(token_id="t", name="a", role=Role.assistant, user_id=None)
    runtime = open_runtime(hsm)
    try:
        body = MemoryCreate(content="alice likes tea", category="preferences")
        runtime.memories.write(assistant, "alice", PURPOSE, body)
        stored = KeyStore(RawDB(runtime.keystore_engine)).get("alice")
        assert stored is not None
        copy = WrappedKey(stored.kek_version, stored.wrapped)
        alice = Principal(token_id="u", name="alice", role=Role.user, user_id="alice")
        receipt = runtime.rights.forget(alice)
        assert receipt.final_at is not None
        provider = runtime.keyring.provider
        assert provider.unwrap(copy, "alice")  # the window before final_at is real
        assert runtime.keys.maintain(receipt.final_at) is True
        for version in provider.versions():
            with pytest.raises((DecryptionError, KeyProviderError)):
                provider.unwrap(WrappedKey(version, copy.blob), "alice")
    finally:
        runtime.close()

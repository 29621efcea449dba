"""The Ed25519 signing key file and public key parsing (audit/signing.py)."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import audit.signing
from audit.signing import SigningKey, key_id, load_public_key
from tests.audit.helpers import AT


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_load_or_create_writes_a_0600_pkcs8_pem_ed25519_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.pem"
    key = SigningKey.load_or_create(path, create=True)
    assert path.is_file()
    assert _mode(path) == 0o600
    pem = path.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert isinstance(serialization.load_pem_private_key(pem, password=None), Ed25519PrivateKey)
    assert len(key.key_id) == 16
    assert key.key_id == key_id(key.public_key)
    assert "PRIVATE" not in repr(key)
    assert key.key_id in repr(key)


def test_load_or_create_creates_a_missing_parent_dir_private_to_the_owner(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "audit.pem"
    SigningKey.load_or_create(path, create=True)
    assert _mode(path.parent) & 0o077 == 0


def test_load_or_create_loads_the_same_key_again(tmp_path: Path) -> None:
    path = tmp_path / "audit.pem"
    first = SigningKey.load_or_create(path, create=True)
    pem = path.read_bytes()
    again = SigningKey.load_or_create(path, create=True)
    loaded = SigningKey.load_or_create(path, create=False)
    assert again.key_id == loaded.key_id == first.key_id
    assert path.read_bytes() == pem  # not regenerated
    checkpoint = loaded.sign(seq=1, hash="ab" * 32, at=AT)
    assert checkpoint.verify(first.public_key)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o610])
def test_load_or_create_refuses_a_key_file_group_or_other_can_access(
    tmp_path: Path, mode: int
) -> None:
    path = tmp_path / "audit.pem"
    SigningKey.load_or_create(path, create=True)
    path.chmod(mode)
    with pytest.raises(PermissionError, match="chmod 600"):
        SigningKey.load_or_create(path, create=False)
    with pytest.raises(PermissionError):
        SigningKey.load_or_create(path, create=True)


def test_load_or_create_without_create_refuses_a_missing_key_and_creates_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sub" / "audit.pem"
    with pytest.raises(FileNotFoundError):
        SigningKey.load_or_create(path, create=False)
    assert not path.exists()
    assert not path.parent.exists()


def test_load_or_create_refuses_a_key_file_that_is_not_ed25519(tmp_path: Path) -> None:
    path = tmp_path / "audit.pem"
    other = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    with pytest.raises(ValueError, match="not an Ed25519"):
        SigningKey.load_or_create(path, create=False)


def test_a_creator_that_loses_the_create_race_uses_the_winners_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic interleaving: process B sees no file, then A creates and writes its key
    before B's exclusive create; B must end up with A's key and leave A's file alone."""
    path = tmp_path / "audit.pem"
    real_open = os.open
    winner: list[SigningKey] = []

    def open_after_the_other_creator(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        # the first exclusive create in the key's directory (the key file, or a temp file)
        if Path(file).parent == path.parent and flags & os.O_EXCL and not winner:
            monkeypatch.setattr(audit.signing.os, "open", real_open)
            winner.append(SigningKey.load_or_create(path, create=True))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(audit.signing.os, "open", open_after_the_other_creator)
    loser = SigningKey.load_or_create(path, create=True)
    assert winner, "the interleaving was not exercised"
    assert loser.key_id == winner[0].key_id
    assert SigningKey.load_or_create(path, create=False).key_id == winner[0].key_id
    assert _mode(path) == 0o600


def test_two_concurrent_creators_end_with_one_key_even_while_the_first_is_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first creator is slowed between creating the file and writing it (as a busy disk
    would); the second must still end with the first's key, not an error."""
    path = tmp_path / "audit.pem"
    real_fdopen = os.fdopen
    first_created = threading.Event()

    def slow_fdopen(*args: Any, **kwargs: Any) -> Any:
        first_created.set()
        time.sleep(0.2)
        return real_fdopen(*args, **kwargs)

    monkeypatch.setattr(audit.signing.os, "fdopen", slow_fdopen)
    results: dict[str, Any] = {}

    def create(name: str) -> None:
        try:
            results[name] = SigningKey.load_or_create(path, create=True).key_id
        except Exception as exc:  # reported by the assertion below
            results[name] = exc

    first = threading.Thread(target=create, args=("first",))
    first.start()
    assert first_created.wait(5)
    second = threading.Thread(target=create, args=("second",))
    second.start()
    first.join(5)
    second.join(5)
    assert isinstance(results["first"], str)
    assert results["second"] == results["first"]


def test_public_pem_round_trips_through_load_public_key() -> None:
    key = SigningKey(Ed25519PrivateKey.generate())
    pem = key.public_pem()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    loaded = load_public_key(pem)
    assert key_id(loaded) == key.key_id
    assert key.sign(seq=7, hash="cd" * 32, at=AT).verify(loaded)
    other = SigningKey(Ed25519PrivateKey.generate())
    assert not other.sign(seq=7, hash="cd" * 32, at=AT).verify(loaded)


def _public_pem(private_key: Any) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: rsa.generate_private_key(65537, 2048), id="rsa"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), id="ec-p256"),
        pytest.param(x25519.X25519PrivateKey.generate, id="x25519"),
        pytest.param(ed448.Ed448PrivateKey.generate, id="ed448"),
    ],
)
def test_load_public_key_rejects_a_key_that_is_not_ed25519(make: Any) -> None:
    with pytest.raises(ValueError, match="not an Ed25519"):
        load_public_key(_public_pem(make()))


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"not a key",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    ],
    ids=["empty", "text", "bad-body", "private-key"],
)
def test_load_public_key_rejects_garbage_with_value_error(pem: bytes) -> None:
    with pytest.raises(ValueError):
        load_public_key(pem)


def test_a_derived_secret_is_stable_per_use_and_differs_between_uses(tmp_path: Path) -> None:
    key = SigningKey.load_or_create(tmp_path / "signing.key", create=True)
    again = SigningKey.load_or_create(tmp_path / "signing.key", create=False)
    other = SigningKey.load_or_create(tmp_path / "other.key", create=True)
    first = key.derive_secret(b"use/1")
    assert len(first) == 32
    assert first == again.derive_secret(b"use/1")
    assert first != key.derive_secret(b"use/2")
    assert first != other.derive_secret(b"use/1")

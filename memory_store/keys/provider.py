"""Key providers: where the key-encryption keys (KEKs) live. A local key file by default; a
cloud KMS or an HSM implements the same KeyProvider protocol."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from memory_store.clock import utc_now
from memory_store.errors import DecryptionError, KeyProviderError
from memory_store.keys.envelope import KEY_BYTES, NONCE_BYTES, WrappedKey

_KEY_FILE_FORMAT = "memory-store-kek/1"


class KeyProvider(Protocol):
    """Holds the key-encryption keys. Implement this for a cloud KMS or an HSM."""

    def current_version(self) -> int: ...

    def versions(self) -> list[int]: ...

    def wrap(self, dek: bytes, user_id: str) -> WrappedKey: ...

    def unwrap(self, wrapped: WrappedKey, user_id: str) -> bytes: ...

    def add_version(self) -> int: ...

    def retire_version(self, version: int, in_use: Callable[[], int]) -> None: ...

    def close(self) -> None: ...


def _wrap_aad(user_id: str, kek_version: int) -> bytes:
    return b"memory-store/dek/1\x00" + user_id.encode() + b"\x00" + str(kek_version).encode()


class LocalKeyFileProvider:
    """KEKs in a JSON file (mode 0600) outside the database.

    The file holds every KEK version not yet retired and which one is current. The file is
    re-read when it changes on disk, so `memory-store keys rotate` run beside a live server
    takes effect there without a restart.
    """

    def __init__(self, path: Path, *, create: bool) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int, int] | None = None
        self._keys: dict[int, bytes] = {}
        self._current = 0
        if not path.exists():
            if not create:
                raise KeyProviderError(f"key file {path} does not exist")
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._write({1: secrets.token_bytes(KEY_BYTES)}, current=1, exclusive=True)
        self._reload(force=True)

    @property
    def path(self) -> Path:
        return self._path

    # -- reading -------------------------------------------------------------------------

    def _reload(self, *, force: bool = False) -> None:
        try:
            st = self._path.stat()
        except OSError as exc:
            raise KeyProviderError(
                f"key file {self._path} cannot be read: {exc.strerror}"
            ) from None
        signature = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)
        if not force and signature == self._signature:
            return
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyProviderError(
                f"key file {self._path} is accessible to group or others "
                f"(mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 {self._path}"
            )
        try:
            document = json.loads(self._path.read_text())
            if document.get("format") != _KEY_FILE_FORMAT:
                raise ValueError("unknown format")
            keys = {int(v): base64.b64decode(k, validate=True) for v, k in document["keys"].items()}
            current = int(document["current"])
            if current not in keys or any(len(k) != KEY_BYTES for k in keys.values()):
                raise ValueError("inconsistent keys")
        except OSError as exc:
            raise KeyProviderError(
                f"key file {self._path} cannot be read: {exc.strerror}"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeyProviderError(f"key file {self._path} is not a valid key file") from None
        self._keys, self._current, self._signature = keys, current, signature

    def _key(self, version: int) -> bytes:
        with self._lock:
            self._reload()
            key = self._keys.get(version)
        if key is None:
            raise KeyProviderError(f"KEK version {version} is not in the key file")
        return key

    def current_version(self) -> int:
        with self._lock:
            self._reload()
            return self._current

    def versions(self) -> list[int]:
        with self._lock:
            self._reload()
            return sorted(self._keys)

    def wrap(self, dek: bytes, user_id: str) -> WrappedKey:
        version = self.current_version()
        nonce = secrets.token_bytes(NONCE_BYTES)
        ct = AESGCM(self._key(version)).encrypt(nonce, dek, _wrap_aad(user_id, version))
        return WrappedKey(version, nonce + ct)

    def unwrap(self, wrapped: WrappedKey, user_id: str) -> bytes:
        key = self._key(wrapped.kek_version)  # KeyProviderError: the service cannot answer
        try:
            nonce, body = wrapped.blob[:NONCE_BYTES], wrapped.blob[NONCE_BYTES:]
            return AESGCM(key).decrypt(nonce, body, _wrap_aad(user_id, wrapped.kek_version))
        except (InvalidTag, ValueError):
            raise DecryptionError from None

    # -- changing (the CLI's job) -------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        lock_path = self._path.with_name(self._path.name + ".lock")
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def add_version(self) -> int:
        """Create a new KEK version and make it current. Older versions stay until retired."""
        with self._exclusive(), self._lock:
            self._reload(force=True)
            keys = dict(self._keys)
            version = max(keys) + 1
            keys[version] = secrets.token_bytes(KEY_BYTES)
            self._write(keys, current=version)
            self._reload(force=True)
            return version

    def retire_version(self, version: int, in_use: Callable[[], int]) -> None:
        """Destroy an old KEK version. `in_use` counts the data keys it still wraps; it is
        asked under the file lock, and a count above zero refuses the retirement."""
        with self._exclusive(), self._lock:
            self._reload(force=True)
            if version == self._current:
                raise KeyProviderError("the current KEK version cannot be retired")
            if version not in self._keys:
                raise KeyProviderError(f"KEK version {version} is not in the key file")
            still = in_use()
            if still:
                raise KeyProviderError(
                    f"KEK version {version} still wraps {still} data key(s); "
                    "run `memory-store keys rotate` first"
                )
            keys = {v: k for v, k in self._keys.items() if v != version}
            self._write(keys, current=self._current)
            self._reload(force=True)

    def close(self) -> None:
        """Nothing to release: the file is read when it changes."""

    def _write(self, keys: dict[int, bytes], *, current: int, exclusive: bool = False) -> None:
        document = {
            "format": _KEY_FILE_FORMAT,
            "current": current,
            "keys": {str(v): base64.b64encode(k).decode() for v, k in sorted(keys.items())},
            "written_at": utc_now().isoformat(),
        }
        data = json.dumps(document, indent=2).encode()
        tmp = self._path.with_name(f".{self._path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            # First run: never overwrite a key file another process created meanwhile.
            try:
                os.link(tmp, self._path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        else:
            tmp.replace(self._path)
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

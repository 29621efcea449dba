"""Each user's data key: created on first write, unwrapped (and cached) for reads, rewrapped
when the KEK rotates, destroyed when the user is forgotten (crypto-shredding).

The wrapped keys live in the key store (storage/keystore.py), a database apart from the
memories, so that a backup of the memory data holds no key, and destroying a user's row there
leaves every remaining copy of their ciphertexts unreadable.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from memory_store.clock import utc_now
from memory_store.errors import DecryptionError, KeyProviderError
from memory_store.keys.envelope import UserKey, WrappedKey, new_data_key
from memory_store.keys.provider import KeyProvider
from memory_store.storage.keystore import KeyStore, Rewrap, StoredKey


@dataclass(frozen=True)
class RotationReport:
    kek_version: int
    rewrapped: int
    failed: int


class DataKeyring:
    """Gets, creates, rewraps and destroys per-user data keys.

    The wrapped key is read from the key store on every request, so a key destroyed by
    another process is gone here at once; only the unwrap is cached, keyed by the wrapped
    bytes, because a KMS round trip per request would be the slow part.
    """

    _CACHE_SIZE = 4096
    _CACHE_TTL = timedelta(minutes=5)

    def __init__(self, store: KeyStore, provider: KeyProvider) -> None:
        self._store = store
        self._provider = provider
        # (user, key id, KEK version, wrapped bytes) -> (unwrapped key, when it was unwrapped)
        self._cache: OrderedDict[tuple[str, str, int, bytes], tuple[UserKey, datetime]] = (
            OrderedDict()
        )
        self._cache_lock = threading.Lock()

    @property
    def provider(self) -> KeyProvider:
        return self._provider

    def check_versions(self) -> None:
        """Refuse to run unless the provider can unwrap the key store's keys: every KEK
        version in use must exist, and one data key of each must open (a fresh key file
        with the same version numbers would otherwise pass)."""
        in_use = set(self._store.counts_by_version())
        missing = in_use - set(self._provider.versions())
        if missing:
            raise KeyProviderError(
                f"the key store holds data keys wrapped by KEK version(s) {sorted(missing)}, "
                "which the key file does not have: wrong key file?"
            )
        for version in sorted(in_use):
            sample = self._store.sample(version)
            if sample is None:  # destroyed meanwhile: nothing left to check
                continue
            try:
                self._provider.unwrap(WrappedKey(version, sample.wrapped), sample.user_id)
            except DecryptionError:
                raise KeyProviderError(
                    f"KEK version {version} in the key file does not open the key store's "
                    "data keys: wrong key file?"
                ) from None

    def _unwrap(self, stored: StoredKey) -> UserKey:
        cache_key = (stored.user_id, stored.key_id, stored.kek_version, stored.wrapped)
        now = utc_now()
        with self._cache_lock:
            cached = self._cache.get(cache_key)
            if cached is not None and now - cached[1] < self._CACHE_TTL:
                self._cache.move_to_end(cache_key)
                return cached[0]
        # The same UserKey object while cached, so what it derives (cipher, pseudonym) is
        # derived once, not per request.
        secret = self._provider.unwrap(
            WrappedKey(stored.kek_version, stored.wrapped), stored.user_id
        )
        key = UserKey(user_id=stored.user_id, key_id=stored.key_id, secret=secret)
        with self._cache_lock:
            self._cache[cache_key] = (key, now)
            self._cache.move_to_end(cache_key)
            while len(self._cache) > self._CACHE_SIZE:
                self._cache.popitem(last=False)
        return key

    def _forget_cached(self, user_id: str) -> None:
        with self._cache_lock:
            for cache_key in [k for k in self._cache if k[0] == user_id]:
                del self._cache[cache_key]

    def key_for_read(self, user_id: str) -> UserKey | None:
        """The user's key, or None when they have none (never wrote, or were forgotten)."""
        stored = self._store.get(user_id)
        return self._unwrap(stored) if stored is not None else None

    def key_for_write(self, user_id: str) -> UserKey:
        """The user's key, created on their first write."""
        existing = self.key_for_read(user_id)
        if existing is not None:
            return existing
        key_id, secret = new_data_key()
        wrapped = self._provider.wrap(secret, user_id)
        stored = StoredKey(user_id, key_id, wrapped.kek_version, wrapped.blob)
        if not self._store.insert(stored, utc_now()):
            # Another request created this user's key first: use theirs.
            raced = self.key_for_read(user_id)
            if raced is None:
                raise KeyProviderError("the user's data key could not be stored")
            return raced
        if wrapped.kek_version not in self._provider.versions():
            # The KEK version we wrapped with was retired between our read of the current
            # version and our commit: rewrap now, while we still hold the plaintext key.
            self._store.rewrap([self._rewrapped(stored, secret)])
        return UserKey(user_id=user_id, key_id=key_id, secret=secret)

    def _rewrapped(self, stored: StoredKey, secret: bytes) -> Rewrap:
        new = self._provider.wrap(secret, stored.user_id)
        return Rewrap(stored.user_id, stored.key_id, stored.kek_version, new.kek_version, new.blob)

    def retire_kek(self, version: int) -> None:
        """Destroy KEK `version`, refused while any data key is still wrapped by it."""
        self._provider.retire_version(version, in_use=lambda: self.wrapped_by(version))

    def destroy(self, user_id: str, *, key_id: str | None = None) -> bool:
        """Crypto-shred: delete the user's wrapped key (only if it is `key_id`, when given).
        True if there was one."""
        deleted = self._store.delete(user_id, key_id=key_id)
        self._forget_cached(user_id)
        return deleted

    def shred(self, user_id: str) -> bool:
        """Forget a user: destroy their key, and empty the key store's WAL at once, so that
        the deleted key lingers nowhere the key store wrote. True if there was one."""
        deleted = self._store.delete(user_id, truncate=True)
        self._forget_cached(user_id)
        return deleted

    def count_by_version(self) -> dict[int, int]:
        return self._store.counts_by_version()

    def rewrap_all(self, batch_size: int = 500) -> RotationReport:
        """Rewrap every DEK not under the current KEK. Online: each batch is its own commit,
        and a row changed meanwhile (say, destroyed by a forget) is skipped, not resurrected.
        A key that cannot be unwrapped is counted and left as it is."""
        target = self._provider.current_version()
        rewrapped = failed = 0
        after = ""
        while True:
            rows = self._store.page_not_under(target, after=after, limit=batch_size)
            if not rows:
                return RotationReport(kek_version=target, rewrapped=rewrapped, failed=failed)
            after = rows[-1].user_id
            changes = []
            for row in rows:
                try:
                    secret = self._provider.unwrap(
                        WrappedKey(row.kek_version, row.wrapped), row.user_id
                    )
                except (DecryptionError, KeyProviderError):
                    failed += 1
                    continue
                changes.append(self._rewrapped(row, secret))
            rewrapped += self._store.rewrap(changes)

    def wrapped_by(self, version: int) -> int:
        return self.count_by_version().get(version, 0)

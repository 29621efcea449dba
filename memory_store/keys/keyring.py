"""Each user's data key and the item keys it wraps.

A user's data key is created on their first write, unwrapped (and cached) for reads, rewrapped
when the KEK rotates, re-issued when one of their memories is forgotten, and destroyed when
they are forgotten (crypto-shredding). Each memory version has an item key, wrapped under the
data key; forgetting the version deletes its item key and re-issues the data key, so the
deleted item key's copies (a WAL, a backup of the key store) are wrapped under a secret that
exists only wrapped under the KEK epoch of the day: once that epoch is retired, nothing opens
them.

The wrapped keys live in the key store (storage/keystore.py), a database apart from the
memories, so that a backup of the memory data holds no key.
"""

from __future__ import annotations

import functools
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from memory_store.clock import utc_now
from memory_store.domain import Progress
from memory_store.errors import DecryptionError, KeyProviderError, KeysUnavailable
from memory_store.keys.envelope import (
    KEY_BYTES,
    ItemKey,
    UserKey,
    WrappedKey,
    item_id_of,
    new_data_key,
    rewrap_items,
    unwrap_item,
    wrap_item,
)
from memory_store.keys.provider import KeyProvider
from memory_store.pending import Pending
from memory_store.storage.keystore import (
    KeyStore,
    Rewrap,
    StaleIssue,
    StoredItemKey,
    StoredKey,
)

_RETRIES = 5  # a re-issue racing an insert of item keys: read the key again, this often


def _rewrap(items: list[StoredItemKey], old: UserKey, new: UserKey) -> list[StoredItemKey]:
    """Item keys wrapped under `old`, wrapped under `new` (one that will not open is left as
    it is: unreadable before, and after)."""
    rewrapped = rewrap_items(old, new, [(i.memory_id, i.version, i.wrapped) for i in items])
    return [
        StoredItemKey(item.memory_id, item.item_id, item.version, wrapped)
        for item, wrapped in zip(items, rewrapped, strict=True)
        if wrapped is not None
    ]


class ItemKeys:
    """The item keys of some of one user's memories, unwrapped when asked for."""

    def __init__(self, user: UserKey | None, stored: Sequence[StoredItemKey]) -> None:
        self.user = user
        self._stored = {(item.memory_id, item.item_id): item for item in stored}

    def get(self, memory_id: str, version: int, ciphertext: bytes) -> ItemKey | None:
        """The item key `ciphertext` (of that memory and version) is sealed under, or None:
        there is none, or it will not open as that memory's and version's."""
        item_id = item_id_of(ciphertext)
        stored = self._stored.get((memory_id, item_id)) if item_id is not None else None
        if stored is None:
            return None
        return self._unwrap(memory_id, version, stored)

    def every(self) -> list[ItemKey]:
        """Every one of them that opens."""
        opened = (self._unwrap(i.memory_id, i.version, i) for i in self._stored.values())
        return [key for key in opened if key is not None]

    def _unwrap(self, memory_id: str, version: int, stored: StoredItemKey) -> ItemKey | None:
        if self.user is None:
            return None
        try:
            return unwrap_item(self.user, memory_id, version, stored.item_id, stored.wrapped)
        except DecryptionError:
            return None


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
        key = UserKey(stored.user_id, stored.key_id, secret, stored.issue)
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
        return Rewrap(
            stored.user_id,
            stored.key_id,
            stored.issue,
            stored.kek_version,
            new.kek_version,
            new.blob,
        )

    # -- item keys ------------------------------------------------------------------------------

    def item_keys(self, user: UserKey | None, memory_ids: Sequence[str] | None) -> ItemKeys:
        """The item keys of every version of `memory_ids` (None: of all the user's
        memories), under `user`; empty when the user has no key."""
        if user is None or (memory_ids is not None and not memory_ids):
            return ItemKeys(user, [])
        return ItemKeys(user, self._store.items(user.user_id, user.key_id, memory_ids))

    def store_item_keys(self, user: UserKey, items: Sequence[ItemKey]) -> None:
        """Store new item keys wrapped under the user's key, committed before this returns
        (their memories may be stored only then). KeysUnavailable when the user's key was
        destroyed meanwhile (they were forgotten while this was written)."""
        self.begin_storing_item_keys(user, items).result()

    def begin_storing_item_keys(self, user: UserKey, items: Sequence[ItemKey]) -> Pending[None]:
        """`store_item_keys`, queued: the caller can do other work (record the write) while
        it commits, and take the outcome after."""

        def start(user: UserKey) -> Pending[None]:
            wrapped = [
                StoredItemKey(i.memory_id, i.item_id, i.version, wrap_item(user, i)) for i in items
            ]
            return self._store.insert_items(user.user_id, user.key_id, user.issue, wrapped)

        first = start(user)

        def outcome() -> None:
            pending, current = first, user
            for _ in range(_RETRIES):
                try:
                    pending.result()
                    return
                except StaleIssue:  # re-issued meanwhile (rare): wrap under the new issue
                    fresh = self.key_for_read(current.user_id)
                    if fresh is None or fresh.key_id != current.key_id:
                        break
                    current = fresh
                    pending = start(current)
            raise KeysUnavailable("This user's data key changed while the memory was stored")

        return Pending(first.future, outcome)

    def drop_item_key(self, item: ItemKey) -> None:
        """Delete the item key of a version that was not stored after all."""
        self._store.delete_item(item.user_id, item.memory_id, item.item_id)

    def forget_items(self, user_id: str, memory_ids: Sequence[str]) -> int:
        """Forget every version of `memory_ids`: delete their item keys and re-issue the
        user's data key, with every other item key rewrapped under the new secret, in one
        transaction of the key store. Returns how many item keys were deleted (0 when the
        user has no key: nothing of theirs opens anyway)."""
        if not memory_ids:
            return 0
        for _ in range(_RETRIES):
            stored = self._store.get(user_id)
            if stored is None:
                return 0
            try:
                old = self._unwrap(stored)
            except DecryptionError:
                raise KeysUnavailable("This user's data key cannot be opened") from None
            new = UserKey(user_id, stored.key_id, secrets.token_bytes(KEY_BYTES), stored.issue + 1)
            wrapped = self._provider.wrap(new.secret, user_id)
            replacement = StoredKey(
                user_id, stored.key_id, wrapped.kek_version, wrapped.blob, new.issue
            )

            try:
                deleted = self._store.reissue(
                    stored, replacement, memory_ids, functools.partial(_rewrap, old=old, new=new)
                )
            except StaleIssue:
                continue
            self._forget_cached(user_id)
            return deleted
        raise KeysUnavailable("This user's data key kept changing: try again")

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

    def rewrap_all(self, batch_size: int = 500, progress: Progress | None = None) -> RotationReport:
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
            if progress is not None:
                progress(len(rows))

    def wrapped_by(self, version: int) -> int:
        return self.count_by_version().get(version, 0)

"""The key store: each user's data key, wrapped by the KEK, in a database of its own.

It is kept apart from the memories so that a backup of the memory data holds no key, and
destroying a user's row here (crypto-shredding) leaves every remaining copy of their
ciphertexts unreadable.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from memory_store.clock import utc_now
from memory_store.crypto import KeyProvider, UserKey, WrappedKey, new_data_key
from memory_store.db import UTCDateTime
from memory_store.errors import DecryptionError, KeyProviderError
from memory_store.rawdb import RawDB

keystore_metadata = MetaData()

data_keys = Table(
    "data_keys",
    keystore_metadata,
    Column("user_id", String(128), primary_key=True),
    Column("key_id", String(32), nullable=False),
    Column("kek_version", Integer, nullable=False, index=True),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


def wrapped_key_counts(engine: Engine) -> dict[int, int]:
    """How many data keys each KEK version wraps."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(data_keys.c.kek_version, func.count()).group_by(data_keys.c.kek_version)
        ).all()
    return {int(version): int(count) for version, count in rows}


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

    def __init__(self, engine: Engine, provider: KeyProvider) -> None:
        self._engine = engine
        self._raw = RawDB(engine)
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
        in_use = set(wrapped_key_counts(self._engine))
        missing = in_use - set(self._provider.versions())
        if missing:
            raise KeyProviderError(
                f"the key store holds data keys wrapped by KEK version(s) {sorted(missing)}, "
                "which the key file does not have: wrong key file?"
            )
        for version in sorted(in_use):
            with self._engine.connect() as conn:
                sample = conn.execute(
                    select(data_keys.c.user_id, data_keys.c.wrapped)
                    .where(data_keys.c.kek_version == version)
                    .limit(1)
                ).first()
            if sample is None:  # destroyed meanwhile: nothing left to check
                continue
            user_id, blob = sample
            try:
                self._provider.unwrap(WrappedKey(version, blob), user_id)
            except DecryptionError:
                raise KeyProviderError(
                    f"KEK version {version} in the key file does not open the key store's "
                    "data keys: wrong key file?"
                ) from None

    def _unwrap(self, user_id: str, key_id: str, wrapped: WrappedKey) -> UserKey:
        cache_key = (user_id, key_id, wrapped.kek_version, wrapped.blob)
        now = utc_now()
        with self._cache_lock:
            cached = self._cache.get(cache_key)
            if cached is not None and now - cached[1] < self._CACHE_TTL:
                self._cache.move_to_end(cache_key)
                return cached[0]
        # The same UserKey object while cached, so what it derives (cipher, pseudonym) is
        # derived once, not per request.
        key = UserKey(
            user_id=user_id, key_id=key_id, secret=self._provider.unwrap(wrapped, user_id)
        )
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
        row = self._raw.one(
            "SELECT key_id, kek_version, wrapped FROM data_keys WHERE user_id = ?", (user_id,)
        )
        if row is None:
            return None
        key_id, kek_version, wrapped = row
        return self._unwrap(user_id, key_id, WrappedKey(kek_version, bytes(wrapped)))

    def key_for_write(self, user_id: str) -> UserKey:
        """The user's key, created on their first write."""
        existing = self.key_for_read(user_id)
        if existing is not None:
            return existing
        key_id, secret = new_data_key()
        wrapped = self._provider.wrap(secret, user_id)
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(data_keys).values(
                        user_id=user_id,
                        key_id=key_id,
                        kek_version=wrapped.kek_version,
                        wrapped=wrapped.blob,
                        created_at=utc_now(),
                    )
                )
        except IntegrityError:
            # Another request created this user's key first: use theirs.
            raced = self.key_for_read(user_id)
            if raced is None:
                raise
            return raced
        if wrapped.kek_version not in self._provider.versions():
            # The KEK version we wrapped with was retired between our read of the current
            # version and our commit: rewrap now, while we still hold the plaintext key.
            self._rewrap(user_id, key_id, wrapped.kek_version, secret)
        return UserKey(user_id=user_id, key_id=key_id, secret=secret)

    def _rewrap(self, user_id: str, key_id: str, old_version: int, secret: bytes) -> None:
        new = self._provider.wrap(secret, user_id)
        with self._engine.begin() as conn:
            conn.execute(
                update(data_keys)
                .where(
                    data_keys.c.user_id == user_id,
                    data_keys.c.key_id == key_id,
                    data_keys.c.kek_version == old_version,
                )
                .values(kek_version=new.kek_version, wrapped=new.blob)
            )

    def retire_kek(self, version: int) -> None:
        """Destroy KEK `version`, refused while any data key is still wrapped by it."""
        self._provider.retire_version(version, in_use=lambda: self.wrapped_by(version))

    def destroy(self, user_id: str, *, key_id: str | None = None) -> bool:
        """Crypto-shred: delete the user's wrapped key (only if it is `key_id`, when given).
        True if there was one."""
        condition = data_keys.c.user_id == user_id
        if key_id is not None:
            condition = condition & (data_keys.c.key_id == key_id)
        with self._engine.begin() as conn:
            deleted = conn.execute(delete(data_keys).where(condition))
        self._forget_cached(user_id)
        return bool(deleted.rowcount)

    def count_by_version(self) -> dict[int, int]:
        return wrapped_key_counts(self._engine)

    def rewrap_all(self, batch_size: int = 500) -> RotationReport:
        """Rewrap every DEK not under the current KEK. Online: each batch is its own commit,
        and a row changed meanwhile (say, destroyed by a forget) is skipped, not resurrected.
        A key that cannot be unwrapped is counted and left as it is."""
        target = self._provider.current_version()
        rewrapped = failed = 0
        after = ""
        while True:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(
                        data_keys.c.user_id,
                        data_keys.c.key_id,
                        data_keys.c.kek_version,
                        data_keys.c.wrapped,
                    )
                    .where(data_keys.c.kek_version != target, data_keys.c.user_id > after)
                    .order_by(data_keys.c.user_id)
                    .limit(batch_size)
                ).all()
            if not rows:
                return RotationReport(kek_version=target, rewrapped=rewrapped, failed=failed)
            after = rows[-1].user_id
            with self._engine.begin() as conn:
                for row in rows:
                    try:
                        secret = self._provider.unwrap(
                            WrappedKey(row.kek_version, row.wrapped), row.user_id
                        )
                    except (DecryptionError, KeyProviderError):
                        failed += 1
                        continue
                    new = self._provider.wrap(secret, row.user_id)
                    result = conn.execute(
                        update(data_keys)
                        .where(
                            data_keys.c.user_id == row.user_id,
                            data_keys.c.key_id == row.key_id,
                            data_keys.c.kek_version == row.kek_version,
                        )
                        .values(kek_version=new.kek_version, wrapped=new.blob)
                    )
                    rewrapped += result.rowcount

    def wrapped_by(self, version: int) -> int:
        return self.count_by_version().get(version, 0)

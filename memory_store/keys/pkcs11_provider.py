"""KEKs in an HSM, through PKCS#11 (tested against SoftHSM2).

Each KEK version is an AES-256 key object in the token, labelled `memory-store-kek-<n>`,
made non-extractable and sensitive: its value never leaves the token, and it may only wrap
and unwrap. A data key is wrapped inside the token with CKM_AES_KEY_WRAP_PAD (RFC 5649;
SoftHSM 2.6 has no KWP). Key wrap has no associated data, so what the local key file binds as
AES-GCM associated data (the user id and the KEK version) is bound here inside the wrapped
value: the data key followed by a tag of those, checked on unwrap. Retiring a version destroys
its object.

Needs the optional `python-pkcs11` package (`pip install 'memory-store[hsm]'`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memory_store.errors import DecryptionError, KeyProviderError
from memory_store.keys.envelope import KEY_BYTES, WrappedKey

LABEL_PREFIX = "memory-store-kek-"
_LABEL = re.compile(rf"^{LABEL_PREFIX}(\d+)$")
_TAG_BYTES = 16


def _tag(user_id: str, kek_version: int) -> bytes:
    return hashlib.sha256(
        b"memory-store/dek/1\x00" + user_id.encode() + b"\x00" + str(kek_version).encode()
    ).digest()[:_TAG_BYTES]


class Pkcs11KeyProvider:
    """A KeyProvider whose KEKs are objects in a PKCS#11 token. One logged-in session,
    used under a lock (a PKCS#11 session is not to be shared between threads at once)."""

    def __init__(self, module: Path, token_label: str, pin: str, *, create: bool) -> None:
        try:
            import pkcs11  # noqa: PLC0415 (optional: only when this provider is chosen)
        except ImportError:
            raise KeyProviderError(
                "MEMORY_STORE_KEY_PROVIDER=pkcs11 needs the python-pkcs11 package: "
                "pip install 'memory-store[hsm]'"
            ) from None
        self._p11: Any = pkcs11
        self._lock = threading.Lock()
        try:
            library = pkcs11.lib(str(module))
            token = library.get_token(token_label=token_label)
            self._session: Any = token.open(user_pin=pin, rw=True)
        except (RuntimeError, OSError, pkcs11.exceptions.PKCS11Error) as exc:
            raise KeyProviderError(
                f"PKCS#11 token {token_label!r} in {module} cannot be opened ({type(exc).__name__})"
            ) from None
        with self._lock:
            if not self._objects():
                if not create:
                    raise KeyProviderError(
                        f"PKCS#11 token {token_label!r} holds no memory-store KEK"
                    )
                self._generate(1)

    # -- the objects ----------------------------------------------------------------------

    def _objects(self) -> dict[int, Any]:
        p11 = self._p11
        found = {}
        for key in self._session.get_objects(
            {p11.Attribute.CLASS: p11.ObjectClass.SECRET_KEY, p11.Attribute.TOKEN: True}
        ):
            match = _LABEL.match(key.label or "")
            if match:
                found[int(match.group(1))] = key
        return found

    def _generate(self, version: int) -> None:
        p11 = self._p11
        self._session.generate_key(
            p11.KeyType.AES,
            KEY_BYTES * 8,
            label=f"{LABEL_PREFIX}{version}",
            store=True,
            template={
                p11.Attribute.SENSITIVE: True,
                p11.Attribute.EXTRACTABLE: False,
                p11.Attribute.WRAP: True,
                p11.Attribute.UNWRAP: True,
                p11.Attribute.ENCRYPT: False,
                p11.Attribute.DECRYPT: False,
                p11.Attribute.SIGN: False,
                p11.Attribute.VERIFY: False,
            },
        )

    def _kek(self, version: int) -> Any:
        key = self._objects().get(version)
        if key is None:
            raise KeyProviderError(f"KEK version {version} is not in the PKCS#11 token")
        return key

    # -- KeyProvider ------------------------------------------------------------------------

    def current_version(self) -> int:
        with self._lock:
            versions = self._objects()
        if not versions:
            raise KeyProviderError("the PKCS#11 token holds no memory-store KEK")
        return max(versions)

    def versions(self) -> list[int]:
        with self._lock:
            return sorted(self._objects())

    def wrap(self, dek: bytes, user_id: str) -> WrappedKey:
        p11 = self._p11
        with self._lock:
            versions = self._objects()
            version = max(versions)
            value = self._session.create_object(
                {
                    p11.Attribute.CLASS: p11.ObjectClass.SECRET_KEY,
                    p11.Attribute.KEY_TYPE: p11.KeyType.GENERIC_SECRET,
                    p11.Attribute.VALUE: dek + _tag(user_id, version),
                    p11.Attribute.TOKEN: False,
                    p11.Attribute.EXTRACTABLE: True,
                    p11.Attribute.SENSITIVE: False,
                }
            )
            try:
                blob = versions[version].wrap_key(value, mechanism=p11.Mechanism.AES_KEY_WRAP_PAD)
            finally:
                value.destroy()
        return WrappedKey(version, bytes(blob))

    def unwrap(self, wrapped: WrappedKey, user_id: str) -> bytes:
        p11 = self._p11
        with self._lock:
            kek = self._kek(wrapped.kek_version)  # KeyProviderError: the service cannot answer
            try:
                value = kek.unwrap_key(
                    p11.ObjectClass.SECRET_KEY,
                    p11.KeyType.GENERIC_SECRET,
                    wrapped.blob,
                    mechanism=p11.Mechanism.AES_KEY_WRAP_PAD,
                    template={
                        p11.Attribute.TOKEN: False,
                        p11.Attribute.EXTRACTABLE: True,
                        p11.Attribute.SENSITIVE: False,
                    },
                )
            except p11.exceptions.PKCS11Error:
                raise DecryptionError from None
            try:
                plain = bytes(value[p11.Attribute.VALUE])
            finally:
                value.destroy()
        dek, tag = plain[:KEY_BYTES], plain[KEY_BYTES:]
        if len(dek) != KEY_BYTES or not hmac.compare_digest(
            tag, _tag(user_id, wrapped.kek_version)
        ):
            raise DecryptionError
        return dek

    def add_version(self) -> int:
        """Make a new KEK object and make it current. Older versions stay until retired."""
        with self._lock:
            version = max(self._objects(), default=0) + 1
            self._generate(version)
        return version

    def retire_version(self, version: int, in_use: Callable[[], int]) -> None:
        """Destroy KEK `version` in the token; refused for the current one, or while
        `in_use` (asked under the lock) counts data keys it still wraps."""
        with self._lock:
            versions = self._objects()
            if version not in versions:
                raise KeyProviderError(f"KEK version {version} is not in the PKCS#11 token")
            if version == max(versions):
                raise KeyProviderError("the current KEK version cannot be retired")
            still = in_use()
            if still:
                raise KeyProviderError(
                    f"KEK version {version} still wraps {still} data key(s); "
                    "run `memory-store keys rotate` first"
                )
            versions[version].destroy()

    def close(self) -> None:
        with self._lock:
            self._session.close()

"""Bearer tokens: issue, resolve to a Principal, revoke.

Tokens are 256 random bits with a readable prefix, shown once. The database keeps only their
SHA-256, looked up by index: a slow password hash buys nothing for random tokens, and the
lookup is by hash, so response time does not depend on how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from memory_store.clock import utc_now
from memory_store.domain import OPERATOR, AuditAction, Principal, Role
from memory_store.errors import DecryptionError, InvalidRequest, KeysUnavailable, Unauthenticated
from memory_store.keys.keyring import DataKeyring
from memory_store.storage.tokens import TokenRepository, TokenRow
from memory_store.trail.recorder import Auditor

TOKEN_PREFIX = "mst_"  # noqa: S105 (a prefix, not a secret)
_DISPLAY_PREFIX_CHARS = 12


@dataclass(frozen=True)
class IssuedToken:
    record: TokenRow
    token: str  # shown once, never stored

    def __repr__(self) -> str:
        return f"IssuedToken(id={self.record.id!r}, role={self.record.role!r})"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenService:
    def __init__(self, tokens: TokenRepository, keyring: DataKeyring, auditor: Auditor) -> None:
        self._tokens = tokens
        self._keyring = keyring
        self._auditor = auditor

    def issue(
        self,
        *,
        role: Role,
        name: str,
        user_id: str | None = None,
        expires_in: timedelta | None = None,
        actor: Principal = OPERATOR,
    ) -> IssuedToken:
        """A new token, valid until revoked or, with `expires_in`, until that much later."""
        if (role is Role.user) != (user_id is not None):
            raise InvalidRequest("a user token needs --user; other roles must not have one")
        if expires_in is not None and expires_in <= timedelta(0):
            raise InvalidRequest("a token's lifetime must be positive")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utc_now()
        record = TokenRow(
            id="tok_" + secrets.token_hex(8),
            token_hash=hash_token(token),
            prefix=token[:_DISPLAY_PREFIX_CHARS],
            name=name,
            role=role.value,
            user_id=user_id,
            created_at=now,
            expires_at=now + expires_in if expires_in is not None else None,
        )
        # A user token makes its user someone the service keeps something about: their data
        # key is made now, so that every record about them from here on, this one first, is
        # named by it and unlinked when they are forgotten. (Requests about an id that has no
        # key create none: trail/recorder.py.)
        try:
            key = self._keyring.key_for_write(user_id) if user_id is not None else None
        except DecryptionError:
            raise KeysUnavailable("This user's data key cannot be opened") from None
        self._auditor.record(
            actor,
            AuditAction.token_create,
            subject_user_id=user_id,
            subject_key=key,
            target=record.id,
            reason=role.value,
        )
        self._tokens.insert(record)
        return IssuedToken(record=record, token=token)

    def authenticate(self, authorization: str | None) -> Principal:
        """Resolve an Authorization header, or raise Unauthenticated. Looked up on every
        request, so a revoked token is refused by every server process at once."""
        if not authorization:
            raise Unauthenticated("Missing Authorization header")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            raise Unauthenticated("Expected 'Authorization: Bearer mst_...'")
        digest = hash_token(token)
        record = self._tokens.find_by_hash(digest)
        if (
            record is None
            or record.revoked_at is not None
            or not hmac.compare_digest(record.token_hash, digest)
        ):
            raise Unauthenticated("The token is unknown or revoked")
        if record.expires_at is not None and record.expires_at <= utc_now():
            raise Unauthenticated("The token has expired")
        return Principal(
            token_id=record.id, name=record.name, role=Role(record.role), user_id=record.user_id
        )

    def refuse(self, problem: Unauthenticated) -> None:
        """Record a request refused for want of a valid token (the refusal stands even if
        its record cannot be written)."""
        self._auditor.denied(None, AuditAction.auth, problem)

    def list(self) -> list[TokenRow]:
        return self._tokens.list_all()

    def revoke(self, token_id: str, actor: Principal = OPERATOR) -> bool:
        revoked = self._tokens.revoke(token_id, utc_now())
        self._auditor.record(
            actor,
            AuditAction.token_revoke,
            target=token_id[:64],
            outcome="allowed" if revoked else "denied",
            reason=None if revoked else "not-found",
        )
        return revoked

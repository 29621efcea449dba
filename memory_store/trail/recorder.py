"""What the service writes to the audit trail, and how: the one helper every use case calls.

A record names the actor (token id and role), the request id, the action, the subject as a
pseudonym (never the user id), memory ids, purpose, outcome and reason, and a result count.
Never a content, never a query text. The request id is the one the service generated; a
client's own `X-Request-ID` (which could name a person: "user-alice.turn-1") is on the record
only as a keyed hash under the subject's key, appended after a dot, so that it is unlinkable
once the subject is forgotten. If the record cannot be committed, the request fails
(AuditUnavailable, 503): nothing is disclosed or changed without its record.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

import structlog

from audit import AuditRecord
from memory_store.clock import utc_now
from memory_store.domain import AuditAction, Principal
from memory_store.errors import AuditUnavailable, DecryptionError, Problem
from memory_store.keys.envelope import UserKey
from memory_store.keys.keyring import DataKeyring
from memory_store.pending import Pending, committed
from memory_store.storage.audit_writer import AuditAppendError, Changed
from memory_store.storage.group_commit import Job
from memory_store.trail.times import format_time

ANONYMOUS = "anonymous"
T = TypeVar("T")


class AuditSink(Protocol):
    beside_memories: bool

    def append(self, record: AuditRecord) -> AuditRecord: ...

    def begin_append(self, record: AuditRecord) -> Future[AuditRecord]: ...

    def begin_change(self, record: AuditRecord, change: Job[Any]) -> Future[Changed]: ...

    def result(self, done: Future[Any]) -> Any: ...


class PendingRecord:
    """An audit record queued for its commit: `wait` for it in a thread, or await `done` on
    the event loop and then take `result`. Either way, nothing may be disclosed before."""

    def __init__(self, sink: AuditSink, done: Future[AuditRecord]) -> None:
        self._sink = sink
        self.done = done

    def wait(self) -> AuditRecord:
        try:
            record: AuditRecord = self._sink.result(self.done)
            return record
        except AuditAppendError:
            raise AuditUnavailable() from None

    async def committed(self) -> AuditRecord:
        """The record, once committed, awaited without holding a thread."""
        await committed(self.done)
        return self.wait()  # done: at once, or the failure raised as the sync path raises it


_TAG_HEX = 16  # a client request id's tag: 64 bits, enough to find a request by it


def current_request_ids() -> tuple[str, str | None]:
    """(the id the service gave the request, the client's own id if it sent one)"""
    context = structlog.contextvars.get_contextvars()
    request_id, client_id = context.get("request_id"), context.get("client_request_id")
    return (str(request_id) if request_id else "none"), (str(client_id) if client_id else None)


def _tag(secret: bytes, client_request_id: str) -> str:
    return hmac.new(secret, client_request_id.encode(), hashlib.sha256).hexdigest()[:_TAG_HEX]


class Auditor:
    """Records about a person name them by a pseudonym. While they have a data key, it is
    derived from that key (`UserKey.pseudonym`), so destroying the key unlinks every such
    record. A subject with no key (a stranger: never written about, or forgotten) gets a
    pseudonym keyed by `stranger_secret` instead, and nothing is created for them: a refused
    probe about an unknown id leaves no trace in the key store."""

    def __init__(self, sink: AuditSink, keyring: DataKeyring, stranger_secret: bytes) -> None:
        self._sink = sink
        self._keyring = keyring
        self._stranger_secret = stranger_secret

    def subject_of(self, user_id: str | None, key: UserKey | None = None) -> str | None:
        """The pseudonym of `user_id` now: their key's, or a stranger's. Creates nothing."""
        return self._subject(user_id, key)[0]

    def _subject(self, user_id: str | None, key: UserKey | None) -> tuple[str | None, bytes]:
        """(the pseudonym of `user_id`, the secret client request ids are tagged under in
        records about them). Their key's while they have one; a stranger's otherwise."""
        if not user_id:
            return None, self._stranger_secret
        if key is None or key.user_id != user_id:
            try:
                key = self._keyring.key_for_read(user_id)
            except DecryptionError:  # their key will not open: the record cannot name them
                return None, secrets.token_bytes(32)  # nor link their request ids
        if key is not None:
            return key.pseudonym, key.request_tags
        stranger = hmac.new(self._stranger_secret, b"request-tag\x00" + user_id.encode(), "sha256")
        return self._stranger(user_id), stranger.digest()

    def request_tag(self, client_request_id: str, user_id: str | None = None) -> str:
        """How a client's request id appears in records about `user_id` (after the dot)."""
        return _tag(self._subject(user_id, None)[1], client_request_id)

    def subjects_of(self, user_id: str) -> list[str]:
        """Every pseudonym records about `user_id` can carry and still be linked to them:
        their key's (while they have one) and a stranger's (from before their first key)."""
        try:
            key = self._keyring.key_for_read(user_id)
        except DecryptionError:
            key = None
        known = [key.pseudonym] if key is not None else []
        return [*known, self._stranger(user_id)]

    def _stranger(self, user_id: str) -> str:
        digest = hmac.new(self._stranger_secret, user_id.encode(), hashlib.sha256).hexdigest()
        return "ps_" + digest[:32]

    def record(
        self,
        principal: Principal | None,
        action: AuditAction,
        *,
        subject_user_id: str | None = None,
        subject_key: UserKey | None = None,
        outcome: str = "allowed",
        memory_ids: Sequence[str] = (),
        target: str | None = None,
        purpose: str | None = None,
        reason: str | None = None,
        result_count: int | None = None,
    ) -> AuditRecord:
        """Append a record, and return it once committed (AuditUnavailable if it cannot be)."""
        return self.begin_record(
            principal,
            action,
            subject_user_id=subject_user_id,
            subject_key=subject_key,
            outcome=outcome,
            memory_ids=memory_ids,
            target=target,
            purpose=purpose,
            reason=reason,
            result_count=result_count,
        ).wait()

    @property
    def beside_memories(self) -> bool:
        """Whether a change can commit with its record (`begin_change`): the trail's tables
        are in the memory database."""
        return self._sink.beside_memories

    def begin_record(
        self,
        principal: Principal | None,
        action: AuditAction,
        *,
        subject_user_id: str | None = None,
        subject_key: UserKey | None = None,
        outcome: str = "allowed",
        memory_ids: Sequence[str] = (),
        target: str | None = None,
        purpose: str | None = None,
        reason: str | None = None,
        result_count: int | None = None,
    ) -> PendingRecord:
        """Queue a record for its commit, without waiting (see PendingRecord)."""
        record = self._record(
            principal,
            action,
            subject_user_id=subject_user_id,
            subject_key=subject_key,
            outcome=outcome,
            memory_ids=memory_ids,
            target=target,
            purpose=purpose,
            reason=reason,
            result_count=result_count,
        )
        try:
            return PendingRecord(self._sink, self._sink.begin_append(record))
        except AuditAppendError:
            raise AuditUnavailable() from None

    def begin_change(
        self,
        change: Job[T],
        principal: Principal,
        action: AuditAction,
        *,
        subject_user_id: str,
        subject_key: UserKey | None,
        memory_ids: Sequence[str],
        purpose: str,
        result_count: int,
    ) -> Pending[T]:
        """Queue a record with the change it records (statements on the memory database), to
        commit in one transaction: only when `beside_memories`. The outcome is the change's
        result, or the exception it raised (its record kept); AuditUnavailable if the
        commit failed, when neither happened."""
        record = self._record(
            principal,
            action,
            subject_user_id=subject_user_id,
            subject_key=subject_key,
            memory_ids=memory_ids,
            purpose=purpose,
            result_count=result_count,
        )
        sink = self._sink
        try:
            done = sink.begin_change(record, change)
        except AuditAppendError:
            raise AuditUnavailable() from None

        def outcome() -> T:
            try:
                changed: Changed = sink.result(done)
            except AuditAppendError:
                raise AuditUnavailable() from None
            if not changed.ok:
                raise changed.value
            result: T = changed.value
            return result

        return Pending(done, outcome)

    def _record(
        self,
        principal: Principal | None,
        action: AuditAction,
        *,
        subject_user_id: str | None = None,
        subject_key: UserKey | None = None,
        outcome: str = "allowed",
        memory_ids: Sequence[str] = (),
        target: str | None = None,
        purpose: str | None = None,
        reason: str | None = None,
        result_count: int | None = None,
    ) -> AuditRecord:
        subject, tags = self._subject(subject_user_id, subject_key)
        request_id, client_id = current_request_ids()
        if client_id is not None:
            request_id = f"{request_id}.{_tag(tags, client_id)}"
        return AuditRecord(
            at=format_time(utc_now()),
            actor_id=principal.token_id if principal else ANONYMOUS,
            actor_role=principal.role.value if principal else ANONYMOUS,
            request_id=request_id,
            action=str(action),
            outcome=outcome,
            subject=subject,
            memory_ids=tuple(memory_ids),
            target=target,
            purpose=purpose,
            reason=reason,
            result_count=result_count,
        )

    def denied(
        self,
        principal: Principal | None,
        action: AuditAction,
        problem: Problem,
        *,
        subject_user_id: str | None = None,
        purpose: str | None = None,
        memory_ids: Sequence[str] = (),
        target: str | None = None,
    ) -> None:
        """Record a refusal. The refusal stands even if its record cannot be written."""
        problem.audited = True
        with contextlib.suppress(AuditUnavailable):
            self.record(
                principal,
                action,
                subject_user_id=subject_user_id,
                outcome="denied",
                purpose=purpose,
                reason=problem.type_slug,
                memory_ids=memory_ids,
                target=target,
            )

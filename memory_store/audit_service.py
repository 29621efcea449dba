"""The audit trail's readers: compliance staff (events, verify, checkpoints, export) and each
user (their own access log). Compliance never reads memory contents: the trail holds none."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from audit import AuditRecord, Checkpoint, VerificationResult, Verifier
from audit.export import checkpoint_line, header_line, record_line
from memory_store.audit_store import AuditLog, AuditQuery, AuditStore, format_time
from memory_store.auditing import Auditor
from memory_store.auth import Principal
from memory_store.clock import utc_now
from memory_store.cursors import decode_cursor, encode_cursor
from memory_store.errors import InvalidCursor, Problem
from memory_store.policy import (
    ALL_CATEGORIES,
    COMPLIANCE,
    SELF_SERVICE,
    AccessRequest,
    Action,
    Policy,
)
from memory_store.repository import TokenRepository
from memory_store.schemas import AccessLogEntry

# What a user's access log shows: every attempt to read their memories.
READ_ACTIONS = (
    "memory.read",
    "memory.list",
    "memory.search",
    "memory.history",
    "memory.export",
    "memory.context",
)


@dataclass(frozen=True)
class EventPage:
    items: list[AuditRecord]
    next_cursor: str | None


class AuditService:
    def __init__(
        self,
        store: AuditStore,
        log: AuditLog,
        policy: Policy,
        auditor: Auditor,
        tokens: TokenRepository,
    ) -> None:
        self._store = store
        self._log = log
        self._policy = policy
        self._auditor = auditor
        self._tokens = tokens

    @property
    def store(self) -> AuditStore:
        return self._store

    def _check(self, principal: Principal, action: Action, purpose: str, subject: str) -> None:
        try:
            self._policy.check(AccessRequest(principal, action, subject, purpose, ALL_CATEGORIES))
        except Problem as problem:
            self._auditor.denied(principal, action.value, problem, purpose=purpose)
            raise

    def events(
        self,
        principal: Principal,
        query: AuditQuery,
        *,
        user_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> EventPage:
        """Matching records, newest first. A user id is turned into its pseudonym here, on
        the server; a user without a key (never seen, or forgotten) has no records."""
        self._check(principal, Action.audit_read, COMPLIANCE, "")
        before = _cursor_seq(cursor)
        if user_id is not None:
            subject = self._auditor.existing_subject(user_id)
            if subject is None:
                self._auditor.record(principal, "audit.read", purpose=COMPLIANCE, result_count=0)
                return EventPage(items=[], next_cursor=None)
            query = AuditQuery(**{**query.__dict__, "subject": subject})
        records = self._store.page(query, limit=limit + 1, before_seq=before)
        items = records[:limit]
        self._auditor.record(principal, "audit.read", purpose=COMPLIANCE, result_count=len(items))
        more = len(records) > limit
        return EventPage(items=items, next_cursor=_seq_cursor(items[-1].seq) if more else None)

    def checkpoints(self, principal: Principal) -> list[Checkpoint]:
        self._check(principal, Action.audit_read, COMPLIANCE, "")
        return self._store.checkpoints()

    def public_key_pem(self, principal: Principal) -> bytes:
        self._check(principal, Action.audit_read, COMPLIANCE, "")
        return self._log.signing_key.public_pem()

    def verify(self, principal: Principal) -> VerificationResult:
        """Walk the whole stored trail: chain, signatures, and every stored checkpoint."""
        self._check(principal, Action.audit_verify, COMPLIANCE, "")
        self._auditor.record(principal, "audit.verify", purpose=COMPLIANCE)
        return verify_stored(self._store, self._log)

    def export(self, principal: Principal) -> Iterator[str]:
        """The whole trail as JSON Lines that `python -m audit verify` accepts. Audited, and
        checked, before the first line is produced."""
        self._check(principal, Action.audit_export, COMPLIANCE, "")
        self._auditor.record(principal, "audit.export", purpose=COMPLIANCE)
        return export_lines(self._store, self._log)

    def access_log(
        self, principal: Principal, *, limit: int, cursor: str | None
    ) -> tuple[list[AccessLogEntry], str | None]:
        """Who tried to read the caller's memories, when, for which purpose, and whether
        they were allowed."""
        user_id = principal.user_id or ""
        self._check(principal, Action.access_log_read, SELF_SERVICE, user_id)
        before = _cursor_seq(cursor)
        subject = self._auditor.existing_subject(user_id)
        if subject is None:
            return [], None
        records = self._store.page(
            AuditQuery(subject=subject, actions=READ_ACTIONS), limit=limit + 1, before_seq=before
        )
        items = records[:limit]
        names = self._tokens.names({record.actor_id for record in items})
        entries = [
            AccessLogEntry(
                at=record.at,
                actor=names.get(record.actor_id),
                actor_role=record.actor_role,
                action=record.action,
                memory_ids=list(record.memory_ids),
                purpose=record.purpose,
                outcome=record.outcome,
                reason=record.reason,
                result_count=record.result_count,
            )
            for record in items
        ]
        more = len(records) > limit
        return entries, _seq_cursor(items[-1].seq) if more else None


def verify_stored(
    store: AuditStore, log: AuditLog, kept: Sequence[Checkpoint] = ()
) -> VerificationResult:
    """Verify the stored trail against the service's key, its stored checkpoints, and any
    checkpoints kept elsewhere (those are what catch a trail cut short)."""
    verifier = Verifier(log.signing_key.public_key)
    for record in store.iter_records():
        verifier.add_record(record)
    for checkpoint in [*store.checkpoints(), *kept]:
        verifier.add_checkpoint(checkpoint)
    return verifier.result()


def export_lines(store: AuditStore, log: AuditLog) -> Iterator[str]:
    yield header_line(exported_at=format_time(utc_now()), key_id=log.signing_key.key_id)
    for record in store.iter_records():
        yield record_line(record)
    for checkpoint in store.checkpoints():
        yield checkpoint_line(checkpoint)


def _seq_cursor(seq: int) -> str:
    return encode_cursor({"s": seq})


def _cursor_seq(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    seq = decode_cursor(cursor).get("s")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise InvalidCursor()
    return seq

"""The audit trail's readers: compliance staff (events, verify, checkpoints, export) and each
user (their own access log). Compliance never reads memory contents: the trail holds none."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from audit import AnyCheckpoint, AuditRecord, SigningKey, VerificationResult
from memory_store.domain import (
    ALL_CATEGORIES,
    COMPLIANCE,
    READ_ACTIONS,
    SELF_SERVICE,
    AuditAction,
    AuditQuery,
    Principal,
    Progress,
)
from memory_store.errors import NotFound
from memory_store.policy import AccessRequest, Action, Policy
from memory_store.schemas import AccessLogEntry
from memory_store.services.cursors import Cursors
from memory_store.services.guard import Guard
from memory_store.storage.audit_trail import AuditTrailStore, StoredCheckpoint
from memory_store.storage.tokens import TokenRepository
from memory_store.trail.recorder import Auditor
from memory_store.trail.verification import (
    InclusionProof,
    export_lines,
    prove_inclusion,
    verify_stored,
)
from memory_store.trail.witness import WitnessDirectory


@dataclass(frozen=True)
class EventPage:
    items: list[AuditRecord]
    next_cursor: str | None


class AuditService:
    def __init__(
        self,
        store: AuditTrailStore,
        signing_key: SigningKey,
        policy: Policy,
        auditor: Auditor,
        tokens: TokenRepository,
        witness: WitnessDirectory,
        cursors: Cursors,
    ) -> None:
        self._cursors = cursors
        self._store = store
        self._signing_key = signing_key
        self._witness = witness
        self._auditor = auditor
        self._tokens = tokens
        self._guard = Guard(policy, auditor)

    def _check(self, principal: Principal, action: Action, purpose: str, subject: str) -> None:
        request = AccessRequest(principal, action, subject, purpose, ALL_CATEGORIES)
        self._guard.check(request, AuditAction(action.value), subject=None)

    def events(
        self,
        principal: Principal,
        query: AuditQuery,
        *,
        user_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> EventPage:
        """Matching records, newest first. A user id is turned into its pseudonyms here, on
        the server: their key's while they have one, and a stranger's (from before it). The
        records of a forgotten user's key link to no one any more."""
        self._check(principal, Action.audit_read, COMPLIANCE, "")
        before = self._cursors.decode_int(cursor, "s") if cursor is not None else None
        if user_id is not None:
            query = replace(query, subjects=self._auditor.subjects_of(user_id))
        records = self._store.page(query, limit=limit + 1, before_seq=before)
        items = records[:limit]
        self._auditor.record(
            principal, AuditAction.audit_read, purpose=COMPLIANCE, result_count=len(items)
        )
        more = len(records) > limit
        return EventPage(
            items=items, next_cursor=self._cursors.encode({"s": items[-1].seq}) if more else None
        )

    def checkpoints(self, principal: Principal) -> list[StoredCheckpoint]:
        self._check(principal, Action.audit_read, COMPLIANCE, "")
        return self._store.checkpoints()

    def public_key_pem(self, principal: Principal) -> bytes:
        self._check(principal, Action.audit_read, COMPLIANCE, "")
        return self._signing_key.public_pem()

    def verify(
        self,
        principal: Principal,
        *,
        purpose: str = COMPLIANCE,
        trusted: Sequence[AnyCheckpoint] | None = None,
        allow_unanchored: bool = False,
        progress: Progress | None = None,
    ) -> VerificationResult:
        """Walk the whole stored trail: chain, the checkpoints it holds, and the checkpoints
        that anchor it: `trusted` (kept elsewhere), by default those of the witness
        directory, never the database's own."""
        self._check(principal, Action.audit_verify, purpose, "")
        self._auditor.record(principal, AuditAction.audit_verify, purpose=purpose)
        unreadable = None
        if trusted is None:
            try:
                trusted = self._witness.checkpoints()
            except (OSError, ValueError) as exc:
                trusted = []
                unreadable = f"the witness directory cannot be read: {type(exc).__name__}"
        return verify_stored(
            self._store,
            self._signing_key,
            trusted,
            allow_unanchored=allow_unanchored,
            unreadable=unreadable,
            progress=progress,
        )

    def proof(
        self, principal: Principal, seq: int, *, tree_size: int | None = None
    ) -> InclusionProof:
        """That record `seq` is in a signed tree: its inclusion proof against the latest
        stored checkpoint holding it (or the one of `tree_size`)."""
        self._check(principal, Action.audit_read, COMPLIANCE, "")
        self._auditor.record(
            principal, AuditAction.audit_read, purpose=COMPLIANCE, target=f"seq:{seq}"
        )
        proof = prove_inclusion(self._store, seq, tree_size=tree_size)
        if proof is None:
            raise NotFound("no such record in a signed checkpoint's tree (yet)")
        return proof

    def export(self, principal: Principal, *, purpose: str = COMPLIANCE) -> Iterator[str]:
        """The whole trail as JSON Lines that `python -m audit verify` accepts. Audited, and
        checked, before the first line is produced."""
        self._check(principal, Action.audit_export, purpose, "")
        self._auditor.record(principal, AuditAction.audit_export, purpose=purpose)
        return export_lines(self._store, self._signing_key)

    def access_log(
        self, principal: Principal, *, limit: int, cursor: str | None
    ) -> tuple[list[AccessLogEntry], str | None]:
        """Who tried to read the caller's memories, when, for which purpose, and whether
        they were allowed."""
        user_id = principal.user_id or ""
        self._check(principal, Action.access_log_read, SELF_SERVICE, user_id)
        before = self._cursors.decode_int(cursor, "s") if cursor is not None else None
        subjects = self._auditor.subjects_of(user_id)
        records = self._store.page(
            AuditQuery(subjects=subjects, actions=READ_ACTIONS), limit=limit + 1, before_seq=before
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
        return entries, self._cursors.encode({"s": items[-1].seq}) if more else None

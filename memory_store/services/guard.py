"""The one way a request is refused: ask the policy, record the refusal, raise it.

Every use case calls `check` (or `check_role`) before it touches data. A denial is audited
before it is raised, naming the request's subject and purpose unless the caller says the
record must not (a purge is about no one; a compliance read names no subject).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NoReturn

from memory_store.domain import AuditAction
from memory_store.errors import Problem
from memory_store.policy import AccessRequest, Policy
from memory_store.trail.recorder import Auditor


class _FromRequest:
    """The default of a denial record's subject and purpose: the request's own."""


FROM_REQUEST: Final = _FromRequest()


class Guard:
    def __init__(self, policy: Policy, auditor: Auditor) -> None:
        self._policy = policy
        self._auditor = auditor

    def check(
        self,
        request: AccessRequest,
        action: AuditAction,
        memory_ids: Sequence[str] = (),
        *,
        subject: str | _FromRequest | None = FROM_REQUEST,
        purpose: str | _FromRequest | None = FROM_REQUEST,
    ) -> None:
        """Return if the policy allows `request`; otherwise record the denial and raise."""
        try:
            self._policy.check(request)
        except Problem as problem:
            self.deny(request, action, problem, memory_ids, subject=subject, purpose=purpose)

    def check_role(
        self, request: AccessRequest, action: AuditAction, categories: list[str]
    ) -> None:
        """`Policy.check_role` (may the role act on any of `categories` at all?), refusals
        recorded and raised as by `check`."""
        try:
            self._policy.check_role(request, categories)
        except Problem as problem:
            self.deny(request, action, problem)

    def deny(
        self,
        request: AccessRequest,
        action: AuditAction,
        problem: Problem,
        memory_ids: Sequence[str] = (),
        *,
        subject: str | _FromRequest | None = FROM_REQUEST,
        purpose: str | _FromRequest | None = FROM_REQUEST,
    ) -> NoReturn:
        """Record the refusal of `request` as `problem`, then raise it."""
        self._auditor.denied(
            request.principal,
            action,
            problem,
            subject_user_id=(
                request.subject_user_id if isinstance(subject, _FromRequest) else subject
            ),
            purpose=request.purpose if isinstance(purpose, _FromRequest) else purpose,
            memory_ids=memory_ids,
        )
        raise problem

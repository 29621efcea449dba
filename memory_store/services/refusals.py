"""Refusals the use cases do not record themselves: a request refused for its input (a bad
cursor, an unknown purpose or category, a secret in a write, a version that moved on, a body
that does not match the API) by an authenticated caller goes on the trail too, as the action
its route would have taken, denied, with the problem's type as the reason.

Refusals decided by the policy are recorded where they are decided (services/guard.py); those
carry `audited` and are not recorded twice. Not recorded here: 401 (no caller: the token
service records those), 429 (a flood must not flood the trail) and 503 (nothing was decided).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from memory_store.domain import SELF_SERVICE, AuditAction, Principal
from memory_store.errors import Problem
from memory_store.policy import Catalogue
from memory_store.schemas import USER_ID_PATTERN
from memory_store.trail.recorder import Auditor

_NOT_RECORDED = {401, 429, 503}
_USER_ID = re.compile(USER_ID_PATTERN)
_MEMORY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_ASSISTANT = "/v1/users/{user_id}"
# The action each route takes: what its refusal is recorded as.
ROUTE_ACTIONS: dict[tuple[str, str], AuditAction] = {
    ("POST", f"{_ASSISTANT}/memories"): AuditAction.memory_write,
    ("GET", f"{_ASSISTANT}/memories"): AuditAction.memory_list,
    ("GET", f"{_ASSISTANT}/memories/{{memory_id}}"): AuditAction.memory_read,
    ("DELETE", f"{_ASSISTANT}/memories/{{memory_id}}"): AuditAction.memory_delete,
    ("GET", f"{_ASSISTANT}/context"): AuditAction.memory_context,
    ("GET", "/v1/me"): AuditAction.me_read,
    ("DELETE", "/v1/me"): AuditAction.user_forget,
    ("GET", "/v1/me/memories"): AuditAction.memory_list,
    ("DELETE", "/v1/me/memories"): AuditAction.memory_delete,
    ("GET", "/v1/me/memories/{memory_id}"): AuditAction.memory_read,
    ("PATCH", "/v1/me/memories/{memory_id}"): AuditAction.memory_update,
    ("DELETE", "/v1/me/memories/{memory_id}"): AuditAction.memory_delete,
    ("GET", "/v1/me/memories/{memory_id}/history"): AuditAction.memory_history,
    ("GET", "/v1/me/export"): AuditAction.memory_export,
    ("GET", "/v1/me/access-log"): AuditAction.access_log_read,
    ("GET", "/v1/me/consents"): AuditAction.consent_read,
    ("PUT", "/v1/me/consents/{purpose}/{category}"): AuditAction.consent_write,
    ("GET", "/v1/me/consents/history"): AuditAction.consent_read,
    ("GET", "/v1/me/settings"): AuditAction.settings_read,
    ("PATCH", "/v1/me/settings"): AuditAction.settings_write,
    ("GET", "/v1/audit/events"): AuditAction.audit_read,
    ("GET", "/v1/audit/verify"): AuditAction.audit_verify,
    ("GET", "/v1/audit/export"): AuditAction.audit_export,
    ("GET", "/v1/audit/checkpoints"): AuditAction.audit_read,
    ("GET", "/v1/audit/public-key"): AuditAction.audit_read,
    ("GET", "/v1/audit/proof"): AuditAction.audit_read,
}


class RefusalLog:
    def __init__(self, auditor: Auditor, catalogue: Catalogue) -> None:
        self._auditor = auditor
        self._catalogue = catalogue

    def record(
        self,
        principal: Principal,
        problem: Problem,
        *,
        method: str,
        route: str,
        path: Mapping[str, str],
        query: Mapping[str, str],
        action: AuditAction | None = None,
    ) -> None:
        """Put `problem`, a refusal of this authenticated request, on the trail (unless it
        is there already, or is of a kind not recorded), as `action` (default: the route's).
        Only what was valid of the request is named: a user id, memory id or purpose that
        failed its check stays out."""
        if problem.audited or problem.status in _NOT_RECORDED:
            return
        if action is None:
            action = ROUTE_ACTIONS.get((method, route), AuditAction.request_refused)
        subject = path.get("user_id")
        if subject is None and route.startswith("/v1/me"):
            subject = principal.user_id
        memory_id = path.get("memory_id")
        purpose = query.get("purpose")
        if route.startswith("/v1/me"):
            purpose = SELF_SERVICE
        elif purpose not in self._catalogue.purposes:
            purpose = None
        self._auditor.denied(
            principal,
            action,
            problem,
            subject_user_id=subject if subject and _USER_ID.fullmatch(subject) else None,
            purpose=purpose,
            memory_ids=[memory_id] if memory_id and _MEMORY_ID.fullmatch(memory_id) else [],
            target=route[:64] if action is AuditAction.request_refused else None,
        )

"""Every access decision, made by Casbin from the files in policies/.

The service describes a request (who, what action, whose data, which purpose, which category)
and this module asks the enforcer. No other module compares roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import casbin

from memory_store.auth import Principal
from memory_store.errors import Forbidden, NotFound

# The purpose of a user's own calls through /v1/me: they need no consent to see their data.
SELF_SERVICE = "self_service"
ANY_CATEGORY = "*"


class Action(StrEnum):
    memory_write = "memory.write"
    memory_read = "memory.read"


class Relation(StrEnum):
    """How the caller stands to the person the data is about."""

    self_ = "self"  # a user token acting on its own user id
    other = "other"  # a user token naming someone else: denials answer 404
    service = "service"  # a token bound to no user (assistant, compliance, admin)


@dataclass(frozen=True)
class AccessRequest:
    principal: Principal
    action: Action
    subject_user_id: str
    purpose: str
    category: str = ANY_CATEGORY

    @property
    def relation(self) -> Relation:
        if self.principal.user_id is None:
            return Relation.service
        return Relation.self_ if self.principal.user_id == self.subject_user_id else Relation.other


class Policy:
    """The Casbin enforcer over policies/model.conf and policies/policy.csv."""

    def __init__(self, policy_dir: Path) -> None:
        self._enforcer = casbin.Enforcer(
            str(policy_dir / "model.conf"), str(policy_dir / "policy.csv")
        )

    def allows(self, request: AccessRequest) -> bool:
        return bool(
            self._enforcer.enforce(
                request.principal.role.value,
                request.action.value,
                request.purpose,
                request.relation.value,
                request.category,
            )
        )

    def check(self, request: AccessRequest) -> None:
        """Raise unless the policy allows the request. Someone else's data answers 404, not
        403, so a user cannot learn whether another user exists."""
        if self.allows(request):
            return
        if request.relation is Relation.other:
            raise NotFound()
        raise Forbidden(
            f"The policy does not allow role '{request.principal.role.value}' "
            f"to {request.action.value} for purpose '{request.purpose}'"
        )

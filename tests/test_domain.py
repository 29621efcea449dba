"""The shared words: every action the policy decides on can be named on the audit trail."""

from __future__ import annotations

from memory_store.domain import READ_ACTIONS, AuditAction
from memory_store.policy import Action


def test_every_policy_action_is_an_audit_action() -> None:
    """A refusal is recorded under the action the policy refused (services/guard.py)."""
    assert {action.value for action in Action} <= {action.value for action in AuditAction}


def test_the_access_log_shows_every_kind_of_read() -> None:
    reads = {action for action in AuditAction if action.value.startswith("memory.")}
    changes = {
        AuditAction.memory_write,
        AuditAction.memory_update,
        AuditAction.memory_delete,
        AuditAction.memory_purge,
    }
    assert set(READ_ACTIONS) == reads - changes
